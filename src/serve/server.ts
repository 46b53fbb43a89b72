/**
 * `smtp-delay serve`: one process that listens in tcpserver's place, holds
 * every client in the screening (the same code as the per-connection filter,
 * src/screen.ts) and starts the next program for each client that passes,
 * with the client's socket as its fd 0/1.
 *
 * One epoll set carries everything: the listening socket, each waiting
 * client (one-shot: the first byte or hang-up settles it), and a pidfd per
 * running child. epoll_wait runs on a helper thread, so timers and DNS
 * lookups go on meanwhile.
 */
import { type Client, readClient } from "../client.ts";
import {
  type Config,
  needsRelay,
  noRblsmtpdWarning,
  parseConfig,
  printRequest,
  runsRblsmtpd,
} from "../config.ts";
import { answer } from "../handoff.ts";
import { keyOf } from "../history.ts";
import { formatIp, type Ip } from "../ip.ts";
import { type Libc, libc } from "../libc.ts";
import * as log from "../log.ts";
import type { Lookup } from "../rdns.ts";
import { type Memory, processStart, remember } from "../remember.ts";
import type { Store } from "../store/store.ts";
import { reply } from "../reply.ts";
import {
  departureOf,
  type Exemptions,
  exportsOf,
  forget,
  loadExemptions,
  lookupWhileWatching,
  outcomeOf,
  readPatterns,
  screen,
  type Screened,
} from "../screen.ts";
import { UsageError } from "../usage_error.ts";
import { interpret, type Watch, type Watched } from "../watch.ts";
import {
  baseEnv,
  type Connection,
  connectionVars,
  denyLine,
  endLine,
  okLine,
  pidLine,
} from "./lines.ts";
import { EventLoop } from "./loop.ts";
import { parseServe, serveAsks, type ServeConfig } from "./options.ts";
import { relay } from "./relay.ts";
import { Rules } from "./rules_file.ts";
import { SharedSqlite } from "./state_file.ts";
import {
  EAGAIN,
  EINTR,
  EMFILE,
  ENFILE,
  ENOBUFS,
  ENOMEM,
  EPOLLIN,
  EPOLLONESHOT,
  EPOLLRDHUP,
  type Sys,
  sys,
  SysError,
} from "./sys.ts";

const now = () => performance.now();

const SIGTERM = 15;

/** Most connections accepted per wake-up, so that waiting clients are served too. */
const ACCEPT_BATCH = 64;

/** The answer to a client the server has no room for. */
const FULL_TEXT = "Too many connections waiting; try again later (#4.3.2)";

/** A client in the screening: its socket, and the watch that epoll feeds. */
class Waiting implements Watch {
  seen: Watched = { kind: "quiet" };
  private readonly wakers = new Set<() => void>();
  readonly start = now();

  constructor(readonly fd: number, private readonly c: Libc) {}

  /** epoll said the socket is readable or hung up. */
  settle(revents: number): void {
    if (this.seen.kind !== "quiet") return;
    this.seen = interpret(revents, this.c.bytesWaiting(this.fd), now() - this.start);
    for (const wake of [...this.wakers]) wake();
  }

  waitAsync(ms: number): Promise<Watched> {
    if (this.seen.kind !== "quiet" || ms <= 0) return Promise.resolve(this.waitSync(0));
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve(this.seen);
      };
      const timer = setTimeout(done, Math.ceil(ms));
      this.wakers.add(done);
    });
  }

  /** Only `waitSync(0)`: a look without waiting (the server never blocks). */
  waitSync(_ms: number): Watched {
    if (this.seen.kind === "quiet") {
      const revents = this.c.readable(this.fd, 0);
      if (revents !== 0) this.settle(revents);
    }
    return this.seen;
  }
}

/** A running child: the session of a client that passed. */
interface Child {
  readonly pid: number;
  readonly pidfd: number;
  readonly id: number;
  /** The session cap's timer (no relay). */
  readonly timer: ReturnType<typeof setTimeout> | undefined;
}

/** Reads what can be re-read at SIGHUP: patterns and allowlists. */
class Reloadable {
  private patterns = new Map<string, RegExp[]>();
  /** Each allowlist's load, shared by the clients that arrive while it is read. */
  private allows = new Map<string, Promise<Exemptions | undefined>>();

  patternsOf(config: Config): RegExp[] | undefined {
    const path = config.patternFile;
    if (path === undefined) return undefined;
    let list = this.patterns.get(path);
    if (!list) this.patterns.set(path, list = readPatterns(path));
    return list;
  }

  allowOf(config: Config): Promise<Exemptions | undefined> {
    const path = config.allowFile;
    if (path === undefined) return Promise.resolve(undefined);
    let loaded = this.allows.get(path);
    if (!loaded) {
      const loading = loadExemptions(path);
      this.allows.set(path, loaded = loading);
      // A list that cannot be read is tried again by the next client, as a pattern file is.
      loading.catch(() => {
        if (this.allows.get(path) === loading) this.allows.delete(path);
      });
    }
    return loaded;
  }

  clear(): void {
    this.patterns.clear();
    this.allows.clear();
  }
}

/** The server's state and its one event loop. */
class Server {
  private readonly waiting = new Map<number, Waiting>();
  private readonly children = new Map<number, Child>();
  /** Clients that passed while -c children were running: handed on as children end. */
  private readonly queue: Array<() => void> = [];
  /** Connection ids (waiting or running a child) and their clients' keys. */
  private readonly open = new Map<number, string>();
  /** Connections open per key (IPv4 address, IPv6 /64), for --per-ip. */
  private readonly perKey = new Map<string, number>();
  private readonly reload = new Reloadable();
  private readonly localNames = new Map<string, Promise<string | undefined>>();
  private nextId = 1;
  /** The server's environment, stripped as tcpserver does, and as KEY=VALUE strings. */
  private readonly base_: Record<string, string>;
  private readonly baseVars: Array<[string, string]>;
  /** Configs by the SMTPDELAY* variables the rules set (see configOf). */
  private readonly configs = new Map<string, Config>();
  /** SQLite state files, by URL and timeout: one handle each for every client. */
  private readonly stateFiles = new Map<string, SharedSqlite>();
  /** Sessions being relayed (caps that need to see the traffic). */
  private relays = 0;
  private stopping = false;
  private stressed = false;
  private spare: number;
  private readonly loop: EventLoop;
  private readonly listener: number;
  private readonly rules: Rules | undefined;
  private readonly selfStart: string | undefined;

  constructor(
    private readonly serve: ServeConfig,
    private readonly base: Config,
    env: Readonly<Record<string, string>>,
    private readonly s: Sys,
    private readonly c: Libc,
    selfStart: string | undefined,
  ) {
    this.selfStart = selfStart;
    this.base_ = baseEnv(env);
    this.baseVars = Object.entries(this.base_).map(([k, v]) => [k, `${k}=${v}`]);
    this.rules = serve.rulesFile === undefined
      ? undefined
      : new Rules(serve.rulesFile, serve.rulesMissingOk);
    this.listener = s.listen(serve.ip, serve.port, serve.backlog);
    this.loop = new EventLoop(s);
    this.spare = s.spareFd();
    this.loop.add(this.listener, EPOLLIN, () => this.acceptSome());
  }

  /** The port it listens on (for -1 and port 0). */
  port(): number {
    return this.s.localAddress(this.listener).port;
  }

  private status(): void {
    if (this.serve.verbosity >= 2) {
      log.tcpserver(`status: ${this.children.size}/${this.serve.maxChildren}`);
    }
  }

  /**
   * Runs until SIGTERM, then until the last waiting client is handed on or
   * answered. Running children are not waited for: like tcpserver's, they
   * finish their sessions on their own.
   */
  async run(): Promise<number> {
    Deno.addSignalListener("SIGTERM", () => this.stop());
    Deno.addSignalListener("SIGHUP", () => {
      this.reload.clear();
      this.rules?.forget();
      // A state file replaced or removed is opened again, at its next use.
      for (const file of this.stateFiles.values()) file.reload();
      log.event(`RELOAD waiting=${this.waiting.size} children=${this.children.size}`);
    });
    this.status();
    await this.loop.run(() =>
      !this.stopping || this.waiting.size > 0 || this.queue.length > 0 || this.relays > 0
    );
    for (const file of this.stateFiles.values()) file.close();
    return 0;
  }

  private stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.loop.remove(this.listener);
    this.s.close(this.listener);
    this.loop.wake();
    log.event(`STOP waiting=${this.waiting.size} children=${this.children.size}`);
  }

  private acceptSome(): void {
    for (let n = 0; n < ACCEPT_BATCH && !this.stopping; n++) {
      const got = this.s.accept(this.listener);
      if ("errno" in got) {
        if (got.errno === EAGAIN || got.errno === EINTR) return;
        if ([EMFILE, ENFILE, ENOBUFS, ENOMEM].includes(got.errno)) this.outOfFds(got.errno);
        return;
      }
      if (this.waiting.size >= this.serve.maxWaiting) {
        this.refuse(got.fd, formatIp(got.remote.ip), "waiting");
        continue;
      }
      const key = keyOf(got.remote.ip);
      if (this.serve.maxPerIp > 0 && (this.perKey.get(key) ?? 0) >= this.serve.maxPerIp) {
        this.refuse(got.fd, formatIp(got.remote.ip), "per-ip");
        continue;
      }
      this.admit(got.fd, got.remote, key).catch((e) => {
        log.warning(`unable to serve a client: ${e instanceof Error ? e.message : e}`);
      });
    }
  }

  /** The fd table is full: give back the spare fd, take the client, refuse it, keep the spare. */
  private outOfFds(errno: number): void {
    if (this.spare >= 0) this.s.close(this.spare);
    const got = this.s.accept(this.listener);
    if (!("errno" in got)) this.refuse(got.fd, formatIp(got.remote.ip), "fds");
    this.spare = this.s.spareFd();
    log.warning(`unable to accept: out of file descriptors or memory (errno ${errno})`);
    if (this.spare < 0 && !this.stopping) {
      // Not even the spare: stop listening for a moment rather than spin on the listener.
      this.loop.remove(this.listener);
      setTimeout(() => {
        if (this.stopping) return;
        this.spare = this.s.spareFd();
        this.loop.add(this.listener, EPOLLIN, () => this.acceptSome());
      }, 100);
    }
  }

  /** 421 at once and close: no room. */
  private refuse(fd: number, ip: string, why: string): void {
    this.busy(fd, ip, why);
    this.s.close(fd);
  }

  /** 421 and FIN (the caller closes): no room, or no rules to trust. */
  private busy(fd: number, ip: string, why: string): void {
    answer(this.c, reply(421, FULL_TEXT), fd, fd);
    log.event(`BUSY ip=${log.clean(ip)} why=${why} waiting=${this.waiting.size} action=421`);
  }

  /**
   * The screening's Config for a client: parsed from the environment as the
   * filter parses it, and shared by every client whose SMTPDELAY* variables
   * are the same (only the rules can change them), so that a waiting client
   * holds no Config of its own.
   */
  private configOf(env: Record<string, string>, own: Record<string, string>, stressed: boolean) {
    const key = JSON.stringify(Object.entries(own).filter(([k]) => k.startsWith("SMTPDELAY"))) +
      (stressed ? " stressed" : "");
    let config = this.configs.get(key);
    if (!config) {
      const request = parseConfig([...this.serve.screening, "--", ...this.serve.program], env);
      if (request.kind !== "run") throw new UsageError("-v is not a screening option");
      // Once per set of variables, as long as the set is kept.
      for (const warning of request.warnings) log.warning(warning);
      config = stressed ? underStress(request.config, this.serve.stressDelayMs) : request.config;
      if (this.configs.size >= 256) this.configs.clear();
      this.configs.set(key, config);
    }
    return config;
  }

  /** A connection is over (no child, or its child ended). */
  private release(id: number): void {
    const key = this.open.get(id);
    if (key === undefined) return;
    this.open.delete(id);
    const n = (this.perKey.get(key) ?? 1) - 1;
    if (n > 0) this.perKey.set(key, n);
    else this.perKey.delete(key);
  }

  private updateStress(): void {
    const limit = this.serve.maxWaiting;
    const percent = this.serve.stressPercent;
    if (percent === 0) return;
    const high = (limit * percent) / 100;
    if (!this.stressed && this.waiting.size >= high) {
      this.stressed = true;
      log.event(`STRESS on waiting=${this.waiting.size} limit=${limit}`);
    } else if (this.stressed && this.waiting.size < high * 0.75) {
      this.stressed = false;
      log.event(`STRESS off waiting=${this.waiting.size} limit=${limit}`);
    }
  }

  /** A new client: rules, screening, then a child or an answer. */
  private async admit(fd: number, remote: { ip: Ip; port: number }, key: string) {
    const id = this.nextId++;
    const w = new Waiting(fd, this.c);
    this.waiting.set(fd, w);
    this.open.set(id, key);
    this.perKey.set(key, (this.perKey.get(key) ?? 0) + 1);
    this.loop.add(fd, EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, (revents) => w.settle(revents));
    // Stress is what this client found on arrival; its own arrival may start it for the next.
    const stressed = this.stressed;
    this.updateStress();
    let handOn: (() => void) | undefined;
    try {
      const local = this.s.localAddress(fd);
      const conn: Connection = {
        local: { ip: formatIp(local.ip), port: local.port, host: undefined },
        remote: { ip: formatIp(remote.ip), port: remote.port, host: undefined },
        v6: local.ip.family === 6,
      };
      const localName = this.localName(conn.local.ip);
      // -h: tcpserver's lookup, done once and shared with the screening.
      let looked: Lookup | undefined;
      if (this.serve.lookupRemote) {
        looked = await lookupWhileWatching(remote.ip, this.base, w);
        if (looked?.kind === "found") conn.remote.host = looked.name;
      }
      const rule = this.rules?.lookup(conn.remote.ip, conn.remote.host);
      if (rule?.kind === "unreadable") {
        log.warning(`dropping connection, unable to read ${this.serve.rulesFile}: ${rule.reason}`);
        this.busy(fd, conn.remote.ip, "rules");
        return;
      }
      conn.local.host = this.serve.localName ?? await localName;
      if (rule?.kind === "deny") {
        if (this.serve.verbosity >= 2) log.tcpserver(denyLine(0, conn));
        return;
      }
      // Only this connection's own variables are kept per client; the rest is the base's.
      const own = connectionVars(conn, rule?.env ?? {});
      const env: Record<string, string> = Object.assign(Object.create(this.base_), own);
      // What the rules' variables make of the screening, checked as the filter checks its own.
      let config: Config;
      let client: Client;
      let patterns: RegExp[] | undefined;
      let allow: Exemptions | undefined;
      try {
        config = this.configOf(env, own, stressed);
        client = readClient(env);
        patterns = this.reload.patternsOf(config);
        allow = await this.reload.allowOf(config);
      } catch (e) {
        if (!(e instanceof UsageError)) throw e;
        log.warning(`dropping connection from ${conn.remote.ip}: ${e.message}`);
        return;
      }
      const screened = await screen({
        config,
        client,
        relayClient: env.RELAYCLIENT !== undefined,
        patterns,
        allow,
        watcher: w,
        hold: (ms) => w.waitAsync(ms),
        remember: () => this.remember(config, client.ip, id),
        now,
        roll: Math.random() * 100,
        ...(this.serve.lookupRemote && looked?.kind !== "found" && looked ? { looked } : {}),
      });
      handOn = this.act(screened, w, id, config, env, conn, client.ipText);
    } finally {
      // Out of the epoll set before the fd is closed or handed on: its number will be reused.
      this.loop.remove(fd);
      this.waiting.delete(fd);
      if (!handOn) {
        this.release(id);
        this.s.close(fd);
      }
      this.updateStress();
    }
    if (!handOn) return;
    if (this.children.size < this.serve.maxChildren) handOn();
    else this.queue.push(handOn);
  }

  /** Acts on the verdict; for a pass, returns what starts the child (the fd stays open). */
  private act(
    screened: Screened,
    w: Waiting,
    id: number,
    config: Config,
    env: Record<string, string>,
    conn: Connection,
    ipText: string,
  ): (() => void) | undefined {
    const { verdict, watched } = screened;
    const peek = () => watched.kind === "early" ? this.c.peek(w.fd, log.MAX_FIELD) : undefined;
    switch (verdict.kind) {
      case "drop":
        log.outcome(outcomeOf(screened, ipText, 0, undefined));
        void forget(screened.memory, departureOf(verdict));
        return undefined;
      case "reply": {
        const peeked = peek();
        const sent = answer(this.c, verdict.reply, w.fd, w.fd);
        log.outcome(outcomeOf(screened, ipText, 0, peeked ?? sent));
        void forget(screened.memory, departureOf(verdict));
        return undefined;
      }
      case "pass": {
        const data = peek();
        return () => this.spawn(screened, w.fd, id, config, env, conn, ipText, data, w.start);
      }
    }
  }

  private spawn(
    screened: Screened,
    fd: number,
    id: number,
    config: Config,
    env: Record<string, string>,
    conn: Connection,
    ipText: string,
    data: Uint8Array | undefined,
    startMs: number,
  ): void {
    // A client that hung up while it waited for a free child (-c) starts nothing.
    const revents = this.c.readable(fd, 0);
    const seen = revents === 0
      ? undefined
      : interpret(revents, this.c.bytesWaiting(fd), now() - startMs);
    if (seen?.kind === "closed") {
      const dropped: Screened = {
        ...screened,
        verdict: { kind: "drop", event: "closed" },
        watched: seen,
      };
      log.outcome(outcomeOf(dropped, ipText, 0, undefined));
      this.s.close(fd);
      this.release(id);
      void forget(screened.memory, "gone");
      return;
    }
    const given = { ...env, ...exportsOf(screened) }; // own keys only: the base is inherited
    const vars = [
      ...this.baseVars.filter(([k]) => !(k in given)).map(([, kv]) => kv),
      ...Object.entries(given).map(([k, v]) => `${k}=${v}`),
    ];
    const relayed = needsRelay(config.caps);
    let pid = 0;
    let mine = -1;
    try {
      if (relayed) {
        const [ours, theirs] = this.s.socketPair();
        mine = ours;
        try {
          pid = this.s.spawn(config.program, vars, theirs, theirs);
        } finally {
          this.s.close(theirs);
        }
      } else {
        pid = this.s.spawn(config.program, vars, fd, fd);
      }
    } catch (e) {
      log.outcome(outcomeOf(screened, ipText, 0, data));
      log.warning(`unable to run ${log.clean(config.program[0])}: ${(e as SysError).message}`);
      this.s.close(fd);
      if (mine >= 0) this.s.close(mine);
      this.release(id);
      void forget(screened.memory, "gone");
      return;
    }
    log.outcome(outcomeOf(screened, ipText, pid, data, relayed));
    void forget(screened.memory, departureOf(screened.verdict));
    const logEnd = (why: string, fromClient?: number, fromChild?: number) =>
      log.end({ pid, ip: ipText, why, fromClient, fromChild, ms: now() - startMs });
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (relayed) {
      this.relays++;
      relay(
        this.loop,
        this.s,
        { clientIn: fd, clientOut: fd, child: mine },
        config.caps,
        now,
        startMs,
      )
        .then((end) => {
          this.s.close(fd);
          this.s.close(mine);
          this.relays--;
          logEnd(end.why, end.fromClient, end.fromChild);
        });
    } else {
      this.s.close(fd);
      if (config.caps.maxSessionMs > 0) {
        // No relay: the session cap is a signal to the child.
        timer = setTimeout(() => {
          this.s.kill(pid, SIGTERM);
          logEnd("session");
        }, Math.max(0, Math.ceil(startMs + config.caps.maxSessionMs - now()))); // no fraction: setTimeout drops it, firing early
      }
    }
    let pidfd: number;
    try {
      pidfd = this.s.pidfd(pid);
    } catch (e) {
      log.warning((e as Error).message);
      return;
    }
    const child: Child = { pid, pidfd, id, timer };
    this.children.set(pidfd, child);
    this.loop.add(pidfd, EPOLLIN, () => this.ended(child));
    this.status();
    if (this.serve.verbosity >= 2) {
      log.tcpserver(pidLine(pid, conn));
      log.tcpserver(okLine(pid, conn));
    }
  }

  private ended(child: Child): void {
    const status = this.s.reap(child.pid);
    if (status === undefined) return; // not yet (spurious wake-up)
    this.loop.remove(child.pidfd);
    this.s.close(child.pidfd);
    clearTimeout(child.timer);
    this.children.delete(child.pidfd);
    this.release(child.id);
    if (this.serve.verbosity >= 2) log.tcpserver(endLine(child.pid, status));
    this.status();
    while (this.queue.length > 0 && this.children.size < this.serve.maxChildren) {
      this.queue.shift()!();
    }
  }

  /** TCPLOCALHOST for a local address: -l, or its PTR, looked up once. */
  private localName(ip: string): Promise<string | undefined> {
    if (this.serve.localName !== undefined) return Promise.resolve(this.serve.localName);
    let name = this.localNames.get(ip);
    if (!name) {
      name = (async () => {
        const { lookupPtr } = await import("../rdns.ts");
        const { parseIp } = await import("../ip.ts");
        const found = await lookupPtr(
          parseIp(ip)!,
          this.base.nameServer,
          AbortSignal.timeout(this.base.lookupTimeoutMs),
        );
        return found.kind === "found" ? found.name : undefined;
      })();
      this.localNames.set(ip, name);
    }
    return name;
  }

  private async remember(config: Config, ip: Ip, id: number): Promise<Memory> {
    const mark = `serve:${Deno.pid}:${this.selfStart ?? ""}:`;
    return await remember(config, ip, this.c, {
      pid: -id,
      start: `${mark}${id}`,
      alive: (c) => {
        if (c.pid >= 0) return undefined;
        if (c.start.startsWith(mark)) return this.open.has(-c.pid);
        // Another server on this host: open while that server runs (an over-count at most).
        const [, pid, start] = c.start.split(":");
        return processStart(this.c, Number(pid)) === start;
      },
      // SQLite is synchronous: one handle serves every connection, each change in its own
      // transaction. Redis's WATCH/MULTI needs a connection per change: opened per client.
      ...(config.store.startsWith("sqlite:") ? { shared: () => this.sqlite(config) } : {}),
    });
  }

  /** The SQLite store of `config`: one handle for every client (see state_file.ts). */
  private sqlite(config: Config): Promise<Store> {
    const key = `${config.store} ${config.storeTimeoutMs}`;
    let file = this.stateFiles.get(key);
    if (!file) {
      file = new SharedSqlite(config.store.replace(/^sqlite:/, ""), config.storeTimeoutMs, now);
      this.stateFiles.set(key, file);
    }
    return Promise.resolve(file.store);
  }
}

/** Under stress every delay is at most `capMs`. */
export function underStress(config: Config, capMs: number): Config {
  const cap = (ms: number) => Math.min(ms, capMs);
  return Object.freeze({
    ...config,
    delayMs: Object.freeze({
      ptr: cap(config.delayMs.ptr),
      dynamic: cap(config.delayMs.dynamic),
      noptr: cap(config.delayMs.noptr),
    }),
  });
}

/** V8's young generation for serve: see smallYoungGeneration. */
const SEMI_SPACE_FLAG = "--max-semi-space-size=1";

/**
 * Serve's garbage is many small objects per client; V8 lets its young
 * generation grow to 16 MB per semi-space under such load, and keeps it. A
 * 1 MB semi-space costs the server little, and brought a waiting client
 * from 20 to 13 KB at 1000 waiting (make bench, bench/results/bench.md). V8 flags can only be set at start, and the
 * per-connection filter is better without this one (each start would pay
 * for early scavenges), so serve runs itself again with DENO_V8_FLAGS set,
 * once, before it listens. Skipped when DENO_V8_FLAGS already names a
 * semi-space size or the command line cannot be read whole.
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

/** `smtp-delay serve ARGS`: returns the exit code (100 usage, 111 system failure). */
export async function serve(
  args: readonly string[],
  env: Readonly<Record<string, string>>,
): Promise<number> {
  let services = "";
  try {
    services = Deno.readTextFileSync("/etc/services");
  } catch {
    // numbers only, then
  }
  const asked = serveAsks(args);
  if (asked) {
    const { text } = printRequest(asked) as { text: string };
    Deno.stdout.writeSync(new TextEncoder().encode(text + "\n"));
    return 0;
  }
  const options = parseServe(args, env, services);
  const request = parseConfig([...options.screening, "--", ...options.program], env);
  if (request.kind !== "run") throw new UsageError("-v is not a screening option");
  // A missing pattern file or allowlist of the run file is a usage error now, not per client.
  if (request.config.patternFile !== undefined) readPatterns(request.config.patternFile);
  await loadExemptions(request.config.allowFile);
  const c = libc();
  smallYoungGeneration(c, env);
  const s = sys();
  const files = s.raiseFileLimit();
  // Each waiting client holds one fd, each relayed session two, and Deno itself a few dozen.
  if (files < options.maxWaiting + 64) {
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
  const selfStart = processStart(c, "self");
  let server: Server;
  try {
    server = new Server(options, request.config, ownFlagsOff(env), s, c, selfStart);
    if (options.uid !== undefined || options.gid !== undefined) {
      s.becomeUser(options.uid ?? 0, options.gid ?? 0);
    }
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
  return await server.run();
}
