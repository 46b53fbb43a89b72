/**
 * The screening of one connection, from the client's address to the verdict:
 * exemptions, memory, PTR lookup (raced with the watch), tier, delay, and the
 * decision. Shared by the per-connection filter (main.ts) and the server
 * (src/serve/): what differs between them (how to wait, how the memory
 * names a connection) comes in through `Screening`.
 */
import { BUILTIN_PATTERNS, classify, parsePatterns, type Tier } from "./classify.ts";
import type { Client } from "./client.ts";
import type { Config } from "./config.ts";
import { decide, delayFor, type Facts, memoryRefusal, type Verdict } from "./decide.ts";
import type { Recall } from "./history.ts";
import type { Ip } from "./ip.ts";
import type { Datagrams, Follow } from "./lists/ask.ts";
import type { Listing } from "./lists/listing.ts";
import type { Judgement } from "./lists/score.ts";
import * as log from "./log.ts";
import { type Lookup, lookupPtr, nameOf } from "./rdns.ts";
import type { Memory } from "./remember.ts";
import type { ListCache } from "./store/store.ts";
import type { Watch, Watched } from "./watch.ts";
import { UsageError } from "./usage_error.ts";

/** The allowlist's answers, when there is one. */
export interface Exemptions {
  ip(ip: Ip): boolean;
  name(name: string | undefined): boolean;
  readonly hasNames: boolean;
}

/** What one screening needs from the program that runs it. */
export interface Screening {
  readonly config: Config;
  readonly client: Client;
  /** RELAYCLIENT is set. */
  readonly relayClient: boolean;
  /** Dynamic-name patterns; undefined: the built-in list. */
  readonly patterns: readonly RegExp[] | undefined;
  readonly allow: Exemptions | undefined;
  readonly watcher: Watch;
  /**
   * Waits until the client acts or `ms` pass (the delay itself), or
   * `until` resolves (the lists' score decided the client).
   */
  hold(ms: number, until?: Promise<unknown>): Promise<Watched>;
  /** Waits `ms`, watching nothing: the rest of a delay once a client has acted (--action ignore). */
  pause(ms: number): Promise<void>;
  /** Writes `text` to the client (the teaser). */
  send(text: string): void;
  /** Opens this connection's memory (only called when there is a store). */
  remember(): Promise<Memory>;
  readonly now: () => number;
  /** Uniform in [0, 100): compared with -N. */
  readonly roll: number;
  /** A lookup already done (serve's -h) when it found no name: not asked again. */
  readonly looked?: Lookup;
  /**
   * How the lists' queries are sent, and their socket watched (undefined:
   * poll on a helper thread, the filter's way); used only with --dnsbl.
   */
  readonly asker: { readonly libc: Datagrams; readonly follow?: Follow };
}

/** The verdict and everything the outcome line and the hand-off need. */
export interface Screened {
  readonly verdict: Exclude<Verdict, { kind: "wait" }>;
  readonly watched: Watched;
  readonly tier: Tier | undefined;
  readonly name: string | undefined;
  readonly lookup: Lookup["kind"] | "pending";
  readonly delayMs: number | undefined;
  readonly waitedMs: number;
  /** The memory's notes for `memory=`. */
  readonly notes: string;
  readonly memory: Memory;
  /** The lists' score at the verdict; undefined when they were not asked. */
  readonly listed: Judgement | undefined;
  /** The lists' answers got from the DNS, for the memory. */
  readonly answers: ListCache | undefined;
}

const OFF: Memory = { kind: "off" };

let builtin: RegExp[] | undefined;

/** The built-in patterns, compiled once per process. */
function builtinPatterns(): RegExp[] {
  builtin ??= parsePatterns(BUILTIN_PATTERNS);
  return builtin;
}

/** What the memory says of this client, if there is a memory. */
function recallOf(memory: Memory): Recall | undefined {
  return memory.kind === "on" ? memory.remembered.recalled : undefined;
}

/**
 * The PTR lookup, raced with the watch: it may take until -t, and never
 * longer than the noptr delay. Undefined when the client talked or hung up
 * first, or `until` resolved (the lists decided): the verdict needs no name
 * then. With `pause` (--action ignore, where a client that talked still
 * waits out its tier's delay), only a hang-up ends it, and `pause` keeps
 * the deadline.
 */
export async function lookupWhileWatching(
  ip: Ip,
  config: Config,
  watcher: Watch,
  pause?: (ms: number) => Promise<void>,
  until?: Promise<unknown>,
): Promise<Lookup | undefined> {
  const deadlineMs = Math.min(config.lookupTimeoutMs, config.delayMs.noptr);
  if (deadlineMs <= 0) return { kind: "skipped" };
  const started = performance.now();
  const stop = new AbortController();
  let decided = false;
  void until?.then(() => decided = true); // before the watch's own reaction to `until`
  const looking = lookupPtr(ip, config.nameServer, stop.signal);
  let first = await Promise.race([
    looking,
    watcher.waitAsync(deadlineMs, until).then((watched) => watched.kind),
  ]);
  if (first === "early" && pause && !decided) {
    const left = deadlineMs - (performance.now() - started);
    const paused = pause(left).then(() => "quiet" as const);
    first = await Promise.race([
      looking,
      paused,
      ...(until ? [until.then(() => "quiet" as const)] : []),
    ]);
  }
  if (typeof first === "object") return first;
  if (first === "early" || first === "closed" || decided) {
    stop.abort();
    return undefined;
  }
  if (first === "quiet") stop.abort(); // the deadline: `looking` ends as a timeout
  return await looking;
}

/** Reads a pattern file (-f); a missing or bad one is a usage error. */
export function readPatterns(path: string): RegExp[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new UsageError(`unable to read pattern file "${path}": ${log.reason(e)}`);
  }
  return parsePatterns(text, `pattern file "${path}"`);
}

/** The exemptions of the allowlist, loaded only when there is one. */
export async function loadExemptions(path: string | undefined): Promise<Exemptions | undefined> {
  if (path === undefined) return undefined;
  const { allowsIp, allowsName, loadAllowlist } = await import("./allow.ts");
  const list = loadAllowlist(path);
  return {
    ip: (ip: Ip) => allowsIp(list, ip),
    name: (name: string | undefined) => allowsName(list, name),
    hasNames: list.suffixes.length > 0,
  };
}

/**
 * Starts asking the lists about the client (undefined: no lists, or none
 * to ask: SMTPDELAY=JUSTDELAY, -t 0), with the memory's answers for it.
 * Loaded only then: a run file without lists pays nothing for them.
 */
async function startListing(
  s: Screening,
  recalled: Recall | undefined,
): Promise<Listing | undefined> {
  const { config, client } = s;
  if (!config.lists || config.justDelay || config.lookupTimeoutMs <= 0) return undefined;
  const [{ Listing }, { listServer, polled }] = await Promise.all([
    import("./lists/listing.ts"),
    import("./lists/ask.ts"),
  ]);
  return new Listing({
    lists: config.lists,
    ip: client.ip,
    ipText: client.ipText,
    server: listServer(config.nameServer),
    cached: recalled?.answers,
    libc: s.asker.libc,
    follow: s.asker.follow ?? polled(s.asker.libc),
    deadlineMs: config.lookupTimeoutMs,
    wallNow: Date.now,
  });
}

/**
 * Resolves when the lists' score ends the screening: the allowlists'
 * (handed on) or the blocklists' (refused); never with --action ignore,
 * where every client waits its delay and the score is only logged.
 */
function endedBy(listing: Listing, ignoring: boolean): Promise<void> {
  return listing.decisive.then(() => {
    const verdict = listing.judge().verdict;
    const ends = !ignoring && (verdict === "allow" || verdict === "block");
    return ends ? undefined : new Promise<never>(() => {});
  });
}

/** Screens one connection: the watch must have started when the connection did. */
export async function screen(s: Screening): Promise<Screened> {
  let listing: Listing | undefined;
  try {
    return await screening(s, (started) => listing = started);
  } finally {
    listing?.abandon(); // a zone still asked about when the verdict came is not needed
  }
}

async function screening(
  s: Screening,
  started: (listing: Listing | undefined) => void,
): Promise<Screened> {
  const { config, client, allow, watcher } = s;
  const start = s.now();
  const remember = () => config.store.kind === "none" ? Promise.resolve(OFF) : s.remember();

  // RELAYCLIENT and the allowlist: no delay, no limits, no memory, no lists, handed on at once.
  let exempt = s.relayClient || !!allow?.ip(client.ip) || !!allow?.name(client.host);
  // With rDNS suffixes in the allowlist, the memory and the lists wait for the name.
  const nameFirst = !exempt && client.host === undefined && !!allow?.hasNames;
  let memory: Memory = exempt || nameFirst ? OFF : await remember();
  let recalled = recallOf(memory);
  // The box and the limits refuse at once: no lookup, no list asked, for a client turned away
  // anyway. With --action ignore every test runs, and every client waits its tier's delay.
  const ignoring = config.action === "ignore";
  const refusedAtOnce = () => !ignoring && !!memoryRefusal(config, recalled);
  let listing: Listing | undefined;
  let listsEnd = 0;
  let ends: Promise<void> | undefined;
  /** The lists asked from now, with the memory's answers, until -t. */
  const startLists = async () => {
    started(listing = await startListing(s, recalled));
    listsEnd = s.now() + config.lookupTimeoutMs;
    ends = listing && endedBy(listing, ignoring);
  };
  if (!exempt && !nameFirst && !refusedAtOnce()) await startLists();
  const lookup: Lookup | undefined = exempt || refusedAtOnce()
    ? { kind: "unneeded" }
    : client.host
    ? { kind: "host", name: client.host }
    : s.looked ??
      await lookupWhileWatching(client.ip, config, watcher, ignoring ? s.pause : undefined, ends);
  const name = lookup && nameOf(lookup);
  if (nameFirst) {
    exempt = !!allow?.name(name);
    if (!exempt) memory = await remember();
    recalled = recallOf(memory);
    if (!exempt && !refusedAtOnce()) await startLists();
  }
  if (memory.kind === "down") log.warning(`going on without memory: ${memory.reason}`);
  const tier: Tier | undefined = lookup && lookup.kind !== "unneeded"
    ? classify(name, client.ip, name ? s.patterns ?? builtinPatterns() : [])
    : undefined;
  const chosen = tier && delayFor(config, tier, recalled);
  const factsNow = (watched: Watched, delayOver: boolean): Facts => ({
    tier,
    lookup: lookup?.kind ?? "pending",
    watched,
    roll: s.roll,
    delayOver,
    memory: recalled,
    exempt,
    listed: listing?.judge().verdict,
  });

  let watched = watcher.waitSync(0);
  let verdict: Verdict = decide(config, factsNow(watched, false));
  if (verdict.kind === "wait" && config.teaser !== undefined && watched.kind === "quiet") {
    if (config.teaserTiers.includes(tier!)) s.send(`220-${config.teaser}\r\n`);
  }
  while (verdict.kind === "wait") {
    const now = s.now();
    const leftMs = chosen!.delayMs - (now - start);
    // The lists' time is up (-t), or the delay's: a zone that has not answered counts 0.
    if (listing?.pending && (leftMs <= 0 || now >= listsEnd)) listing.finish();
    const asking = listing?.pending === true;
    const waitMs = asking ? Math.min(leftMs, listsEnd - now) : leftMs;
    if (waitMs > 0 && watched.kind === "quiet") {
      watched = await s.hold(waitMs, asking ? ends : undefined);
    } else if (waitMs > 0) {
      await s.pause(waitMs); // --action ignore: what it did is noted, the delay waited out
    }
    // The delay is over when the time is, and the client did not act first (or was ignored).
    const over = s.now() - start >= chosen!.delayMs && (watched.kind === "quiet" || ignoring);
    if (over) listing?.finish();
    verdict = decide(config, factsNow(watched, over));
  }

  if (lookup?.kind === "timeout" || lookup?.kind === "error") {
    const why = lookup.kind === "timeout" ? "timed out" : lookup.reason;
    log.warning(`unable to look up the PTR of ${client.ipText}: ${why}`);
  }
  const refusedByMemory = "refusal" in verdict && verdict.refusal !== "noptr" &&
      verdict.refusal !== "listed"
    ? verdict.refusal
    : undefined;
  const notes = exempt
    ? ["exempt"]
    : memory.kind !== "on"
    ? [memory.kind]
    : refusedByMemory
    ? [refusedByMemory]
    : chosen?.applied ?? [];
  const allowed = verdict.kind === "pass" && verdict.allowed === true;
  return {
    verdict,
    watched,
    tier,
    name,
    lookup: lookup?.kind ?? "pending",
    delayMs: exempt || allowed ? 0 : chosen?.delayMs,
    waitedMs: s.now() - start,
    notes: notes.join(","),
    memory,
    listed: listing?.judge(),
    answers: listing?.cache(),
  };
}
