/**
 * smtp-delay: wiring only. The filter: config -> client -> screen (watch,
 * lookup, decide) -> act. `smtp-delay serve` (src/serve/), `smtp-delay
 * state` (src/admin.ts) and `smtp-delay metrics` (src/metrics/) load their
 * modules only when asked for.
 * The one place that exits: 0 after an answer or a hang-up, 100 for bad
 * usage, 111 when the next program cannot run or the system fails.
 */
import { act, type Started } from "./src/act.ts";
import { readClient } from "./src/client.ts";
import { type Config, parseConfig } from "./src/config.ts";
import { handOn } from "./src/handoff.ts";
import { type Libc, libc, SysError } from "./src/libc.ts";
import * as log from "./src/log.ts";
import { loadExemptions, readPatterns, screen } from "./src/screen.ts";
import { UsageError } from "./src/usage_error.ts";
import { watch } from "./src/watch.ts";

const now = () => performance.now();

async function run(): Promise<number> {
  const env = Deno.env.toObject();
  if (Deno.args[0] === "state") {
    const { admin } = await import("./src/admin.ts");
    return await admin(Deno.args.slice(1), env);
  }
  if (Deno.args[0] === "serve") {
    const { serve } = await import("./src/serve/server.ts");
    return await serve(Deno.args.slice(1), env);
  }
  if (Deno.args[0] === "report") { // src/report/: reads logs, never imported by the filter
    const { report } = await import("./src/report/report.ts");
    return await report(Deno.args.slice(1));
  }
  if (Deno.args[0] === "allowlist") { // src/spf/: an allowlist from SPF records, for cron
    const { allowlist } = await import("./src/spf/command.ts");
    return await allowlist(Deno.args.slice(1), env);
  }
  if (Deno.args[0] === "metrics") {
    const { metrics } = await import("./src/metrics/command.ts");
    return await metrics(Deno.args.slice(1));
  }
  const request = parseConfig(Deno.args, env);
  if (request.kind === "print") {
    if (request.stdout) Deno.stdout.writeSync(new TextEncoder().encode(request.text + "\n"));
    else log.usage(request.text);
    return 0;
  }
  const { config } = request;
  for (const warning of request.warnings) log.warning(warning);
  const client = readClient(env);
  const patterns = config.patternFile ? readPatterns(config.patternFile) : undefined;
  const allow = await loadExemptions(config.allowFile);

  // From here on the client is watched, during the lookup too.
  const c = libc();
  const watcher = watch(c, 0, now);
  const screened = await screen({
    config,
    client,
    relayClient: env.RELAYCLIENT !== undefined,
    patterns,
    allow,
    watcher,
    // Nothing else to do meanwhile, unless the lists may answer.
    hold: (ms, until) =>
      until ? watcher.waitAsync(ms, until) : Promise.resolve(watcher.waitSync(ms)),
    pause: (ms) => c.sleep(ms),
    send: (text) => void c.writeAll(1, new TextEncoder().encode(text)),
    remember: async () => {
      const { remember } = await import("./src/remember.ts");
      return await remember(config, client.ip, c);
    },
    now,
    roll: Math.random() * 100,
    asker: { libc: c },
  });
  const startMs = now() - screened.waitedMs;
  const acted = await act(screened, config, {
    input: 0,
    output: 1,
    ip: client.ipText,
    pid: Deno.pid,
    inPlace: true, // exec keeps this pid; a relay's lines carry it too
    warnEachClient: true,
    start: (exports, relayed) =>
      relayed ? relayOn(c, config, exports, client.ipText, startMs) : Promise.resolve({
        failed: handOn(c, config.program, exports, alarmFor(config, startMs)),
      }),
  }, c);
  switch (acted.kind) {
    case "let go":
      return 0;
    case "failed":
      log.fatal(`unable to run ${log.clean(config.program[0])}: ${acted.reason}`);
      return 111;
    case "started": // a relay, whose program ended with this wait status
      return ((acted.status ?? 0) & 0x7f) === 0 ? ((acted.status ?? 0) >> 8) & 0xff : 111;
  }
}

/** The session cap without a relay: an alarm, which exec keeps; whole seconds, at least 1. */
function alarmFor(config: Config, startMs: number): number {
  const { maxSessionMs } = config.caps;
  return maxSessionMs > 0 ? Math.max(1, Math.ceil((startMs + maxSessionMs - now()) / 1000)) : 0;
}

/**
 * Stays as a relay between the client and `prog` (--max-idle,
 * --max-bytes-per-second): the session's bytes go through this process,
 * and its END line is logged when the session ends.
 */
async function relayOn(
  c: Libc,
  config: Config,
  exports: Readonly<Record<string, string>>,
  ip: string,
  startMs: number,
): Promise<Started> {
  const { relayed } = await import("./src/relay.ts");
  const env = Object.entries({ ...Deno.env.toObject(), ...exports }).map(([k, v]) => `${k}=${v}`);
  try {
    const { end, pid, status } = await relayed(c, { program: config.program, env }, {
      caps: config.caps,
      now,
      startMs,
    });
    log.end({ pid, ip, ...end, ms: now() - startMs });
    return { pid, status };
  } catch (e) {
    if (!(e instanceof SysError)) throw e;
    return { failed: e.message };
  }
}

let code: number;
try {
  code = await run();
} catch (e) {
  if (e instanceof UsageError) {
    log.fatal(e.message);
    code = 100;
  } else {
    log.fatal(`unable to filter: ${e instanceof Error ? e.message : String(e)}`);
    code = 111;
  }
}
Deno.exit(code);
