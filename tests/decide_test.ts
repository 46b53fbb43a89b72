import assert from "node:assert/strict";
import { type Config, parseConfig } from "../src/config.ts";
import { decide, type Facts, type Verdict } from "../src/decide.ts";
import { EARLY_TEXT, REFUSED_TEXT } from "../src/reply.ts";
import type { Watched } from "../src/watch.ts";

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
