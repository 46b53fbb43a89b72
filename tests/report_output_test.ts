/**
 * `smtp-delay report` on tests/fixtures/report_sample.log, whose lines are
 * known: the JSON's keys and counts, the text, --since and --until, stdin,
 * --html and --svg files, and the exit codes (0, 100, 111).
 */
import assert from "node:assert/strict";
import { EVENT_COLORS } from "../src/report/chart.ts";
import { encodeTai64n } from "../src/report/parse.ts";
import { runReport, SAMPLE } from "./fixtures/report.ts";
import { withTempDir } from "./fixtures/temp_dir.ts";

const SAMPLE_TEXT = await Deno.readTextFile(SAMPLE);

// deno-lint-ignore no-explicit-any
type Json = any;

async function json(args: string[], stdin = ""): Promise<Json> {
  const out = await runReport(["--json", ...args], stdin);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stderr, "");
  return JSON.parse(out.stdout);
}

Deno.test("report --json: the keys, and the counts of the sample's lines", async () => {
  const r = await json([SAMPLE]);
  for (const key of ["lines", "events", "tiers", "waited", "top_early", "first", "last"]) {
    assert.ok(key in r, `key ${key}`);
  }
  assert.equal(r.lines, 19, "smtp-delay lines read: 21 of ours, less 1 damaged, and 1 is no stamp");
  assert.deepEqual(r.input, { read: 24, other: 4, damaged: 1, outside: 0 });
  assert.deepEqual(r.events, {
    PASS: 6,
    EARLY: 4,
    CLOSED: 2,
    REFUSED: 2,
    BUSY: 1,
    END: 1,
    STOP: 1,
    STRESS: 1,
    WARNING: 1,
  });
  assert.equal(r.connections, 15);
  assert.deepEqual(r.shares, {
    PASS: 0.4,
    EARLY: 0.2667,
    CLOSED: 0.1333,
    REFUSED: 0.1333,
    BUSY: 0.0667,
  });
  assert.deepEqual(r.tiers, {
    ptr: { PASS: 4 },
    dynamic: { PASS: 1, EARLY: 1, CLOSED: 1 },
    noptr: { PASS: 1, EARLY: 3, CLOSED: 1, REFUSED: 1 },
    "-": { REFUSED: 1, BUSY: 1 },
  });
  assert.deepEqual(r.waited.EARLY, { n: 4, p50: 0.12, p90: 3.5, p99: 3.5, max: 3.5, total: 4.901 });
  assert.deepEqual(r.waited.CLOSED, {
    n: 2,
    p50: 5.004,
    p90: 20.1,
    p99: 20.1,
    max: 20.1,
    total: 25.104,
  });
  assert.deepEqual(Object.keys(r.waited), ["PASS", "EARLY", "CLOSED", "REFUSED"]);
  assert.deepEqual(r.top_early, [
    { ip: "192.0.2.66", ptr: null, tier: "noptr", count: 3, data: "EHLO?spam.example.org??" },
    {
      ip: "192.0.2.3",
      ptr: "dsl-192-0-2-3.pool.example.net",
      tier: "dynamic",
      count: 1,
      data: "HELO?x",
    },
  ]);
  assert.deepEqual(r.top_refused, [{ ip: "192.0.2.9", ptr: null, tier: "noptr", count: 2 }]);
  assert.deepEqual(r.cost, {
    passed: 6,
    clients: 4,
    seconds: { n: 6, p50: 0.255, p90: 26.011, p99: 26.011, max: 26.011, total: 43.049 },
    by_tier: {
      ptr: { n: 4, p50: 0.251, p90: 0.262, p99: 0.262, max: 0.262, total: 1.018 },
      dynamic: { n: 1, p50: 16.02, p90: 16.02, p99: 16.02, max: 16.02, total: 16.02 },
      noptr: { n: 1, p50: 26.011, p90: 26.011, p99: 26.011, max: 26.011, total: 26.011 },
    },
  });
  assert.equal(r.first, "2026-12-01T08:00:00.000Z");
  assert.equal(r.last, "2026-12-01T11:02:00.000Z");
  assert.equal(r.histogram.bins[0], "0-0.1");
  assert.deepEqual(r.histogram.EARLY.noptr, [1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(r.over_time.bucket, "hour");
  assert.deepEqual(r.over_time.buckets.map((b: Json) => b.start), [
    "2026-12-01T08:00:00.000Z",
    "2026-12-01T09:00:00.000Z",
    "2026-12-01T10:00:00.000Z",
    "2026-12-01T11:00:00.000Z",
  ]);
  assert.deepEqual(r.over_time.buckets[0], {
    start: "2026-12-01T08:00:00.000Z",
    PASS: 2,
    EARLY: 2,
    CLOSED: 1,
    REFUSED: 1,
  });
});

Deno.test("report --since/--until: only the stamped lines of the period", async () => {
  const r = await json(["--since", "2026-12-01T09:00Z", "--until=2026-12-01T10:00:00Z", SAMPLE]);
  assert.deepEqual(r.events, { PASS: 2, EARLY: 2, END: 1 });
  assert.equal(r.input.outside, 14, "19 lines of ours, 5 in the hour");
  assert.equal(r.first, "2026-12-01T09:01:00.000Z");
  assert.equal(r.since, "2026-12-01T09:00:00.000Z");
  const recent = await json(["--since", "-2h", SAMPLE]);
  assert.equal(recent.lines, 0, "the sample is older than 2 hours");
  assert.equal(recent.first, null);
});

Deno.test("report reads stdin without an argument, and with '-'", async () => {
  const a = await json([], SAMPLE_TEXT);
  const b = await json(["-"], SAMPLE_TEXT);
  const c = await json([SAMPLE]);
  assert.deepEqual(a, c);
  assert.deepEqual(b, c);
});

Deno.test("report's text: the period, the outcomes, the waits, the cost, the top lists", async () => {
  const out = await runReport([SAMPLE]);
  assert.equal(out.code, 0, out.stderr);
  const text = out.stdout;
  for (
    const want of [
      /^smtp-delay report: 2026-12-01T08:00:00Z to 2026-12-01T11:02:00Z \(3\.0 h\)$/m,
      /^lines: 24 read, 19 of smtp-delay counted, 4 of other programs, 1 damaged, 0 outside/m,
      /^ {2}event +count +share +ptr +dynamic +noptr +-$/m,
      /^ {2}PASS +6 +40\.0% +4 +1 +1 +0$/m,
      /^ {2}EARLY +4 +26\.7% +0 +1 +3 +0$/m,
      /^ {2}all +15 +100\.0% +4 +3 +6 +2$/m,
      /^ {2}other lines: END 1, STOP 1, STRESS 1, WARNING 1$/m,
      /^ {2}EARLY noptr +3 +0\.120 +1\.250 +1\.250 +1\.250$/m,
      /^ {2}seconds +EARLY dynamic +EARLY noptr +CLOSED dynamic +CLOSED noptr$/m,
      /^ {2}0-0\.1 +0 +1 +0 +0$/m,
      /^ {2}6 connections from 4 clients waited 43\.0 s in all: p50 0\.255 s, p90 26\.011 s/m,
      /^ {6,}3 192\.0\.2\.66 +noptr +-$/m,
      /^ {6,}2 192\.0\.2\.9 +noptr +-$/m,
    ]
  ) assert.match(text, want);
  assert.ok(text.split("\n").every((l) => l.length <= 100 && /^[\x20-\x7e]*$/.test(l)), text);
});

Deno.test("report --html and --svg write their files, and the text still goes to stdout", async () => {
  await withTempDir(async (dir) => {
    const out = await runReport(["--html", `${dir}/r.html`, "--svg", `${dir}/r.svg`, SAMPLE]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^smtp-delay report: /);
    const html = await Deno.readTextFile(`${dir}/r.html`);
    const svg = await Deno.readTextFile(`${dir}/r.svg`);
    assert.match(html, /^<!doctype html>/);
    assert.equal((html.match(/<svg /g) ?? []).length, 3, "three charts");
    assert.match(svg, /^<svg /);
    for (const text of [html, svg]) {
      assert.match(text, /Outcomes per hour \(UTC\)/);
      assert.match(text, /Top early talkers/);
      assert.match(text, /aria-roledescription="bar"/, "bars drawn");
      assert.doesNotMatch(
        text,
        /<script|https?:\/\/(?!www\.w3\.org\/)/,
        "no script, nothing fetched",
      );
    }
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["r.html", "r.svg"]);
  });
});

/** A log with lists configured: two clients listed (-S, then rblsmtpd), one allowlisted, one early. */
const LISTS_LOG = [
  "LISTED pid=1 ip=192.0.2.9 tier=noptr ptr=- lookup=none delay=26.000 waited=0.050 action=421 " +
  "memory=- score=3 lists=zen.test,bl.test",
  "LISTED pid=2 ip=192.0.2.9 tier=noptr ptr=- lookup=none delay=26.000 waited=0.040 " +
  "action=rblsmtpd memory=- score=2 lists=zen.test",
  "PASS pid=3 ip=192.0.2.2 tier=ptr ptr=mail.example.net lookup=found delay=0.000 waited=0.012 " +
  "action=exec memory=- score=-5 lists=list.dnswl.org",
  "EARLY pid=4 ip=192.0.2.4 tier=noptr ptr=- lookup=none delay=26.000 waited=0.031 action=451 " +
  "memory=- score=- lists=- bytes=6 data=EHLO??",
].map((l, i) => `${encodeTai64n(Date.UTC(2026, 11, 1, 8, i))} smtp-delay: info: ${l}`).join("\n") +
  "\n";

Deno.test("report counts LISTED as its own event, and the zones that hit, in every output", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/log`, LISTS_LOG);
    const r = await json([`${dir}/log`]);
    assert.deepEqual(r.events, { PASS: 1, EARLY: 1, LISTED: 2 });
    assert.deepEqual(r.shares, { PASS: 0.25, EARLY: 0.25, LISTED: 0.5 });
    assert.deepEqual(r.lists, {
      lines: 4,
      scored: 3,
      zones: [
        { zone: "zen.test", hits: 2, events: { LISTED: 2 } },
        { zone: "bl.test", hits: 1, events: { LISTED: 1 } },
        { zone: "list.dnswl.org", hits: 1, events: { PASS: 1 } },
      ],
    });
    assert.deepEqual(r.top_listed, [{ ip: "192.0.2.9", ptr: null, tier: "noptr", count: 2 }]);
    assert.deepEqual(r.top_refused, []);
    assert.deepEqual(r.over_time.buckets[0], {
      start: "2026-12-01T08:00:00.000Z",
      PASS: 1,
      EARLY: 1,
      LISTED: 2,
    });

    const out = await runReport(["--html", `${dir}/r.html`, "--svg", `${dir}/r.svg`, `${dir}/log`]);
    assert.equal(out.code, 0, out.stderr);
    for (
      const want of [
        /^ {2}LISTED +2 +50\.0% +0 +2$/m,
        /^Lists: 4 connections screened with lists, 3 scored; the zones that hit them$/m,
        /^ {2}zone +hits +PASS +LISTED$/m,
        /^ {2}zen\.test +2 +0 +2$/m,
        /^ {2}list\.dnswl\.org +1 +1 +0$/m,
        /^Top listed clients\n +count ip +tier +ptr\n +2 192\.0\.2\.9 +noptr +-$/m,
      ]
    ) assert.match(out.stdout, want);
    const html = await Deno.readTextFile(`${dir}/r.html`);
    const svg = await Deno.readTextFile(`${dir}/r.svg`);
    assert.match(html, /<h2>Lists<\/h2>/);
    assert.match(
      html,
      /<tr><td class="text">zen\.test<\/td><td>2<\/td><td>0<\/td><td>2<\/td><\/tr>/,
    );
    assert.match(html, /<h3>Listed<\/h3>/);
    for (const text of [html, svg]) {
      assert.ok(text.includes(EVENT_COLORS.LISTED!), "LISTED's colour in the chart over time");
      assert.match(text, /Top listed clients/);
    }
  });
});

Deno.test("report of a log without lists says nothing of them", async () => {
  const out = await runReport([SAMPLE]);
  assert.equal(out.code, 0, out.stderr);
  assert.doesNotMatch(out.stdout, /^Lists|^Top listed/m);
  const r = await json([SAMPLE]);
  assert.deepEqual(r.lists, { lines: 0, scored: 0, zones: [] });
  assert.deepEqual(r.top_listed, []);
});

Deno.test("report's exit codes: 100 for usage, 111 for an input it cannot read or a file it cannot write", async (t) => {
  await t.step("a bad option", async () => {
    const out = await runReport(["--since", "yesterday", SAMPLE]);
    assert.equal(out.code, 100);
    assert.match(
      out.stderr,
      /^smtp-delay: fatal: --since wants an ISO 8601 time .* got "yesterday"\n$/,
    );
    assert.equal(out.stdout, "");
  });
  await t.step("a missing input", async () => {
    const out = await runReport(["/nonexistent/log"]);
    assert.equal(out.code, 111);
    assert.equal(
      out.stderr,
      "smtp-delay: fatal: unable to read /nonexistent/log: No such file or directory\n",
    );
  });
  await t.step("an unwritable page", async () => {
    const out = await runReport(["--html", "/nonexistent/r.html", SAMPLE]);
    assert.equal(out.code, 111);
    assert.match(out.stderr, /^smtp-delay: fatal: unable to write \/nonexistent\/r\.html: /);
  });
  await t.step("--help", async () => {
    const out = await runReport(["--help"]);
    assert.equal(out.code, 0);
    assert.match(out.stdout, /^usage: smtp-delay report \[--since TIME\]/);
  });
});
