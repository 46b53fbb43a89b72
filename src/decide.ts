/**
 * The decision. Pure: (config, facts) -> Verdict. Every rule of the README is
 * a row of tests/decide_test.ts.
 */
import type { Tier } from "./classify.ts";
import type { Config } from "./config.ts";
import type { Lookup } from "./rdns.ts";
import { EARLY_TEXT, REFUSED_TEXT, reply } from "./reply.ts";
import type { Watched } from "./watch.ts";

export interface Facts {
  /** undefined while the PTR lookup is still running. */
  readonly tier: Tier | undefined;
  readonly lookup: Lookup["kind"] | "pending";
  readonly watched: Watched;
  /** Uniform in [0, 100): compared with -N. */
  readonly roll: number;
  /** The tier's delay has run out. */
  readonly delayOver: boolean;
}

/** The log's event word for a verdict. */
export type Event = "pass" | "early" | "closed" | "refused";

export type Verdict =
  /** Keep watching until the delay is over. */
  | { kind: "wait" }
  /** Exec the next program; set RBLSMTPD to `rblsmtpd` when it is a string. */
  | { kind: "pass"; event: "pass" | "early" | "refused"; rblsmtpd: string | undefined }
  /** With -S: write `reply` to the client and exit. */
  | { kind: "reply"; event: "early" | "refused"; reply: string }
  /** The client hung up: exit without running anything. */
  | { kind: "drop"; event: "closed" };

/** True when -N applies: the DNS said there is no name (not a failed lookup). */
function refused(config: Config, facts: Facts): boolean {
  return facts.tier === "noptr" && facts.lookup === "none" && !config.justDelay &&
    facts.roll < config.refuseNoptrPercent;
}

export function decide(config: Config, facts: Facts): Verdict {
  const { watched } = facts;
  if (watched.kind === "closed") return { kind: "drop", event: "closed" };
  if (watched.kind === "early") {
    return config.standalone
      ? { kind: "reply", event: "early", reply: reply(451, EARLY_TEXT) }
      : { kind: "pass", event: "early", rblsmtpd: EARLY_TEXT };
  }
  if (refused(config, facts)) {
    return config.standalone
      ? { kind: "reply", event: "refused", reply: reply(421, REFUSED_TEXT) }
      : { kind: "pass", event: "refused", rblsmtpd: REFUSED_TEXT };
  }
  if (!facts.delayOver) return { kind: "wait" };
  return { kind: "pass", event: "pass", rblsmtpd: config.justDelay ? "" : undefined };
}
