/**
 * The decision. Pure: (config, facts) -> Verdict. Every rule of the README is
 * a row of tests/decide_test.ts.
 */
import type { Tier } from "./classify.ts";
import type { Config } from "./config.ts";
import type { Recall } from "./history.ts";
import type { ListVerdict } from "./lists/score.ts";
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
  /** What the lists' score decides so far; undefined without lists, or while it depends. */
  readonly listed: ListVerdict;
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
  | "maxrate"
  /** The lists' score reached the blocklist threshold. */
  | "listed";

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
export type Event = "pass" | "early" | "closed" | "refused" | "listed";

export type Verdict =
  /** Keep watching until the delay is over. */
  | { kind: "wait" }
  /**
   * Exec the next program; set RBLSMTPD to `rblsmtpd` when it is a string.
   * `would`: with --action ignore, what enforcing would have done instead
   * (`451`, `421`, `rblsmtpd`), the client handed on all the same.
   * `allowed`: the lists' score handed it on before its delay.
   */
  | {
    kind: "pass";
    event: "pass" | "early" | "refused" | "listed";
    rblsmtpd: string | undefined;
    refusal?: Refusal;
    would?: string;
    allowed?: true;
  }
  /** With -S: write `reply` to the client and exit. */
  | { kind: "reply"; event: "early" | "refused" | "listed"; reply: string; refusal?: Refusal }
  /** The client hung up: exit without running anything. */
  | { kind: "drop"; event: "closed" };

/**
 * A refusal the memory alone decides, before any name is known: the box,
 * then the limits.
 */
export function memoryRefusal(
  config: Config,
  memory: Recall | undefined,
): "box" | "conns" | "maxrate" | undefined {
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

const REFUSAL_TEXT: Readonly<Record<Exclude<Refusal, "listed">, string>> = {
  noptr: REFUSED_TEXT,
  box: BOXED_TEXT,
  conns: BUSY_TEXT,
  maxrate: BUSY_TEXT,
};

/** What enforcing does to a client that fails a test: a reply (-S), or RBLSMTPD. */
type Refused = Extract<Verdict, { kind: "reply" | "pass" }>;

/** A refusal: 421 with -S, else RBLSMTPD for rblsmtpd. */
function refuse(config: Config, why: Exclude<Refusal, "listed">): Refused {
  return config.standalone
    ? { kind: "reply", event: "refused", reply: reply(421, REFUSAL_TEXT[why]), refusal: why }
    : { kind: "pass", event: "refused", rblsmtpd: REFUSAL_TEXT[why], refusal: why };
}

/**
 * A blocklisted client: the lists' reply with -S (--dnsbl-reply), else its
 * text for rblsmtpd, `-` first when the code is permanent (rblsmtpd then
 * answers 553, else 451).
 */
function refuseListed(config: Config): Refused {
  const { code, text } = config.lists!.reply;
  return config.standalone
    ? { kind: "reply", event: "listed", reply: reply(code, text), refusal: "listed" }
    : {
      kind: "pass",
      event: "listed",
      rblsmtpd: (code >= 500 ? "-" : "") + text, // printable, as parseReply() checked
      refusal: "listed",
    };
}

/**
 * What enforcing does to a client that fails a test, in this order: the
 * memory's refusals (decided on arrival: a boxed client gets the box's 421
 * whatever it sends, and no new strike), early talk, the lists' score, -N;
 * undefined when it fails none.
 */
function refusal(config: Config, facts: Facts): Refused | undefined {
  const byMemory = memoryRefusal(config, facts.memory);
  if (byMemory) return refuse(config, byMemory);
  if (facts.watched.kind === "early") {
    return config.standalone
      ? { kind: "reply", event: "early", reply: reply(451, EARLY_TEXT) }
      : { kind: "pass", event: "early", rblsmtpd: EARLY_TEXT };
  }
  if (facts.listed === "block") return refuseListed(config);
  if (refusesNoptr(config, facts)) return refuse(config, "noptr");
  return undefined;
}

/**
 * The verdict: a hang-up, an exemption, the lists' allowlist score (unless
 * the memory refuses the client), then a refusal (see refusal()); else the
 * delay. With --action ignore a refusal is only noted: the client waits out
 * its delay and is handed on, the verdict saying what enforcing would have
 * done (and RBLSMTPD as for a client that passed).
 */
export function decide(config: Config, facts: Facts): Verdict {
  const rblsmtpdPass = config.justDelay ? "" : undefined;
  if (facts.watched.kind === "closed") return { kind: "drop", event: "closed" };
  if (facts.exempt) return { kind: "pass", event: "pass", rblsmtpd: rblsmtpdPass };
  if (
    facts.listed === "allow" && config.action === "enforce" && !memoryRefusal(config, facts.memory)
  ) {
    // rblsmtpd after smtp-delay skips its own lists for a client the allowlists vouch for.
    // With --action ignore, the delay is waited all the same: the score is only logged.
    return { kind: "pass", event: "pass", rblsmtpd: "", allowed: true };
  }
  const refused = refusal(config, facts);
  if (refused && config.action === "enforce") return refused;
  if (!facts.delayOver) return { kind: "wait" };
  if (!refused) return { kind: "pass", event: "pass", rblsmtpd: rblsmtpdPass };
  const would = refused.kind === "reply" ? refused.reply.slice(0, 3) : "rblsmtpd";
  return {
    kind: "pass",
    event: refused.event,
    rblsmtpd: rblsmtpdPass,
    would,
    ...(refused.refusal ? { refusal: refused.refusal } : {}),
  };
}
