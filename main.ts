/**
 * smtp-delay: wiring only. config -> client -> (watch | lookup) -> decide -> act.
 * The one place that exits: 0 after an answer or a hang-up, 100 for bad
 * usage, 111 when the next program cannot run or the system fails.
 */
import { BUILTIN_PATTERNS, classify, parsePatterns, type Tier } from "./src/classify.ts";
import { readClient } from "./src/client.ts";
import type { Ip } from "./src/ip.ts";
import { type Config, parseConfig, USAGE, UsageError, VERSION } from "./src/config.ts";
import { decide, delayFor, type Facts, memoryRefusal, type Verdict } from "./src/decide.ts";
import { answer, handOn } from "./src/handoff.ts";
import type { Departure, Recall } from "./src/history.ts";
import type { Memory } from "./src/remember.ts";
import { type Libc, libc } from "./src/libc.ts";
import * as log from "./src/log.ts";
import { type Lookup, lookupPtr, nameOf } from "./src/rdns.ts";
import { type Watch, watch } from "./src/watch.ts";

const now = () => performance.now();

/**
 * The PTR lookup, raced with the watch: it may take until -t, and never
 * longer than the noptr delay. Undefined when the client talked or hung up
 * first (the verdict needs no name then).
 */
async function lookupWhileWatching(
  ip: Ip,
  config: Config,
  watcher: Watch,
): Promise<Lookup | undefined> {
  const deadlineMs = Math.min(config.lookupTimeoutMs, config.delayMs.noptr);
  if (deadlineMs <= 0) return { kind: "skipped" };
  const stop = new AbortController();
  const looking = lookupPtr(ip, config.nameServer, stop.signal);
  const first = await Promise.race([
    looking,
    watcher.waitAsync(deadlineMs).then((watched) => watched.kind),
  ]);
  if (first === "early" || first === "closed") return undefined;
  if (first === "quiet") stop.abort(); // the deadline: `looking` ends as a timeout
  return await looking;
}

function readPatterns(path: string): RegExp[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new UsageError(`Unable to read pattern file "${path}": ${(e as Error).message}`);
  }
  return parsePatterns(text, `Pattern file "${path}"`);
}

const OFF: Memory = { kind: "off" };

/** What the memory says of this client, if there is a memory. */
function recallOf(memory: Memory): Recall | undefined {
  return memory.kind === "on" ? memory.remembered.recalled : undefined;
}

/** The memory of this connection; its modules load only when there is a store. */
async function rememberClient(config: Config, ip: Ip, c: Libc): Promise<Memory> {
  if (config.store === "none") return OFF;
  const { remember } = await import("./src/remember.ts");
  return await remember(config, ip, c);
}

/** The exemptions of the allowlist, loaded only when there is one. */
async function loadExemptions(path: string | undefined) {
  if (path === undefined) return undefined;
  const { allowsIp, allowsName, loadAllowlist } = await import("./src/allow.ts");
  const list = loadAllowlist(path);
  return {
    ip: (ip: Ip) => allowsIp(list, ip),
    name: (name: string | undefined) => allowsName(list, name),
    hasNames: list.suffixes.length > 0,
  };
}

async function run(): Promise<number> {
  const env = Deno.env.toObject();
  if (Deno.args[0] === "state") {
    const { admin } = await import("./src/admin.ts");
    return await admin(Deno.args.slice(1), env);
  }
  const request = parseConfig(Deno.args, env);
  if (request.kind === "version") {
    log.usage(VERSION, USAGE);
    return 0;
  }
  const config: Config = request.config;
  const client = readClient(env);
  const patterns = config.patternFile ? readPatterns(config.patternFile) : undefined;
  const allow = await loadExemptions(config.allowFile);

  // From here on the client is watched, during the lookup too.
  const c = libc();
  const watcher = watch(c, 0, now);
  const start = now();
  const roll = Math.random() * 100;

  // RELAYCLIENT and the allowlist: no delay, no limits, no memory, handed on at once.
  let exempt = env.RELAYCLIENT !== undefined || !!allow?.ip(client.ip) ||
    !!allow?.name(client.host);
  // With rDNS suffixes in the allowlist, the memory waits for the name.
  const nameFirst = !exempt && client.host === undefined && !!allow?.hasNames;
  let memory: Memory = exempt || nameFirst ? OFF : await rememberClient(config, client.ip, c);
  let recalled = recallOf(memory);
  // The box and the limits refuse at once: no lookup for a client turned away anyway.
  const lookup: Lookup | undefined = exempt || memoryRefusal(config, recalled)
    ? { kind: "unneeded" }
    : client.host
    ? { kind: "host", name: client.host }
    : await lookupWhileWatching(client.ip, config, watcher);
  const name = lookup && nameOf(lookup);
  if (nameFirst) {
    exempt = !!allow?.name(name);
    if (!exempt) memory = await rememberClient(config, client.ip, c);
    recalled = recallOf(memory);
  }
  if (memory.kind === "down") log.warning(`going on without memory: ${memory.reason}`);
  const tier: Tier | undefined = lookup && lookup.kind !== "unneeded"
    ? classify(name, client.ip, name ? patterns ?? parsePatterns(BUILTIN_PATTERNS) : [])
    : undefined;
  const chosen = tier && delayFor(config, tier, recalled);
  const factsNow = (delayOver: boolean): Facts => ({
    tier,
    lookup: lookup?.kind ?? "pending",
    watched: watcher.waitSync(0),
    roll,
    delayOver,
    memory: recalled,
    exempt,
  });

  let facts = factsNow(false);
  let verdict: Verdict = decide(config, facts);
  if (verdict.kind === "wait") {
    watcher.waitSync(chosen!.delayMs - (now() - start)); // nothing else to do meanwhile
    facts = factsNow(true);
    verdict = decide(config, facts);
  }

  if (lookup?.kind === "timeout" || lookup?.kind === "error") {
    const why = lookup.kind === "timeout" ? "timed out" : lookup.reason;
    log.warning(`unable to look up the PTR of ${client.ipText}: ${why}`);
  }
  const waitedMs = now() - start;
  const { watched } = facts;
  const refusedByMemory = "refusal" in verdict && verdict.refusal !== "noptr"
    ? verdict.refusal
    : undefined;
  const notes = exempt
    ? ["exempt"]
    : memory.kind !== "on"
    ? [memory.kind]
    : refusedByMemory
    ? [refusedByMemory]
    : chosen?.applied ?? [];
  const outcome = {
    pid: Deno.pid,
    ip: client.ipText,
    tier,
    ptr: name,
    lookup: lookup?.kind ?? "pending",
    delayMs: exempt ? 0 : chosen?.delayMs,
    waitedMs,
    memory: notes.join(","),
    ...(watched.kind === "early" ? { bytes: watched.bytes } : {}),
  };
  /** Records the departure (when there is a memory) before the process ends or execs. */
  const forget = async (how: Departure) => {
    if (memory.kind !== "on") return;
    const failure = await memory.remembered.depart(how);
    if (failure) log.warning(`unable to remember the outcome: ${failure}`);
  };

  switch (verdict.kind) {
    case "drop":
      log.outcome({ ...outcome, event: verdict.event, action: "exit" });
      await forget("gone");
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
      await forget(verdict.event === "early" ? "early" : "gone");
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
      await forget(
        verdict.event === "pass" ? "pass" : verdict.event === "early" ? "early" : "gone",
      );
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
