/**
 * The decision. Pure: (config, facts) -> Verdict. Every rule of the README is
 * a row of tests/decide_test.ts.
 */
import type { Tier } from "./classify.ts";
import type { Config } from "./config.ts";
import type { Recall } from "./history.ts";
import type { Lookup } from "./rdns.ts";
import { BOXED_TEXT, BUSY_TEXT, EARLY_TEXT, REFUSED_TEXT, reply } from "./reply.ts";
import type { Watched } from "./watch.ts";

export interface Facts {
  /** undefined while the PTR lookup is still running. */
  readonly tier: Tier | undefined;
  readonly lookup: Lookup["kind"] | "pending";
  readonly watched: Watched;
  /** Uniform in [0, 100): compared with -N. */
  readonly roll: number;
  /** The delay (see delayFor) has run out. */
  readonly delayOver: boolean;
  /** What the memory says; undefined when there is none (no store, or it failed). */
  readonly memory: Recall | undefined;
  /** RELAYCLIENT, or the allowlist: no delay, no limits, never penalised. */
  readonly exempt: boolean;
}

/** Why a client is turned away with 421. */
export type Refusal =
  /** -N: no PTR, and the dice said so. */
  | "noptr"
  /** In the penalty box after too many strikes. */
  | "box"
  /** Too many connections open at once (--max-conns). */
  | "conns"
  /** Too many new connections in the window (--max-rate). */
  | "maxrate";

/**
 * The delay for this client, and which memory rules chose it: a penalty
 * means the `noptr` delay, a recent pass the `ptr` delay (the penalty wins),
 * otherwise the tier's. A fast reconnect rate can only make it longer, and
 * only for a client not in good standing: one that passed recently and was
 * not caught since is never slowed for its volume (postscreen's PASS OLD; a
 * big provider sends many messages from few addresses).
 */
export function delayFor(
  config: Config,
  tier: Tier,
  memory: Recall | undefined,
): { delayMs: number; applied: string[] } {
  const applied: string[] = [];
  let delayMs = config.delayMs[tier];
  if (memory?.penalised) {
    delayMs = config.delayMs.noptr;
    applied.push("penalty");
  } else if (memory?.passed) {
    delayMs = config.delayMs.ptr;
    applied.push("passed");
  }
  const trusted = memory?.passed === true && !memory.penalised;
  if (memory && !trusted && memory.rateWaitMs > delayMs) {
    delayMs = memory.rateWaitMs;
    applied.push("rate");
  }
  return { delayMs, applied };
}

/** The log's event word for a verdict. */
export type Event = "pass" | "early" | "closed" | "refused";

export type Verdict =
  /** Keep watching until the delay is over. */
  | { kind: "wait" }
  /** Exec the next program; set RBLSMTPD to `rblsmtpd` when it is a string. */
  | {
    kind: "pass";
    event: "pass" | "early" | "refused";
    rblsmtpd: string | undefined;
    refusal?: Refusal;
  }
  /** With -S: write `reply` to the client and exit. */
  | { kind: "reply"; event: "early" | "refused"; reply: string; refusal?: Refusal }
  /** The client hung up: exit without running anything. */
  | { kind: "drop"; event: "closed" };

/**
 * A refusal the memory alone decides, before any name is known: the box,
 * then the limits.
 */
export function memoryRefusal(config: Config, memory: Recall | undefined): Refusal | undefined {
  if (!memory) return undefined;
  const limits = config.memory;
  if (memory.boxUntil !== undefined) return "box";
  if (limits.maxConns > 0 && memory.open >= limits.maxConns) return "conns";
  if (limits.maxRate > 0 && memory.arrivals > limits.maxRate) return "maxrate";
  return undefined;
}

/** -N: a client without a PTR (the DNS said so), and the dice said refuse. */
function refusesNoptr(config: Config, facts: Facts): boolean {
  return facts.tier === "noptr" && facts.lookup === "none" && !config.justDelay &&
    facts.roll < config.refuseNoptrPercent;
}

const REFUSAL_TEXT: Readonly<Record<Refusal, string>> = {
  noptr: REFUSED_TEXT,
  box: BOXED_TEXT,
  conns: BUSY_TEXT,
  maxrate: BUSY_TEXT,
};

/** A refusal: 421 with -S, else RBLSMTPD for rblsmtpd. */
function refuse(config: Config, why: Refusal): Verdict {
  return config.standalone
    ? { kind: "reply", event: "refused", reply: reply(421, REFUSAL_TEXT[why]), refusal: why }
    : { kind: "pass", event: "refused", rblsmtpd: REFUSAL_TEXT[why], refusal: why };
}

/**
 * The verdict, in this order: a hang-up, an exemption, the memory's
 * refusals (decided on arrival: a boxed client gets the box's 421 whatever
 * it sends, and no new strike), early talk, -N, then the delay.
 */
export function decide(config: Config, facts: Facts): Verdict {
  const { watched } = facts;
  const rblsmtpdPass = config.justDelay ? "" : undefined;
  if (watched.kind === "closed") return { kind: "drop", event: "closed" };
  if (facts.exempt) return { kind: "pass", event: "pass", rblsmtpd: rblsmtpdPass };
  const byMemory = memoryRefusal(config, facts.memory);
  if (byMemory) return refuse(config, byMemory);
  if (watched.kind === "early") {
    return config.standalone
      ? { kind: "reply", event: "early", reply: reply(451, EARLY_TEXT) }
      : { kind: "pass", event: "early", rblsmtpd: EARLY_TEXT };
  }
  if (refusesNoptr(config, facts)) return refuse(config, "noptr");
  if (!facts.delayOver) return { kind: "wait" };
  return { kind: "pass", event: "pass", rblsmtpd: rblsmtpdPass };
}
