/**
 * smtp-delay: wiring only. config -> client -> screen (watch, lookup, decide) -> act.
 * `smtp-delay serve` (src/serve/) and `smtp-delay state` (src/admin.ts) load
 * their modules only when asked for.
 * The one place that exits: 0 after an answer or a hang-up, 100 for bad
 * usage, 111 when the next program cannot run or the system fails.
 */
import { readClient } from "./src/client.ts";
import {
  type Config,
  needsRelay,
  noRblsmtpdWarning,
  parseConfig,
  runsRblsmtpd,
} from "./src/config.ts";
import { answer, handOn } from "./src/handoff.ts";
import { libc } from "./src/libc.ts";
import * as log from "./src/log.ts";
import {
  departureOf,
  exportsOf,
  forget,
  loadExemptions,
  outcomeOf,
  readPatterns,
  screen,
  type Screened,
} from "./src/screen.ts";
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
  const request = parseConfig(Deno.args, env);
  if (request.kind === "print") {
    if (request.stdout) Deno.stdout.writeSync(new TextEncoder().encode(request.text + "\n"));
    else log.usage(request.text);
    return 0;
  }
  const config: Config = request.config;
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
    hold: (ms) => Promise.resolve(watcher.waitSync(ms)), // nothing else to do meanwhile
    remember: async () => {
      const { remember } = await import("./src/remember.ts");
      return await remember(config, client.ip, c);
    },
    now,
    roll: Math.random() * 100,
  });
  const { verdict, watched } = screened;
  const peek = () => watched.kind === "early" ? c.peek(0, log.MAX_FIELD) : undefined;
  switch (verdict.kind) {
    case "drop":
      log.outcome(outcomeOf(screened, client.ipText, Deno.pid, undefined));
      await forget(screened.memory, departureOf(verdict));
      return 0;
    case "reply": {
      const peeked = peek();
      const sent = answer(c, verdict.reply);
      log.outcome(outcomeOf(screened, client.ipText, Deno.pid, peeked ?? sent));
      await forget(screened.memory, departureOf(verdict));
      return 0;
    }
    case "pass": {
      const relayed = needsRelay(config.caps);
      log.outcome(outcomeOf(screened, client.ipText, Deno.pid, peek(), relayed));
      if (verdict.event !== "pass" && !runsRblsmtpd(config.program)) {
        log.warning(noRblsmtpdWarning(config.program));
      }
      await forget(screened.memory, departureOf(verdict));
      if (relayed) return await relayOn(config, screened, client.ipText);
      // The session cap without a relay: an alarm, which exec keeps.
      const leftMs = config.caps.maxSessionMs - screened.waitedMs;
      const alarmSeconds = config.caps.maxSessionMs > 0 ? Math.max(1, Math.ceil(leftMs / 1000)) : 0;
      const why = handOn(c, config.program, exportsOf(screened), alarmSeconds);
      log.fatal(`unable to run ${log.clean(config.program[0])}: ${why}`);
      return 111;
    }
  }
}

/**
 * Stays as a relay between the client and `prog` (--max-idle,
 * --max-bytes-per-second): the session's bytes go through this process.
 * Exits with prog's status.
 */
async function relayOn(config: Config, screened: Screened, ip: string): Promise<number> {
  const [{ sys, SysError }, { relayed }] = await Promise.all([
    import("./src/serve/sys.ts"),
    import("./src/serve/relay.ts"),
  ]);
  const env = Object.entries({ ...Deno.env.toObject(), ...exportsOf(screened) })
    .map(([k, v]) => `${k}=${v}`);
  try {
    const startMs = now() - screened.waitedMs;
    const { end, pid, status } = await relayed(
      sys(),
      config.program,
      env,
      config.caps,
      now,
      startMs,
    );
    log.end({ pid, ip, ...end, ms: now() - startMs });
    return (status & 0x7f) === 0 ? (status >> 8) & 0xff : 111;
  } catch (e) {
    if (!(e instanceof SysError)) throw e;
    log.fatal(`unable to run ${log.clean(config.program[0])}: ${e.message}`);
    return 111;
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
