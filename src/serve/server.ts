/**
 * `smtp-delay serve`: one process that listens in tcpserver's place, holds
 * every client through its screening, and starts the next program for each
 * client that passes, with the client's socket as its fd 0/1. This file
 * only wires the phases of a connection together, as postscreen's files do:
 *
 *     admission.ts   accept; 421 when there is no room; counts; stress
 *     waiting.ts     the clients in the screening (rules, -h, src/screen.ts)
 *     children.ts    a child per client that passed (-c, caps, reaping)
 *
 * with settings.ts (a client's Config, patterns, allowlists), holder.ts (the
 * memory's view of serve's connections) and one event loop (src/loop.ts):
 * one epoll set, waited on by a helper thread, for the listening socket,
 * each waiting client and each child's pidfd, so timers and DNS lookups go
 * on meanwhile. With --metrics, src/metrics/live.ts (imported only then)
 * counts the lines serve writes and answers scrapes on the same thread.
 */
import {
  type Config,
  noRblsmtpdWarning,
  parseConfig,
  printRequest,
  runsRblsmtpd,
} from "../config.ts";
import { formatIp } from "../ip.ts";
import { type Libc, libc, SysError } from "../libc.ts";
import * as log from "../log.ts";
import { EventLoop } from "../loop.ts";
import { loadExemptions, readPatterns } from "../screen.ts";
import { UsageError } from "../usage_error.ts";
import { Admission } from "./admission.ts";
import { Children } from "./children.ts";
import { Holder } from "./holder.ts";
import { baseEnv, baseVars } from "./lines.ts";
import { parseServe, serveAsks, type ServeConfig } from "./options.ts";
import { Rules } from "./rules_file.ts";
import { Settings } from "./settings.ts";
import { WaitingRoom } from "./waiting.ts";

const now = () => performance.now();

/**
 * The phases, wired, and the loop they share. Runs until SIGTERM, then
 * until the last waiting client is handed on or answered. Running
 * children are not waited for: like tcpserver's, they finish their
 * sessions on their own; relayed sessions are, as they live in serve.
 */
class Server {
  private readonly loop: EventLoop;
  private readonly listener: number;
  private readonly admission: Admission;
  private readonly room: WaitingRoom;
  private readonly children: Children;
  private readonly settings: Settings;
  private readonly holder: Holder;
  private readonly rules: Rules | undefined;
  private stopping = false;

  /** Listens (throws SysError when it cannot); `env` is what children inherit. */
  constructor(
    private readonly options: ServeConfig,
    config: Config,
    env: Readonly<Record<string, string>>,
    private readonly libc: Libc,
  ) {
    this.listener = libc.listen(options.ip, options.port, options.backlog);
    this.loop = new EventLoop(libc);
    this.rules = options.rulesFile === undefined
      ? undefined
      : new Rules(options.rulesFile, options.rulesMissingOk);
    this.settings = new Settings(options, config);
    this.holder = new Holder(libc, (id) => this.admission.isOpen(id), now);
    const release = (id: number) => this.admission.release(id);
    this.children = new Children(options, this.loop, libc, baseVars(env), release);
    this.room = new WaitingRoom({
      options,
      base: config,
      loop: this.loop,
      libc,
      settings: this.settings,
      holder: this.holder,
      rules: this.rules,
      baseEnv: baseEnv(env),
      busy: (fd, ip, why) => this.admission.busy(fd, ip, why),
      countAs: (id, ip) => this.admission.countAs(id, ip),
      handOn: (passed) => this.children.handOn(passed),
      release,
      changed: () => this.admission.updateStress(),
    });
    this.admission = new Admission(
      options,
      this.listener,
      this.loop,
      libc,
      () => this.room.size,
      (client) => this.room.take(client),
    );
  }

  /** What --metrics shows of the server now: its clients and children, and their limits. */
  gauges() {
    return {
      waiting: this.room.size,
      waitingLimit: this.options.maxWaiting,
      children: this.children.size,
      childrenLimit: this.options.maxChildren,
    };
  }

  /** The port it listens on (for -1 and port 0). */
  port(): number {
    return this.libc.localAddress(this.listener).port;
  }

  async run(): Promise<number> {
    Deno.addSignalListener("SIGTERM", () => this.stop());
    Deno.addSignalListener("SIGHUP", () => {
      this.settings.reload();
      this.rules?.forget();
      this.holder.reload();
      log.event(`RELOAD waiting=${this.room.size} children=${this.children.size}`);
    });
    this.children.status();
    await this.loop.run(() => !this.stopping || this.room.size > 0 || this.children.busy);
    this.holder.close();
    return 0;
  }

  private stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.admission.stop();
    this.loop.wake();
    log.event(`STOP waiting=${this.room.size} children=${this.children.size}`);
  }
}

/** V8's young generation for serve: see smallYoungGeneration. */
const SEMI_SPACE_FLAG = "--max-semi-space-size=1";

/**
 * Serve's garbage is many small objects per client; V8 lets its young
 * generation grow to 16 MB per semi-space under such load, and keeps it. A
 * 1 MB semi-space costs the server little, and brought a waiting client
 * from 20 to 13 KB at 1000 waiting (make bench, bench/results/bench.md). V8
 * flags can only be set at start, and the per-connection filter is better
 * without this one (each start would pay for early scavenges), so serve
 * runs itself again with DENO_V8_FLAGS set, once, before it listens.
 * Skipped when DENO_V8_FLAGS already names a semi-space size or the command
 * line cannot be read whole.
 */
function smallYoungGeneration(c: Libc, env: Readonly<Record<string, string>>): void {
  const flags = env.DENO_V8_FLAGS ?? "";
  if (flags.includes("semi-space-size")) return;
  const cmdline = c.readProcFile("/proc/self/cmdline");
  if (!cmdline || cmdline.length >= 4000 || !cmdline.endsWith("\0")) return;
  const argv = cmdline.slice(0, -1).split("\0");
  Deno.env.set("DENO_V8_FLAGS", flags ? `${flags},${SEMI_SPACE_FLAG}` : SEMI_SPACE_FLAG);
  const why = c.exec([Deno.execPath(), ...argv.slice(1)]);
  Deno.env.set("DENO_V8_FLAGS", flags); // exec failed: go on as we are
  log.warning(`unable to run myself again with a small young generation: ${why}`);
}

/** The environment for children: without the V8 flag serve set for itself. */
function ownFlagsOff(env: Readonly<Record<string, string>>): Record<string, string> {
  const { DENO_V8_FLAGS: flags, ...rest } = env;
  if (flags === undefined || flags === SEMI_SPACE_FLAG) return rest;
  return { ...rest, DENO_V8_FLAGS: flags.replace(`,${SEMI_SPACE_FLAG}`, "") };
}

/** What the system may limit that serve needs: file descriptors, and the listen queue. */
function warnOfLimits(c: Libc, options: ServeConfig, lists: boolean): void {
  const files = c.raiseFileLimit();
  // Each waiting client holds one fd (two while its lists are asked), each relayed session two,
  // and Deno itself a few dozen.
  if (files < options.maxWaiting * (lists ? 2 : 1) + 64) {
    log.warning(
      `only ${files} file descriptors for --waiting ${options.maxWaiting}: ` +
        `clients beyond get 421 (raise ulimit -n)`,
    );
  }
  // Linux silently cuts the backlog to net.core.somaxconn; a connection beyond never reaches us.
  const somaxconn = Number(c.readProcFile("/proc/sys/net/core/somaxconn")?.trim());
  if (somaxconn > 0 && somaxconn < options.backlog) {
    log.warning(
      `only ${somaxconn} connections in the listen queue for -b ${options.backlog} ` +
        `(net.core.somaxconn): clients of a burst beyond wait unanswered (raise it with sysctl)`,
    );
  }
}

/** `smtp-delay serve ARGS`: returns the exit code (100 usage, 111 system failure). */
export async function serve(
  args: readonly string[],
  env: Readonly<Record<string, string>>,
): Promise<number> {
  const asked = serveAsks(args);
  if (asked) {
    const { text } = printRequest(asked);
    Deno.stdout.writeSync(new TextEncoder().encode(text + "\n"));
    return 0;
  }
  let services = "";
  try {
    services = Deno.readTextFileSync("/etc/services");
  } catch {
    // numbers only, then
  }
  const options = parseServe(args, env, services);
  const request = parseConfig([...options.screening, "--", ...options.program], env);
  if (request.kind !== "run") throw new UsageError("-v is not a screening option");
  // A missing pattern file or allowlist of the run file is a usage error now, not per client.
  if (request.config.patternFile !== undefined) readPatterns(request.config.patternFile);
  await loadExemptions(request.config.allowFile);
  const c = libc();
  smallYoungGeneration(c, env);
  warnOfLimits(c, options, request.config.lists !== undefined);
  let server: Server;
  let metrics: { close(): Promise<void> } | undefined;
  try {
    server = new Server(options, request.config, ownFlagsOff(env), c);
    if (options.metrics) {
      // Loaded only when asked for: serve without --metrics imports nothing of it.
      const { hostname, port } = options.metrics;
      const { live } = await import("../metrics/live.ts");
      try {
        metrics = live(hostname, port, () => server.gauges());
      } catch (e) {
        const where = hostname.includes(":") ? `[${hostname}]` : hostname;
        log.fatal(`unable to listen on ${where}:${port} (--metrics): ${log.reason(e)}`);
        return 111;
      }
    }
    c.becomeUser(options.uid, options.gid);
  } catch (e) {
    if (e instanceof SysError) {
      log.fatal(`unable to listen on ${formatIp(options.ip)}:${options.port}: ${e.message}`);
      return 111;
    }
    throw e;
  }
  // What the run file's settings would not do: said once, by the server that listens.
  for (const warning of request.warnings) log.warning(warning);
  if (!request.config.standalone && !runsRblsmtpd(options.program)) {
    log.warning(noRblsmtpdWarning(options.program));
  }
  if (options.printPort) {
    Deno.stdout.writeSync(new TextEncoder().encode(`${server.port()}\n`));
  }
  try {
    return await server.run();
  } finally {
    await metrics?.close();
  }
}
