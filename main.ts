/**
 * smtp-delay: wiring only. config -> client -> (watch | lookup) -> decide -> act.
 * The one place that exits: 0 after an answer or a hang-up, 100 for bad
 * usage, 111 when the next program cannot run or the system fails.
 */
import { BUILTIN_PATTERNS, classify, parsePatterns, type Tier } from "./src/classify.ts";
import { readClient } from "./src/client.ts";
import { type Config, parseConfig, USAGE, UsageError, VERSION } from "./src/config.ts";
import { decide, type Facts, type Verdict } from "./src/decide.ts";
import { answer, handOn } from "./src/handoff.ts";
import { libc } from "./src/libc.ts";
import * as log from "./src/log.ts";
import { type Lookup, lookupPtr, nameOf } from "./src/rdns.ts";
import { watch } from "./src/watch.ts";

const now = () => performance.now();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function readPatterns(path: string): RegExp[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new UsageError(`Unable to read pattern file "${path}": ${(e as Error).message}`);
  }
  return parsePatterns(text, `Pattern file "${path}"`);
}

async function run(): Promise<number> {
  const env = Deno.env.toObject();
  const request = parseConfig(Deno.args, env);
  if (request.kind === "version") {
    log.usage(VERSION, USAGE);
    return 0;
  }
  const config: Config = request.config;
  const client = readClient(env);
  const patterns = config.patternFile ? readPatterns(config.patternFile) : undefined;

  // From here on the client is watched, during the lookup too.
  const c = libc();
  const watcher = watch(c, 0, now);
  const start = now();
  const roll = Math.random() * 100;

  let lookup: Lookup | undefined = client.host ? { kind: "host", name: client.host } : undefined;
  if (!lookup) {
    const deadlineMs = Math.min(config.lookupTimeoutMs, config.delayMs.noptr);
    const talked = watcher.event.then(() => undefined); // act at once, the name unknown
    lookup = await Promise.race([lookupPtr(client.ip, config.nameServer, deadlineMs), talked]);
  }
  const name = lookup && nameOf(lookup);
  const tier: Tier | undefined = lookup &&
    classify(name, client.ip, name ? patterns ?? parsePatterns(BUILTIN_PATTERNS) : []);
  const facts = (delayOver: boolean): Facts => ({
    tier,
    lookup: lookup?.kind ?? "pending",
    watched: watcher.current(),
    roll,
    delayOver,
  });

  let verdict: Verdict = decide(config, facts(false));
  if (verdict.kind === "wait") {
    const leftMs = config.delayMs[tier!] - (now() - start);
    if (leftMs > 0) await Promise.race([watcher.event, sleep(leftMs)]);
    verdict = decide(config, facts(true));
  }

  if (lookup?.kind === "timeout" || lookup?.kind === "error") {
    const why = lookup.kind === "timeout" ? "timed out" : lookup.reason;
    log.warning(`unable to look up the PTR of ${client.ipText}: ${why}`);
  }
  const waitedMs = now() - start;
  const watched = watcher.current();
  const outcome = {
    pid: Deno.pid,
    ip: client.ipText,
    tier,
    ptr: name,
    lookup: lookup?.kind ?? "pending",
    delayMs: tier && config.delayMs[tier],
    waitedMs,
    ...(watched.kind === "early" ? { bytes: watched.bytes } : {}),
  };

  switch (verdict.kind) {
    case "drop":
      log.outcome({ ...outcome, event: verdict.event, action: "exit" });
      return 0;
    case "reply": {
      const peeked = watched.kind === "early" ? c.peek(0, log.MAX_FIELD) : undefined;
      const sent = answer(c, verdict.reply);
      log.outcome({
        ...outcome,
        event: verdict.event,
        action: verdict.reply.slice(0, 3),
        data: peeked ?? sent,
      });
      return 0;
    }
    case "pass": {
      const exported: Record<string, string> = {
        SMTPDELAY_TIER: tier ?? "",
        SMTPDELAY_PTR: name ? log.clean(name, 255) : "",
        SMTPDELAY_WAITED: log.seconds(waitedMs),
      };
      if (verdict.rblsmtpd !== undefined) exported.RBLSMTPD = verdict.rblsmtpd;
      const action = verdict.event !== "pass"
        ? "rblsmtpd"
        : verdict.rblsmtpd === ""
        ? "justdelay"
        : "exec";
      log.outcome({
        ...outcome,
        event: verdict.event,
        action,
        ...(watched.kind === "early" ? { data: c.peek(0, log.MAX_FIELD) } : {}),
      });
      const why = handOn(c, config.program, exported);
      log.fatal(`unable to run ${log.clean(config.program[0])}: ${why}`);
      return 111;
    }
    case "wait":
      throw new Error("decide() asked to wait after the delay");
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
