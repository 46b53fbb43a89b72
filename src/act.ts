/**
 * What follows the screening, in both modes: the one place that acts on a
 * verdict. A client that hung up is let go; one answered (-S) gets its reply
 * and is let go; one that passes is handed on to the next program, which
 * the mode starts (the filter: exec in place, or a relay; serve: a child).
 * Each way logs the outcome line and records the departure in the memory.
 */
import { type Config, needsRelay, noRblsmtpdWarning, runsRblsmtpd } from "./config.ts";
import { answer, type Answering } from "./handoff.ts";
import type { Departure } from "./history.ts";
import type { Libc } from "./libc.ts";
import * as log from "./log.ts";
import type { Memory } from "./remember.ts";
import type { Screened } from "./screen.ts";
import type { ListCache } from "./store/store.ts";

/** A program the mode started, or why it could not start it. */
export type Started = { pid: number; status?: number } | { failed: string };

/** How a mode hands a client on, and what its log lines say of it. */
export interface Hand {
  /** Where the client's bytes are read (early talk) and where replies go. */
  readonly input: number;
  readonly output: number;
  /** The client's address, as the log writes it. */
  readonly ip: string;
  /** The pid of the outcome line when no program runs: the filter's own, serve's 0. */
  readonly pid: number;
  /**
   * The program replaces this process (exec): the outcome line and the
   * departure come before it starts, with this process's pid. Otherwise
   * they come after, with the started program's pid.
   */
  readonly inPlace: boolean;
  /**
   * Warn of RBLSMTPD set for a chain without rblsmtpd at each such client
   * (the filter, which has no start of its own to say it at; serve says it
   * once when it starts listening).
   */
  readonly warnEachClient: boolean;
  /**
   * Starts the next program with the verdict's variables over the
   * client's environment, behind a relay when `relayed`. An exec returns
   * only on failure; a relay in the filter resolves when its session ends
   * (with the program's wait status).
   */
  start(exports: Readonly<Record<string, string>>, relayed: boolean): Promise<Started>;
}

/** What became of the client. */
export type Acted =
  | { kind: "let go" }
  | { kind: "started"; pid: number; status: number | undefined }
  | { kind: "failed"; reason: string };

/** Acts on `screened`'s verdict for the client `hand` holds. */
export async function act(
  screened: Screened,
  config: Config,
  hand: Hand,
  libc: Answering & Pick<Libc, "peek">,
): Promise<Acted> {
  const { verdict, watched } = screened;
  const peek = () => watched.kind === "early" ? libc.peek(hand.input, log.MAX_FIELD) : undefined;
  /** The outcome line, then the departure in the memory. */
  const leave = async (
    pid: number,
    data: Uint8Array | undefined,
    relayed: boolean,
    how = departureOf(verdict),
  ) => {
    log.outcome(outcomeOf(screened, hand.ip, pid, data, relayed, !!config.lists));
    await recordDeparture(screened.memory, how, screened.answers);
  };
  if (verdict.kind === "drop") {
    await leave(hand.pid, undefined, false);
    return { kind: "let go" };
  }
  if (verdict.kind === "reply") {
    const peeked = peek();
    const sent = answer(libc, verdict.reply, hand.input, hand.output);
    await leave(hand.pid, peeked ?? sent, false);
    return { kind: "let go" };
  }
  const data = peek();
  const relayed = needsRelay(config.caps);
  if (hand.warnEachClient && verdict.rblsmtpd && !runsRblsmtpd(config.program)) {
    log.warning(noRblsmtpdWarning(config.program));
  }
  if (hand.inPlace) await leave(hand.pid, data, relayed);
  const started = await hand.start(exportsOf(screened), relayed);
  if ("failed" in started) {
    if (!hand.inPlace) await leave(hand.pid, data, false, "gone");
    return { kind: "failed", reason: started.failed };
  }
  if (!hand.inPlace) await leave(started.pid, data, relayed);
  return { kind: "started", pid: started.pid, status: started.status };
}

/** The outcome line of a screened connection. */
export function outcomeOf(
  screened: Screened,
  ipText: string,
  pid: number,
  data: Uint8Array | undefined,
  relayed = false,
  lists = false,
): log.Outcome {
  const { verdict, watched } = screened;
  const would = verdict.kind === "pass" ? verdict.would : undefined;
  const action = verdict.kind === "drop"
    ? "exit"
    : verdict.kind === "reply"
    ? verdict.reply.slice(0, 3)
    : would
    ? "ignore"
    : verdict.event !== "pass"
    ? "rblsmtpd"
    : verdict.rblsmtpd === "" && !verdict.allowed
    ? "justdelay"
    : relayed
    ? "relay"
    : "exec";
  return {
    event: verdict.event,
    pid,
    ip: ipText,
    tier: screened.tier,
    ptr: screened.name,
    lookup: screened.lookup,
    delayMs: screened.delayMs,
    waitedMs: screened.waitedMs,
    action,
    ...(would ? { would } : {}),
    memory: screened.notes,
    ...(lists
      ? { lists: { score: screened.listed?.score, hits: screened.listed?.hits ?? [] } }
      : {}),
    ...(watched.kind === "early" ? { bytes: watched.bytes, data } : {}),
  };
}

/** The verdict variables the next program gets. */
export function exportsOf(screened: Screened): Record<string, string> {
  const exported: Record<string, string> = {
    SMTPDELAY_TIER: screened.tier ?? "",
    SMTPDELAY_PTR: screened.name ? log.clean(screened.name, 255) : "",
    SMTPDELAY_WAITED: log.seconds(screened.waitedMs),
  };
  const { verdict } = screened;
  if (verdict.kind === "pass" && verdict.rblsmtpd !== undefined) {
    exported.RBLSMTPD = verdict.rblsmtpd;
  }
  return exported;
}

/** How the connection left the screening, for the memory. */
export function departureOf(verdict: Screened["verdict"]): Departure {
  if (verdict.event === "early") return "early";
  if (verdict.kind === "pass" && verdict.allowed) return "allowed";
  return verdict.kind === "pass" && verdict.event === "pass" ? "pass" : "gone";
}

/** Records the departure, and the lists' answers, in the memory (if there is one); logs a failure. */
export async function recordDeparture(
  memory: Memory,
  how: Departure,
  answers?: ListCache,
): Promise<void> {
  if (memory.kind !== "on") return;
  const failure = await memory.remembered.depart(how, answers);
  if (failure) log.warning(`unable to remember the outcome: ${failure}`);
}
