import assert from "node:assert/strict";
import { type Config, parseConfig } from "../src/config.ts";
import { decide, delayFor, type Facts, type Verdict } from "../src/decide.ts";
import type { Recall } from "../src/history.ts";
import { DEFAULT_REPLY } from "../src/lists/spec.ts";
import { BOXED_TEXT, BUSY_TEXT, EARLY_TEXT, REFUSED_TEXT } from "../src/reply.ts";
import type { Watched } from "../src/watch.ts";
import { STRANGER as NOTHING } from "./fixtures/recall.ts"; // a first contact; rows change it

/** A Config as the command line and environment would give it. */
function config(args: string[], env: Record<string, string> = {}): Config {
  const request = parseConfig([...args, "qmail-smtpd"], env);
  if (request.kind !== "run") throw new Error(`parseConfig(${args.join(" ")}) did not ask to run`);
  return request.config;
}

const QUIET: Watched = { kind: "quiet" };
const EARLY: Watched = { kind: "early", bytes: 6, afterMs: 120 };
const CLOSED: Watched = { kind: "closed", afterMs: 300 };

/** Facts of a quiet client with a name, the delay not over yet; rows change what they test. */
function facts(changes: Partial<Facts>): Facts {
  return {
    tier: "ptr",
    lookup: "found",
    watched: QUIET,
    roll: 50,
    delayOver: false,
    memory: undefined,
    exempt: false,
    listed: undefined,
    ...changes,
  };
}

/** The -N facts: the DNS said there is no name, the client stayed quiet the whole delay. */
const NO_NAME: Partial<Facts> = { tier: "noptr", lookup: "none", delayOver: true };

const WAIT: Verdict = { kind: "wait" };
const DROP: Verdict = { kind: "drop", event: "closed" };
const REPLY_451: Verdict = { kind: "reply", event: "early", reply: `451 ${EARLY_TEXT}\r\n` };
const PASS_EARLY: Verdict = { kind: "pass", event: "early", rblsmtpd: EARLY_TEXT };
const REPLY_421: Verdict = {
  kind: "reply",
  event: "refused",
  reply: `421 ${REFUSED_TEXT}\r\n`,
  refusal: "noptr",
};
const PASS_REFUSED: Verdict = {
  kind: "pass",
  event: "refused",
  rblsmtpd: REFUSED_TEXT,
  refusal: "noptr",
};
const PASS: Verdict = { kind: "pass", event: "pass", rblsmtpd: undefined };
const PASS_JUSTDELAY: Verdict = { kind: "pass", event: "pass", rblsmtpd: "" };

interface Row {
  name: string;
  args: string[];
  env?: Record<string, string>;
  facts: Partial<Facts>;
  want: Verdict;
}

async function table(t: Deno.TestContext, rows: Row[]): Promise<void> {
  for (const row of rows) {
    await t.step(row.name, () => {
      const got = decide(config(row.args, row.env), facts(row.facts));
      assert.deepEqual(got, row.want);
    });
  }
}

Deno.test("decide() drops a client that hung up, whatever else holds", async (t) => {
  await table(t, [
    { name: "without -S", args: [], facts: { watched: CLOSED }, want: DROP },
    { name: "with -S", args: ["-S"], facts: { watched: CLOSED }, want: DROP },
    { name: "delay over", args: ["-S"], facts: { watched: CLOSED, delayOver: true }, want: DROP },
    {
      name: "under JUSTDELAY",
      args: [],
      env: { SMTPDELAY: "JUSTDELAY" },
      facts: { watched: CLOSED, delayOver: true },
      want: DROP,
    },
    {
      name: "before -N would refuse it",
      args: ["-S", "-N", "100"],
      facts: { ...NO_NAME, watched: CLOSED, roll: 0 },
      want: DROP,
    },
    {
      name: "while the lookup is pending",
      args: ["-S"],
      facts: { tier: undefined, lookup: "pending", watched: CLOSED },
      want: DROP,
    },
  ]);
});

Deno.test("decide() rejects an early talker with 451 under -S", async (t) => {
  await table(t, [
    { name: "ptr, delay running", args: ["-S"], facts: { watched: EARLY }, want: REPLY_451 },
    {
      name: "dynamic, delay over",
      args: ["-S"],
      facts: { tier: "dynamic", watched: EARLY, delayOver: true },
      want: REPLY_451,
    },
    {
      name: "under JUSTDELAY too",
      args: ["-S"],
      env: { SMTPDELAY: "JUSTDELAY" },
      facts: { watched: EARLY },
      want: REPLY_451,
    },
    {
      name: "early wins over -N",
      args: ["-S", "-N", "100"],
      facts: { ...NO_NAME, watched: EARLY, roll: 0 },
      want: REPLY_451,
    },
    {
      name: "while the lookup is pending (tier unknown)",
      args: ["-S"],
      facts: { tier: undefined, lookup: "pending", watched: EARLY },
      want: REPLY_451,
    },
    {
      name: "even when FIONREAD could not count the bytes",
      args: ["-S"],
      facts: { watched: { kind: "early", bytes: -1, afterMs: 0 } },
      want: REPLY_451,
    },
  ]);
});

Deno.test("decide() hands an early talker on with RBLSMTPD set without -S", async (t) => {
  await table(t, [
    { name: "ptr, delay running", args: [], facts: { watched: EARLY }, want: PASS_EARLY },
    {
      name: "noptr after a failed lookup",
      args: [],
      facts: { tier: "noptr", lookup: "timeout", watched: EARLY },
      want: PASS_EARLY,
    },
    {
      name: "JUSTDELAY does not exempt an early talker",
      args: [],
      env: { SMTPDELAY: "JUSTDELAY" },
      facts: { watched: EARLY, delayOver: true },
      want: PASS_EARLY,
    },
    {
      name: "early wins over -N",
      args: ["-N", "100"],
      facts: { ...NO_NAME, watched: EARLY, roll: 0 },
      want: PASS_EARLY,
    },
    {
      name: "while the lookup is pending (tier unknown)",
      args: [],
      facts: { tier: undefined, lookup: "pending", watched: EARLY },
      want: PASS_EARLY,
    },
  ]);
});

Deno.test("decide() refuses a noptr client by -N only when the DNS said there is no name", async (t) => {
  await table(t, [
    { name: "-S: 421", args: ["-S", "-N", "100"], facts: NO_NAME, want: REPLY_421 },
    {
      name: 'at once, before the delay is over (README: "turned away ... at once")',
      args: ["-S", "-N", "100"],
      facts: { ...NO_NAME, delayOver: false },
      want: REPLY_421,
    },
    {
      name: "without -S: RBLSMTPD carries the 421 text",
      args: ["-N", "100"],
      facts: NO_NAME,
      want: PASS_REFUSED,
    },
    {
      name: "SMTPDELAYN turns -N on for one client",
      args: ["-S"],
      env: { SMTPDELAYN: "100" },
      facts: NO_NAME,
      want: REPLY_421,
    },
    {
      name: "not after a lookup timeout",
      args: ["-S", "-N", "100"],
      facts: { ...NO_NAME, lookup: "timeout" },
      want: PASS,
    },
    {
      name: "not after a lookup error",
      args: ["-S", "-N", "100"],
      facts: { ...NO_NAME, lookup: "error" },
      want: PASS,
    },
    {
      name: "not when the lookup was skipped",
      args: ["-S", "-N", "100"],
      facts: { ...NO_NAME, lookup: "skipped" },
      want: PASS,
    },
    {
      name: "not a client with a name",
      args: ["-S", "-N", "100"],
      facts: { tier: "ptr", lookup: "found", delayOver: true, roll: 0 },
      want: PASS,
    },
    {
      name: "not a dynamic client",
      args: ["-S", "-N", "100"],
      facts: { tier: "dynamic", lookup: "host", delayOver: true, roll: 0 },
      want: PASS,
    },
    {
      name: "never under JUSTDELAY",
      args: ["-S", "-N", "100"],
      env: { SMTPDELAY: "JUSTDELAY" },
      facts: { ...NO_NAME, roll: 0 },
      want: PASS_JUSTDELAY,
    },
    {
      name: "never with the default -N 0",
      args: ["-S"],
      facts: { ...NO_NAME, roll: 0 },
      want: PASS,
    },
    {
      name: "an empty SMTPDELAYN leaves -N as it was",
      args: ["-S", "-N", "100"],
      env: { SMTPDELAYN: "" },
      facts: NO_NAME,
      want: REPLY_421,
    },
    {
      name: "SMTPDELAYN=0 exempts one client from -N 100",
      args: ["-S", "-N", "100"],
      env: { SMTPDELAYN: "0" },
      facts: NO_NAME,
      want: PASS,
    },
  ]);
});

Deno.test("decide() refuses when the roll is below the -N percentage", async (t) => {
  const rows: [string, number, boolean][] = [
    ["0", 0, false],
    ["0", 99.999, false],
    ["100", 0, true],
    ["100", 99.999999, true],
    ["50", 49.999, true],
    ["50", 50, false],
    ["50", 50.001, false],
    ["0.5", 0.4999, true],
    ["0.5", 0.5, false],
    ["12.5", 12.4, true],
    ["12.5", 12.6, false],
  ];
  for (const [percent, roll, refused] of rows) {
    await t.step(`-N ${percent}, roll ${roll}: ${refused ? "refused" : "passed"}`, () => {
      const got = decide(config(["-S", "-N", percent]), facts({ ...NO_NAME, roll }));
      assert.deepEqual(got, refused ? REPLY_421 : PASS);
    });
  }
});

Deno.test("decide() keeps a quiet client waiting until its delay is over", async (t) => {
  await table(t, [
    { name: "ptr", args: [], facts: { tier: "ptr" }, want: WAIT },
    { name: "dynamic", args: ["-S"], facts: { tier: "dynamic", lookup: "host" }, want: WAIT },
    {
      name: "noptr, lookup failed",
      args: [],
      facts: { tier: "noptr", lookup: "error" },
      want: WAIT,
    },
    {
      name: "noptr under -N 0",
      args: ["-S", "-N", "0"],
      facts: { tier: "noptr", lookup: "none" },
      want: WAIT,
    },
    {
      name: "JUSTDELAY still waits",
      args: ["-S"],
      env: { SMTPDELAY: "JUSTDELAY" },
      facts: {},
      want: WAIT,
    },
    {
      name: "lookup pending",
      args: [],
      facts: { tier: undefined, lookup: "pending" },
      want: WAIT,
    },
  ]);
});

Deno.test("decide() hands a quiet client on once its delay is over", async (t) => {
  await table(t, [
    { name: "without -S: RBLSMTPD untouched", args: [], facts: { delayOver: true }, want: PASS },
    { name: "with -S: RBLSMTPD untouched", args: ["-S"], facts: { delayOver: true }, want: PASS },
    {
      name: "dynamic",
      args: [],
      facts: { tier: "dynamic", lookup: "found", delayOver: true },
      want: PASS,
    },
    {
      name: "noptr from a lookup timeout",
      args: [],
      facts: { tier: "noptr", lookup: "timeout", delayOver: true },
      want: PASS,
    },
    {
      name: "JUSTDELAY sets RBLSMTPD to the empty string",
      args: ["-S"],
      env: { SMTPDELAY: "JUSTDELAY" },
      facts: { delayOver: true },
      want: PASS_JUSTDELAY,
    },
    {
      name: "JUSTDELAY without -S",
      args: [],
      env: { SMTPDELAY: "JUSTDELAY" },
      facts: { tier: "noptr", lookup: "none", delayOver: true },
      want: PASS_JUSTDELAY,
    },
  ]);
});

const memory = (changes: Partial<Recall>): Recall => ({ ...NOTHING, ...changes });
const BOXED = memory({ penalised: true, boxUntil: Date.UTC(2026, 10, 24, 13) });

Deno.test("delayFor() picks the delay by tier and memory, and names the rules it applied", async (t) => {
  // ptr 1 s, dynamic 5 s, noptr 9 s.
  const delays = config(["-d", "1", "-D", "5", "-P", "9"]);
  const rows: {
    name: string;
    tier: "ptr" | "dynamic" | "noptr";
    memory: Recall | undefined;
    want: { delayMs: number; applied: string[] };
  }[] = [
    {
      name: "no memory: ptr",
      tier: "ptr",
      memory: undefined,
      want: { delayMs: 1000, applied: [] },
    },
    {
      name: "no memory: dynamic",
      tier: "dynamic",
      memory: undefined,
      want: { delayMs: 5000, applied: [] },
    },
    {
      name: "no memory: noptr",
      tier: "noptr",
      memory: undefined,
      want: { delayMs: 9000, applied: [] },
    },
    {
      name: "a memory that says nothing: the tier's",
      tier: "dynamic",
      memory: NOTHING,
      want: { delayMs: 5000, applied: [] },
    },
    {
      name: "penalty: noptr's delay for a ptr client",
      tier: "ptr",
      memory: memory({ penalised: true }),
      want: { delayMs: 9000, applied: ["penalty"] },
    },
    {
      name: "penalty on a noptr client: the same delay, still named",
      tier: "noptr",
      memory: memory({ penalised: true }),
      want: { delayMs: 9000, applied: ["penalty"] },
    },
    {
      name: "penalty wins over a recent pass",
      tier: "dynamic",
      memory: memory({ penalised: true, passed: true }),
      want: { delayMs: 9000, applied: ["penalty"] },
    },
    {
      name: "passed: ptr's delay for a noptr client",
      tier: "noptr",
      memory: memory({ passed: true }),
      want: { delayMs: 1000, applied: ["passed"] },
    },
    {
      name: "passed: ptr's delay for a dynamic client",
      tier: "dynamic",
      memory: memory({ passed: true }),
      want: { delayMs: 1000, applied: ["passed"] },
    },
    {
      name: "passed on a ptr client: the same delay, still named",
      tier: "ptr",
      memory: memory({ passed: true }),
      want: { delayMs: 1000, applied: ["passed"] },
    },
    {
      name: "rate: a longer wait than the tier's",
      tier: "ptr",
      memory: memory({ rateWaitMs: 3000 }),
      want: { delayMs: 3000, applied: ["rate"] },
    },
    {
      name: "rate: a shorter wait than the tier's changes nothing",
      tier: "dynamic",
      memory: memory({ rateWaitMs: 3000 }),
      want: { delayMs: 5000, applied: [] },
    },
    {
      name: "rate: an equal wait changes nothing",
      tier: "dynamic",
      memory: memory({ rateWaitMs: 5000 }),
      want: { delayMs: 5000, applied: [] },
    },
    {
      name: "no rate after a pass: a sender in good standing is not slowed for its volume",
      tier: "dynamic",
      memory: memory({ passed: true, rateWaitMs: 2000 }),
      want: { delayMs: 1000, applied: ["passed"] },
    },
    {
      name: "rate after a pass and a penalty since: the penalty and the rate",
      tier: "ptr",
      memory: memory({ passed: true, penalised: true, rateWaitMs: 40_000 }),
      want: { delayMs: 40_000, applied: ["penalty", "rate"] },
    },
    {
      name: "rate after a penalty: longer than noptr's",
      tier: "ptr",
      memory: memory({ penalised: true, rateWaitMs: 20_000 }),
      want: { delayMs: 20_000, applied: ["penalty", "rate"] },
    },
    {
      name: "rate shorter than the penalty",
      tier: "ptr",
      memory: memory({ penalised: true, rateWaitMs: 8_000 }),
      want: { delayMs: 9000, applied: ["penalty"] },
    },
    {
      name: "a box, limits and arrivals do not change the delay",
      tier: "dynamic",
      memory: memory({ boxUntil: 1, open: 50, arrivals: 500 }),
      want: { delayMs: 5000, applied: [] },
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.deepEqual(delayFor(delays, row.tier, row.memory), row.want);
    });
  }
});

Deno.test("delayFor() follows the per-client variables for the tier delays", () => {
  const delays = config(["-d", "1", "-P", "9"], { SMTPDELAYP: "2", SMTPDELAYd: "0" });
  assert.deepEqual(delayFor(delays, "ptr", memory({ penalised: true })), {
    delayMs: 2000,
    applied: ["penalty"],
  });
  assert.deepEqual(delayFor(delays, "noptr", memory({ passed: true })), {
    delayMs: 0,
    applied: ["passed"],
  });
});

const refused = (
  standalone: boolean,
  text: string,
  refusal: "box" | "conns" | "maxrate",
): Verdict =>
  standalone
    ? { kind: "reply", event: "refused", reply: `421 ${text}\r\n`, refusal }
    : { kind: "pass", event: "refused", rblsmtpd: text, refusal };
const REPLY_BOXED = refused(true, BOXED_TEXT, "box");
const PASS_BOXED = refused(false, BOXED_TEXT, "box");

Deno.test("decide() lets an exempt client through at once, whatever it did or is remembered for", async (t) => {
  await table(t, [
    { name: "quiet, the delay not over", args: [], facts: { exempt: true }, want: PASS },
    { name: "with -S", args: ["-S"], facts: { exempt: true }, want: PASS },
    {
      name: "while the lookup is pending",
      args: ["-S"],
      facts: { exempt: true, tier: undefined, lookup: "pending" },
      want: PASS,
    },
    {
      name: "even an early talker, with -S: no 451",
      args: ["-S"],
      facts: { exempt: true, watched: EARLY },
      want: PASS,
    },
    {
      name: "even an early talker, without -S: RBLSMTPD untouched",
      args: [],
      facts: { exempt: true, watched: EARLY },
      want: PASS,
    },
    {
      name: "an early talker under JUSTDELAY: RBLSMTPD empty",
      args: ["-S"],
      env: { SMTPDELAY: "JUSTDELAY" },
      facts: { exempt: true, watched: EARLY },
      want: PASS_JUSTDELAY,
    },
    {
      name: "quiet under JUSTDELAY: RBLSMTPD empty",
      args: [],
      env: { SMTPDELAY: "JUSTDELAY" },
      facts: { exempt: true },
      want: PASS_JUSTDELAY,
    },
    {
      name: "boxed: no 421",
      args: ["-S"],
      facts: { exempt: true, memory: BOXED },
      want: PASS,
    },
    {
      name: "over --max-conns and --max-rate: no 421",
      args: ["-S", "--max-conns", "1", "--max-rate", "1"],
      facts: { exempt: true, memory: memory({ open: 5, arrivals: 5 }) },
      want: PASS,
    },
    {
      name: "no PTR under -N 100: no 421",
      args: ["-S", "-N", "100"],
      facts: { ...NO_NAME, exempt: true, roll: 0 },
      want: PASS,
    },
  ]);
});

Deno.test("decide() still drops an exempt client that hung up", async (t) => {
  await table(t, [
    { name: "with -S", args: ["-S"], facts: { exempt: true, watched: CLOSED }, want: DROP },
    {
      name: "under JUSTDELAY",
      args: [],
      env: { SMTPDELAY: "JUSTDELAY" },
      facts: { exempt: true, watched: CLOSED },
      want: DROP,
    },
  ]);
});

Deno.test("decide() refuses a boxed client with 421 at once", async (t) => {
  await table(t, [
    {
      name: "with -S: 421 and the box text",
      args: ["-S"],
      facts: { memory: BOXED },
      want: REPLY_BOXED,
    },
    {
      name: "without -S: RBLSMTPD carries the box text",
      args: [],
      facts: { memory: BOXED },
      want: PASS_BOXED,
    },
    {
      name: "after the delay too",
      args: ["-S"],
      facts: { memory: BOXED, delayOver: true },
      want: REPLY_BOXED,
    },
    {
      name: "while the lookup is pending",
      args: ["-S"],
      facts: { memory: BOXED, tier: undefined, lookup: "pending" },
      want: REPLY_BOXED,
    },
    {
      name: "boxed though it passed recently",
      args: ["-S"],
      facts: { memory: memory({ passed: true, boxUntil: 1 }) },
      want: REPLY_BOXED,
    },
    {
      name: "the box before the limits and -N",
      args: ["-S", "-N", "100", "--max-conns", "1", "--max-rate", "1"],
      facts: { ...NO_NAME, roll: 0, memory: memory({ boxUntil: 1, open: 9, arrivals: 9 }) },
      want: REPLY_BOXED,
    },
  ]);
});

Deno.test("decide() refuses a client over --max-conns or --max-rate with 421", async (t) => {
  const BUSY_CONNS = refused(true, BUSY_TEXT, "conns");
  const BUSY_RATE = refused(true, BUSY_TEXT, "maxrate");
  await table(t, [
    {
      name: "--max-conns 2, two others open: refused",
      args: ["-S", "--max-conns", "2"],
      facts: { memory: memory({ open: 2 }) },
      want: BUSY_CONNS,
    },
    {
      name: "--max-conns 2, more open: refused",
      args: ["-S", "--max-conns", "2"],
      facts: { memory: memory({ open: 7 }) },
      want: BUSY_CONNS,
    },
    {
      name: "--max-conns 2, one other open: waits",
      args: ["-S", "--max-conns", "2"],
      facts: { memory: memory({ open: 1 }) },
      want: WAIT,
    },
    {
      name: "--max-conns 1, none other open: passes after its delay",
      args: ["-S", "--max-conns", "1"],
      facts: { memory: memory({ open: 0 }), delayOver: true },
      want: PASS,
    },
    {
      name: "--max-conns without -S: RBLSMTPD",
      args: ["--max-conns", "1"],
      facts: { memory: memory({ open: 1 }) },
      want: refused(false, BUSY_TEXT, "conns"),
    },
    {
      name: "--max-conns 0 is off",
      args: ["-S", "--max-conns", "0"],
      facts: { memory: memory({ open: 1000 }), delayOver: true },
      want: PASS,
    },
    {
      name: "--max-conns is off by default",
      args: ["-S"],
      facts: { memory: memory({ open: 1000 }), delayOver: true },
      want: PASS,
    },
    {
      name: "SMTPDELAY_MAX_CONNS sets it for one client",
      args: ["-S", "--max-conns", "50"],
      env: { SMTPDELAY_MAX_CONNS: "1" },
      facts: { memory: memory({ open: 1 }) },
      want: BUSY_CONNS,
    },
    {
      name: "--max-rate 10, the 11th arrival: refused",
      args: ["-S", "--max-rate", "10"],
      facts: { memory: memory({ arrivals: 11 }) },
      want: BUSY_RATE,
    },
    {
      name: "--max-rate 10, the 10th arrival: waits",
      args: ["-S", "--max-rate", "10"],
      facts: { memory: memory({ arrivals: 10 }) },
      want: WAIT,
    },
    {
      name: "--max-rate without -S: RBLSMTPD",
      args: ["--max-rate", "1"],
      facts: { memory: memory({ arrivals: 2 }) },
      want: refused(false, BUSY_TEXT, "maxrate"),
    },
    {
      name: "--max-rate 0 is off",
      args: ["-S", "--max-rate", "0"],
      facts: { memory: memory({ arrivals: 1000 }), delayOver: true },
      want: PASS,
    },
    {
      name: "--max-rate is off by default",
      args: ["-S"],
      facts: { memory: memory({ arrivals: 1000 }), delayOver: true },
      want: PASS,
    },
    {
      name: "both over: conns is named",
      args: ["-S", "--max-conns", "1", "--max-rate", "1"],
      facts: { memory: memory({ open: 1, arrivals: 2 }) },
      want: BUSY_CONNS,
    },
    {
      name: "the limits before -N",
      args: ["-S", "-N", "100", "--max-rate", "1"],
      facts: { ...NO_NAME, roll: 0, memory: memory({ arrivals: 2 }) },
      want: BUSY_RATE,
    },
    {
      name: "penalised (not boxed) within the limits: waits its delay",
      args: ["-S", "--max-conns", "1"],
      facts: { memory: memory({ penalised: true }) },
      want: WAIT,
    },
  ]);
});

Deno.test("decide() puts the memory's refusals before early talk, and a hang-up before everything", async (t) => {
  const over = memory({ boxUntil: 1, open: 9, arrivals: 9 });
  const limits = ["--max-conns", "1", "--max-rate", "1"];
  await table(t, [
    {
      name: "boxed and early, -S: the box's 421, not 451",
      args: ["-S"],
      facts: { memory: BOXED, watched: EARLY },
      want: REPLY_BOXED,
    },
    {
      name: "boxed and early, without -S: the box's text",
      args: [],
      facts: { memory: BOXED, watched: EARLY },
      want: PASS_BOXED,
    },
    {
      name: "over --max-conns and early: 421",
      args: ["-S", "--max-conns", "1"],
      facts: { memory: memory({ open: 9 }), watched: EARLY },
      want: refused(true, BUSY_TEXT, "conns"),
    },
    {
      name: "over --max-rate and early: 421",
      args: ["-S", "--max-rate", "1"],
      facts: { memory: memory({ arrivals: 9 }), watched: EARLY },
      want: refused(true, BUSY_TEXT, "maxrate"),
    },
    {
      name: "-N and early: 451 (early talk comes before -N)",
      args: ["-S", "-N", "100"],
      facts: { tier: "noptr", lookup: "none", roll: 0, watched: EARLY },
      want: REPLY_451,
    },
    {
      name: "boxed and gone: dropped",
      args: ["-S", ...limits],
      facts: { memory: over, watched: CLOSED },
      want: DROP,
    },
  ]);
});

Deno.test("decide() without memory, or with a memory that says nothing, is issue 3's decide()", async (t) => {
  const watches: Watched[] = [QUIET, EARLY, CLOSED];
  const lookups: Partial<Facts>[] = [
    { tier: "ptr", lookup: "found" },
    { tier: "dynamic", lookup: "host" },
    { tier: "noptr", lookup: "none" },
    { tier: "noptr", lookup: "timeout" },
    { tier: undefined, lookup: "pending" },
  ];
  const argses = [[], ["-S"], ["-S", "-N", "100"], ["-N", "100"]];
  const limits = ["--max-conns", "1", "--max-rate", "1", "--strikes", "1"];
  for (const args of argses) {
    for (const justDelay of [false, true]) {
      const env: Record<string, string> = justDelay ? { SMTPDELAY: "JUSTDELAY" } : {};
      await t.step(`${args.join(" ") || "(no options)"}${justDelay ? " JUSTDELAY" : ""}`, () => {
        const plain = config(args, env);
        const limited = config([...args, ...limits], env);
        for (const watched of watches) {
          for (const lookup of lookups) {
            for (const delayOver of [false, true]) {
              const base = facts({ ...lookup, watched, delayOver, roll: 0 });
              const want = decide(plain, base);
              for (
                const [name, got] of [
                  ["undefined with limits", decide(limited, base)],
                  ["nothing", decide(plain, { ...base, memory: NOTHING })],
                  ["nothing with limits", decide(limited, { ...base, memory: NOTHING })],
                ] as const
              ) {
                assert.deepEqual(got, want, `${name}: ${JSON.stringify(base)}`);
              }
            }
          }
        }
      });
    }
  }
});

Deno.test("decide() with --action ignore notes a failed test, waits the delay, hands the client on", async (t) => {
  const ignore = ["--action", "ignore"];
  const boxed = memory({ boxUntil: Date.UTC(2026, 10, 24, 13) });
  await table(t, [
    { name: "quiet, the delay not over: wait", args: ignore, facts: {}, want: WAIT },
    {
      name: "quiet, the delay over: pass as usual",
      args: ignore,
      facts: { delayOver: true },
      want: PASS,
    },
    {
      name: "early, the delay not over: wait all the same",
      args: ["-S", ...ignore],
      facts: { watched: EARLY },
      want: WAIT,
    },
    {
      name: "early, the delay over, -S: handed on, would have been 451",
      args: ["-S", ...ignore],
      facts: { watched: EARLY, delayOver: true },
      want: { kind: "pass", event: "early", rblsmtpd: undefined, would: "451" },
    },
    {
      name: "early without -S: would have been rblsmtpd, and RBLSMTPD stays unset",
      args: ignore,
      facts: { watched: EARLY, delayOver: true },
      want: { kind: "pass", event: "early", rblsmtpd: undefined, would: "rblsmtpd" },
    },
    {
      name: "boxed: waits, then handed on, would have been 421",
      args: ["-S", ...ignore],
      facts: { memory: boxed, delayOver: true },
      want: { kind: "pass", event: "refused", rblsmtpd: undefined, would: "421", refusal: "box" },
    },
    {
      name: "-N: would have been 421",
      args: ["-S", "-N", "100", ...ignore],
      facts: { ...NO_NAME, roll: 0 },
      want: { kind: "pass", event: "refused", rblsmtpd: undefined, would: "421", refusal: "noptr" },
    },
    {
      name: "JUSTDELAY: RBLSMTPD empty, as for a pass",
      args: ["-S", ...ignore],
      env: { SMTPDELAY: "JUSTDELAY" },
      facts: { watched: EARLY, delayOver: true },
      want: { kind: "pass", event: "early", rblsmtpd: "", would: "451" },
    },
    {
      name: "a hang-up is still dropped",
      args: ignore,
      facts: { watched: CLOSED },
      want: DROP,
    },
    {
      name: "SMTPDELAY_ACTION=ignore for one client",
      args: ["-S"],
      env: { SMTPDELAY_ACTION: "ignore" },
      facts: { watched: EARLY },
      want: WAIT,
    },
    {
      name: "SMTPDELAY_ACTION=enforce for one client wins over the run file's ignore",
      args: ["-S", ...ignore],
      env: { SMTPDELAY_ACTION: "enforce" },
      facts: { watched: EARLY },
      want: REPLY_451,
    },
  ]);
});

Deno.test("decide() acts on the lists' score as soon as it is known", async (t) => {
  const lists = ["--dnsbl", "bl.test"];
  const REPLY_LISTED: Verdict = {
    kind: "reply",
    event: "listed",
    reply: `421 ${DEFAULT_REPLY.text}\r\n`,
    refusal: "listed",
  };
  const ALLOWED: Verdict = { kind: "pass", event: "pass", rblsmtpd: "", allowed: true };
  await table(t, [
    {
      name: "blocklisted, -S: the reply at once, before the delay and the name",
      args: ["-S", ...lists],
      facts: { listed: "block", tier: undefined, lookup: "pending" },
      want: REPLY_LISTED,
    },
    {
      name: "blocklisted without -S: RBLSMTPD carries the reply's text",
      args: lists,
      facts: { listed: "block" },
      want: { kind: "pass", event: "listed", rblsmtpd: DEFAULT_REPLY.text, refusal: "listed" },
    },
    {
      name: "a permanent --dnsbl-reply, -S: as given",
      args: ["-S", ...lists, "--dnsbl-reply", "554 5.7.1 Listed"],
      facts: { listed: "block" },
      want: { ...REPLY_LISTED, reply: "554 5.7.1 Listed\r\n" },
    },
    {
      name: "a permanent --dnsbl-reply without -S: `-` first, for rblsmtpd's 553",
      args: [...lists, "--dnsbl-reply", "554 5.7.1 Listed"],
      facts: { listed: "block" },
      want: { kind: "pass", event: "listed", rblsmtpd: "-5.7.1 Listed", refusal: "listed" },
    },
    {
      name: "allowlisted: handed on at once, no delay, RBLSMTPD empty",
      args: ["-S", ...lists],
      facts: { listed: "allow", tier: undefined, lookup: "pending" },
      want: ALLOWED,
    },
    {
      name: "allowlisted but -N would refuse: handed on",
      args: ["-S", "-N", "100", ...lists],
      facts: { ...NO_NAME, roll: 0, delayOver: false, listed: "allow" },
      want: ALLOWED,
    },
    {
      name: "allowlisted, then it talked: the score came first, so did the verdict",
      args: ["-S", ...lists],
      facts: { listed: "allow", watched: EARLY },
      want: ALLOWED,
    },
    {
      name: "allowlisted but boxed: the box wins",
      args: ["-S", ...lists],
      facts: { listed: "allow", memory: BOXED },
      want: REPLY_BOXED,
    },
    {
      name: "blocklisted and boxed: the box's reply, no new refusal",
      args: ["-S", ...lists],
      facts: { listed: "block", memory: BOXED },
      want: REPLY_BOXED,
    },
    {
      name: "blocklisted after it talked: the early talk is what it did",
      args: ["-S", ...lists],
      facts: { listed: "block", watched: EARLY },
      want: REPLY_451,
    },
    {
      name: "blocklisted and -N: listed first",
      args: ["-S", "-N", "100", ...lists],
      facts: { ...NO_NAME, roll: 0, listed: "block" },
      want: REPLY_LISTED,
    },
    {
      name: "neither: the delay as usual",
      args: ["-S", ...lists],
      facts: { listed: "none" },
      want: WAIT,
    },
    {
      name: "the score still depends on a zone: the delay as usual",
      args: ["-S", ...lists],
      facts: { listed: undefined, delayOver: true },
      want: PASS,
    },
    {
      name: "exempt beats blocklisted",
      args: ["-S", ...lists],
      facts: { listed: "block", exempt: true },
      want: PASS,
    },
    {
      name: "--action ignore, blocklisted: waits its delay",
      args: ["-S", ...lists, "--action", "ignore"],
      facts: { listed: "block" },
      want: WAIT,
    },
    {
      name: "--action ignore, blocklisted, the delay over: handed on, would have been 421",
      args: ["-S", ...lists, "--action", "ignore"],
      facts: { listed: "block", delayOver: true },
      want: {
        kind: "pass",
        event: "listed",
        rblsmtpd: undefined,
        would: "421",
        refusal: "listed",
      },
    },
    {
      name: "--action ignore, allowlisted: the delay is waited all the same",
      args: ["-S", ...lists, "--action", "ignore"],
      facts: { listed: "allow" },
      want: WAIT,
    },
  ]);
});
