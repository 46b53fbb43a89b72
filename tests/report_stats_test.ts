/**
 * src/report/stats.ts: percentiles, shares, per-tier counts, histograms,
 * top lists, the cost to clients that passed, the period, and the outcomes
 * over time (per hour, per day).
 */
import assert from "node:assert/strict";
import { type LogRecord, parseLine } from "../src/report/parse.ts";
import type { Summary } from "../src/report/stats.ts";
import {
  BIN_EDGES,
  binLabel,
  MAX_ZONES,
  OTHER_ZONE,
  percentiles,
  Tally,
} from "../src/report/stats.ts";

const T0 = Date.UTC(2026, 11, 1, 0, 0, 0);
const H = 3_600_000;

/** An outcome line as log.ts writes it, parsed; at `atMs` when given. */
function outcome(
  event: string,
  ip: string,
  tier: string,
  waited: number,
  atMs?: number,
  ptr = "-",
): LogRecord {
  const line = `smtp-delay: info: ${event} pid=1 ip=${ip} tier=${tier} ptr=${ptr} lookup=found ` +
    `delay=1.000 waited=${waited.toFixed(3)} action=exec memory=-` +
    (event === "EARLY" ? " bytes=6 data=EHLO??" : "");
  const r = parseLine(line);
  assert.ok(r, line);
  return { ...r, atMs };
}

Deno.test("percentiles() are nearest-rank: the smallest value with q of them at or below", async (t) => {
  const rows: Array<[string, number[], [number, number, number, number, number] | undefined]> = [
    ["none", [], undefined],
    ["one", [7], [7, 7, 7, 7, 7]],
    ["1..10", [10, 9, 8, 7, 6, 5, 4, 3, 2, 1], [5, 9, 10, 10, 55]],
    ["1..100", Array.from({ length: 100 }, (_, i) => 100 - i), [50, 90, 99, 100, 5050]],
    ["1..1000", Array.from({ length: 1000 }, (_, i) => i + 1), [500, 900, 990, 1000, 500500]],
    ["ties", [1, 1, 1, 2], [1, 2, 2, 2, 5]],
  ];
  for (const [name, values, want] of rows) {
    await t.step(name, () => {
      const p = percentiles(new Float64Array(values));
      assert.deepEqual(
        p && [p.p50, p.p90, p.p99, p.max, p.total],
        want,
        `got ${JSON.stringify(p)}, want ${want}`,
      );
      if (p) assert.equal(p.n, values.length);
    });
  }
});

Deno.test("Tally counts events, tiers and shares; other and damaged lines apart", () => {
  const tally = new Tally();
  for (let i = 0; i < 6; i++) tally.add(outcome("PASS", `192.0.2.${i}`, "ptr", 0.25));
  for (let i = 0; i < 3; i++) tally.add(outcome("EARLY", "192.0.2.66", "noptr", 0.01 * (i + 1)));
  tally.add(outcome("CLOSED", "192.0.2.70", "dynamic", 5));
  tally.add(parseLine("smtp-delay: info: BUSY ip=192.0.2.7 why=waiting waiting=9 action=421")!);
  tally.add(parseLine("smtp-delay: info: END pid=1 ip=192.0.2.2 why=eof in=1 out=2 seconds=3")!);
  tally.add(parseLine("smtp-delay: warning: unable to look up the PTR of 192.0.2.4: timed out")!);
  tally.otherLine();
  tally.otherLine();
  tally.damaged();
  const s = tally.summary();
  assert.deepEqual(s.input, { read: 16, ours: 13, other: 2, damaged: 1, outside: 0 });
  assert.deepEqual(s.events, { PASS: 6, EARLY: 3, CLOSED: 1, BUSY: 1, END: 1, WARNING: 1 });
  assert.equal(s.connections, 11, "outcomes and BUSY, not END nor warnings");
  assert.deepEqual(s.shares, { PASS: 6 / 11, EARLY: 3 / 11, CLOSED: 1 / 11, BUSY: 1 / 11 });
  assert.deepEqual(s.tiers, {
    ptr: { PASS: 6 },
    dynamic: { CLOSED: 1 },
    noptr: { EARLY: 3 },
    "-": { BUSY: 1 },
  });
  assert.deepEqual(Object.keys(s.waited), ["PASS", "EARLY", "CLOSED"]);
  assert.equal(s.waited.EARLY!.p50, 0.02);
  assert.equal(s.waited.EARLY!.max, 0.03);
  assert.equal(s.waitedByTier.noptr!.EARLY!.n, 3);
});

Deno.test("Tally: an outcome word of a later version counts as a connection, by its tier", () => {
  const tally = new Tally();
  tally.add(outcome("PASS", "192.0.2.1", "ptr", 0.25));
  tally.add(outcome("TEASED", "192.0.2.2", "noptr", 2));
  const s = tally.summary();
  assert.equal(s.connections, 2);
  assert.deepEqual(s.shares, { PASS: 0.5, TEASED: 0.5 });
});

Deno.test("Tally's histogram puts each EARLY and CLOSED wait in its bin, per tier", () => {
  const tally = new Tally();
  const waits = [0, 0.099, 0.1, 0.5, 0.999, 1, 29.999, 30, 119, 120, 299];
  for (const w of waits) tally.add(outcome("EARLY", "192.0.2.9", "noptr", w));
  tally.add(outcome("CLOSED", "192.0.2.9", "dynamic", 10));
  tally.add(outcome("PASS", "192.0.2.1", "ptr", 0.25));
  const s = tally.summary();
  const bins = (labels: string[]) =>
    BIN_EDGES.map((_, i) => labels.filter((l) => l === binLabel(i)).length);
  assert.deepEqual(
    s.histogram.EARLY!.noptr,
    bins([
      "0-0.1",
      "0-0.1",
      "0.1-0.25",
      "0.5-1",
      "0.5-1",
      "1-2",
      "20-30",
      "30-60",
      "60-120",
      "120+",
      "120+",
    ]),
  );
  assert.deepEqual(s.histogram.CLOSED!.dynamic, bins(["10-15"]));
  assert.equal(s.histogram.PASS, undefined, "no histogram of PASS");
  assert.equal(binLabel(0), "0-0.1");
  assert.equal(binLabel(BIN_EDGES.length - 1), "120+");
});

Deno.test("Tally's top lists: most first, ties by address, the last PTR seen, cut at n", () => {
  const tally = new Tally();
  const early = [
    ["192.0.2.5", 3],
    ["192.0.2.4", 3],
    ["192.0.2.9", 5],
    ["192.0.2.1", 1],
  ] as const;
  for (const [ip, n] of early) {
    for (let i = 0; i < n; i++) {
      tally.add(outcome("EARLY", ip, "dynamic", 0.1, undefined, `dsl-${i}.example.net`));
    }
  }
  tally.add(outcome("REFUSED", "192.0.2.66", "noptr", 0.01));
  tally.add(outcome("REFUSED", "192.0.2.66", "noptr", 0.01));
  const s = tally.summary(3);
  assert.deepEqual(s.topEarly, [
    { ip: "192.0.2.9", ptr: "dsl-4.example.net", tier: "dynamic", count: 5, data: "EHLO??" },
    { ip: "192.0.2.4", ptr: "dsl-2.example.net", tier: "dynamic", count: 3, data: "EHLO??" },
    { ip: "192.0.2.5", ptr: "dsl-2.example.net", tier: "dynamic", count: 3, data: "EHLO??" },
  ]);
  assert.deepEqual(s.topRefused, [
    { ip: "192.0.2.66", ptr: undefined, tier: "noptr", count: 2, data: undefined },
  ]);
});

Deno.test("Tally's cost: the seconds that clients that passed waited, and how many clients", () => {
  const tally = new Tally();
  tally.add(outcome("PASS", "192.0.2.1", "ptr", 0.25));
  tally.add(outcome("PASS", "192.0.2.1", "ptr", 0.3));
  tally.add(outcome("PASS", "192.0.2.2", "dynamic", 16));
  tally.add(outcome("EARLY", "192.0.2.3", "noptr", 1));
  const { cost } = tally.summary();
  assert.equal(cost.passed, 3);
  assert.equal(cost.clients, 2);
  assert.equal(cost.seconds?.total, 16.55);
  assert.equal(cost.seconds?.p50, 0.3);
  assert.equal(cost.seconds?.p99, 16);
  assert.deepEqual(Object.keys(cost.byTier), ["ptr", "dynamic"]);
  assert.equal(cost.byTier.ptr?.total, 0.55);
});

Deno.test("Tally keeps the period [since, until): lines before, at until, and unstamped are outside", () => {
  const tally = new Tally({ sinceMs: T0 + H, untilMs: T0 + 3 * H });
  const at = [T0, T0 + H - 1, T0 + H, T0 + 2 * H, T0 + 3 * H - 1, T0 + 3 * H, undefined];
  for (const ms of at) tally.add(outcome("PASS", "192.0.2.1", "ptr", 0.25, ms));
  const s = tally.summary();
  assert.equal(s.events.PASS, 3);
  assert.equal(s.input.outside, 4);
  assert.equal(s.firstMs, T0 + H);
  assert.equal(s.lastMs, T0 + 3 * H - 1);
});

Deno.test("Tally without a period keeps unstamped lines, and draws no time without stamps", () => {
  const tally = new Tally();
  tally.add(outcome("PASS", "192.0.2.1", "ptr", 0.25));
  const s = tally.summary();
  assert.equal(s.events.PASS, 1);
  assert.equal(s.firstMs, undefined);
  assert.deepEqual(s.buckets, []);
});

Deno.test("Tally's outcomes over time: per hour up to 3 days, every hour drawn, empty ones too", () => {
  const tally = new Tally();
  tally.add(outcome("PASS", "192.0.2.1", "ptr", 0.25, T0 + 10));
  tally.add(outcome("EARLY", "192.0.2.2", "noptr", 0.1, T0 + 20));
  tally.add(outcome("PASS", "192.0.2.1", "ptr", 0.25, T0 + 3 * H + 5));
  const s = tally.summary();
  assert.equal(s.bucketMs, H);
  assert.deepEqual(s.buckets, [
    { startMs: T0, counts: { PASS: 1, EARLY: 1 } },
    { startMs: T0 + H, counts: {} },
    { startMs: T0 + 2 * H, counts: {} },
    { startMs: T0 + 3 * H, counts: { PASS: 1 } },
  ]);
});

Deno.test("Tally's outcomes over time: per UTC day beyond 3 days, or when the period asks", async (t) => {
  await t.step("the stamps span 5 days", () => {
    const tally = new Tally();
    tally.add(outcome("PASS", "192.0.2.1", "ptr", 0.25, T0 + 5 * H));
    tally.add(outcome("CLOSED", "192.0.2.1", "ptr", 0.25, T0 + 4 * 24 * H + 7 * H));
    const s = tally.summary();
    assert.equal(s.bucketMs, 24 * H);
    assert.equal(s.buckets.length, 5);
    assert.deepEqual(s.buckets[0], { startMs: T0, counts: { PASS: 1 } });
    assert.deepEqual(s.buckets[4], { startMs: T0 + 4 * 24 * H, counts: { CLOSED: 1 } });
  });
  await t.step("--since 7 days before, one day of lines", () => {
    const tally = new Tally({ sinceMs: T0 - 6 * 24 * H, untilMs: T0 + 24 * H });
    tally.add(outcome("PASS", "192.0.2.1", "ptr", 0.25, T0 + 5 * H));
    const s = tally.summary();
    assert.equal(s.bucketMs, 24 * H);
    assert.equal(s.buckets.length, 7);
    assert.deepEqual(s.buckets[6], { startMs: T0, counts: { PASS: 1 } });
  });
});

Deno.test("Tally: --action ignore lines count by their event, apart in `ignored`, out of the waits", () => {
  const tally = new Tally();
  tally.add(outcome("EARLY", "192.0.2.4", "noptr", 0.05));
  for (const would of ["451", "451", "rblsmtpd"]) {
    const line = "smtp-delay: info: EARLY pid=1 ip=192.0.2.5 tier=noptr ptr=- lookup=none " +
      `delay=26.000 waited=26.010 action=ignore would=${would} memory=- bytes=6 data=EHLO??`;
    tally.add(parseLine(line)!);
  }
  tally.add(
    parseLine(
      "smtp-delay: info: REFUSED pid=2 ip=192.0.2.6 tier=noptr ptr=- lookup=none delay=26.000 " +
        "waited=26.010 action=ignore would=421 memory=box",
    )!,
  );
  const s = tally.summary();
  assert.deepEqual(s.events, { EARLY: 4, REFUSED: 1 });
  assert.deepEqual(s.ignored, { EARLY: { "451": 2, rblsmtpd: 1 }, REFUSED: { "421": 1 } });
  assert.equal(s.waited.EARLY?.n, 1, "the delay an ignored client waited is not when it talked");
  assert.equal(s.waited.EARLY?.max, 0.05);
  assert.equal(s.waited.REFUSED, undefined);
  assert.equal(s.topEarly[0]?.ip, "192.0.2.5", "an ignored early talker is still an early talker");
});

/** An outcome line with the lists' fields, as log.ts writes it with lists configured. */
function scored(
  event: string,
  ip: string,
  score: string,
  lists: string,
  action = "421",
): LogRecord {
  const line = `smtp-delay: info: ${event} pid=1 ip=${ip} tier=noptr ptr=- lookup=none ` +
    `delay=26.000 waited=0.050 action=${action} memory=- score=${score} lists=${lists}` +
    (event === "EARLY" ? " bytes=6 data=EHLO??" : "");
  const r = parseLine(line);
  assert.ok(r, line);
  return r;
}

Deno.test("Tally counts LISTED as a connection of its own, between REFUSED and BUSY", () => {
  const tally = new Tally();
  tally.add(outcome("PASS", "192.0.2.1", "ptr", 0.25));
  tally.add(parseLine("smtp-delay: info: BUSY ip=192.0.2.7 why=waiting waiting=9 action=421")!);
  tally.add(scored("LISTED", "192.0.2.9", "3", "zen.test,bl.test"));
  tally.add(scored("LISTED", "192.0.2.9", "3", "zen.test,bl.test", "rblsmtpd"));
  tally.add(outcome("REFUSED", "192.0.2.8", "noptr", 0.01));
  const s = tally.summary();
  assert.deepEqual(s.events, { PASS: 1, REFUSED: 1, LISTED: 2, BUSY: 1 });
  assert.equal(s.connections, 5);
  assert.deepEqual(Object.keys(s.shares), ["PASS", "REFUSED", "LISTED", "BUSY"]);
  assert.deepEqual(s.tiers.noptr, { REFUSED: 1, LISTED: 2 });
  assert.equal(s.waited.LISTED?.n, 2);
  assert.deepEqual(s.topListed, [
    { ip: "192.0.2.9", ptr: undefined, tier: "noptr", count: 2, data: undefined },
  ]);
  assert.deepEqual(s.topRefused.map((t) => t.ip), ["192.0.2.8"], "LISTED is not REFUSED");
});

Deno.test("Tally counts the zones that hit, per event; lines scored and with lists", async (t) => {
  const rows: Array<[string, LogRecord[], Summary["lists"]]> = [
    ["no line with lists: nothing", [outcome("PASS", "192.0.2.1", "ptr", 0.25)], {
      lines: 0,
      scored: 0,
      zones: [],
    }],
    ["score=- lists=-: a line with lists, not scored, no hit", [
      scored("EARLY", "192.0.2.4", "-", "-", "451"),
    ], { lines: 1, scored: 0, zones: [] }],
    ["a score, no hit", [scored("PASS", "192.0.2.1", "0", "-", "exec")], {
      lines: 1,
      scored: 1,
      zones: [],
    }],
    ["hits on LISTED and PASS lines, most first, ties by name", [
      scored("LISTED", "192.0.2.9", "3", "zen.test,bl.test"),
      scored("LISTED", "192.0.2.10", "2", "zen.test"),
      scored("PASS", "192.0.2.2", "-5", "list.dnswl.org", "exec"),
      scored("PASS", "192.0.2.3", "-4", "list.dnswl.org,zen.test", "exec"),
      outcome("PASS", "192.0.2.1", "ptr", 0.25),
    ], {
      lines: 4,
      scored: 4,
      zones: [
        { zone: "zen.test", hits: 3, events: { PASS: 1, LISTED: 2 } },
        { zone: "list.dnswl.org", hits: 2, events: { PASS: 2 } },
        { zone: "bl.test", hits: 1, events: { LISTED: 1 } },
      ],
    }],
  ];
  for (const [name, records, want] of rows) {
    await t.step(name, () => {
      const tally = new Tally();
      for (const r of records) tally.add(r);
      assert.deepEqual(tally.summary().lists, want);
    });
  }
});

Deno.test("Tally keeps MAX_ZONES zones apart, and counts the hits of any more as OTHER_ZONE", () => {
  const tally = new Tally();
  for (let i = 0; i < MAX_ZONES + 5; i++) {
    tally.add(scored("LISTED", "192.0.2.9", "1", `z${i}.test`));
  }
  tally.add(scored("LISTED", "192.0.2.9", "1", "z0.test"));
  const { zones } = tally.summary().lists;
  assert.equal(zones.length, MAX_ZONES + 1);
  assert.deepEqual(zones[0], { zone: OTHER_ZONE, hits: 5, events: { LISTED: 5 } });
  assert.deepEqual(zones[1], { zone: "z0.test", hits: 2, events: { LISTED: 2 } });
});
