import assert from "node:assert/strict";
import { Counters, MAX_ZONES, OTHER_ZONE, WAIT_BOUNDS } from "../src/metrics/counters.ts";
import { render } from "../src/metrics/exposition.ts";
import { parseLine } from "../src/report/parse.ts";
import { formatOutcome, type Outcome } from "../src/log.ts";

/** Counts `lines` as the follower does (parseLine, then count); the exposition's text. */
function counted(lines: readonly string[]): string {
  const counters = new Counters();
  for (const line of lines) counters.count(parseLine(line));
  return render(counters.families());
}

/** The value of the sample whose line starts with `head` (name and labels), or undefined. */
function value(text: string, head: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(head + " "));
  return line === undefined ? undefined : Number(line.slice(head.length + 1));
}

const conn = (event: string, tier: string) =>
  `smtp_delay_connections_total{event="${event}",tier="${tier}"}`;

const PASS = "smtp-delay: info: PASS pid=4711 ip=192.0.2.2 tier=ptr ptr=mail.example.net " +
  "lookup=found delay=0.250 waited=0.262 action=exec memory=passed";
const EARLY = "smtp-delay: info: EARLY pid=4712 ip=192.0.2.4 tier=noptr ptr=- lookup=none " +
  "delay=26.000 waited=0.031 action=451 memory=- bytes=24 data=EHLO?spam.example.org??";
const EARLY_PENDING = "smtp-delay: info: EARLY pid=4715 ip=192.0.2.5 tier=- ptr=- " +
  "lookup=pending delay=- waited=0.004 action=451 memory=- bytes=6 data=QUIT??";
const CLOSED = "smtp-delay: info: CLOSED pid=4713 ip=192.0.2.3 tier=dynamic " +
  "ptr=dsl-192-0-2-3.pool.example.net lookup=found delay=16.000 waited=5.004 action=exit memory=-";
const REFUSED = "smtp-delay: info: REFUSED pid=4714 ip=192.0.2.9 tier=noptr ptr=- lookup=none " +
  "delay=26.000 waited=0.048 action=421 memory=-";
const BUSY = "smtp-delay: info: BUSY ip=192.0.2.7 why=waiting waiting=1000 action=421";
const LISTED = "smtp-delay: info: LISTED pid=4716 ip=192.0.2.9 tier=noptr ptr=- lookup=none " +
  "delay=26.000 waited=0.050 action=421 memory=- score=3 lists=zen.test,bl.test";
const LISTED_RBLSMTPD = "smtp-delay: info: LISTED pid=4717 ip=192.0.2.10 tier=- ptr=- " +
  "lookup=pending delay=- waited=0.020 action=rblsmtpd memory=- score=1 lists=zen.test";
const ALLOWED = "smtp-delay: info: PASS pid=4718 ip=192.0.2.2 tier=ptr ptr=mail.example.net " +
  "lookup=found delay=0.000 waited=0.012 action=exec memory=- score=-5 lists=list.dnswl.org";
const NOT_ASKED = "smtp-delay: info: EARLY pid=4719 ip=192.0.2.4 tier=noptr ptr=- lookup=none " +
  "delay=26.000 waited=0.031 action=451 memory=- score=- lists=- bytes=6 data=EHLO??";

const hits = (zone: string) => `smtp_delay_list_hits_total{zone="${zone}"}`;

Deno.test("Counters counts each outcome line by its event word and tier", async (t) => {
  const stamp = "@400000006579a1c20b2a1c34 ";
  const text = counted([
    PASS,
    PASS,
    stamp + PASS, // multilog's stamp: the same line
    EARLY,
    EARLY_PENDING,
    CLOSED,
    REFUSED,
    BUSY,
    stamp + BUSY,
    LISTED,
    stamp + LISTED,
    LISTED_RBLSMTPD,
    ALLOWED,
    NOT_ASKED,
  ]);
  const rows: [string, string, number][] = [
    ["PASS", "ptr", 4],
    ["PASS", "noptr", 0],
    ["EARLY", "noptr", 2],
    ["EARLY", "-", 1],
    ["CLOSED", "dynamic", 1],
    ["REFUSED", "noptr", 1],
    ["BUSY", "-", 2],
    ["CLOSED", "ptr", 0],
    ["LISTED", "noptr", 2],
    ["LISTED", "-", 1],
    ["LISTED", "ptr", 0],
  ];
  for (const [event, tier, want] of rows) {
    await t.step(`${event} ${tier}: ${want}`, () => {
      assert.equal(value(text, conn(event, tier)), want, text);
    });
  }
});

Deno.test("Counters starts every event word and tier at 0, so that a rate of zero shows", () => {
  const text = counted([]);
  for (const event of ["PASS", "EARLY", "CLOSED", "REFUSED", "LISTED"]) {
    for (const tier of ["ptr", "dynamic", "noptr", "-"]) {
      assert.equal(value(text, conn(event, tier)), 0, `${event} ${tier}`);
    }
  }
  assert.equal(value(text, conn("BUSY", "-")), 0);
  assert.equal(value(text, "smtp_delay_store_failures_total"), 0);
});

Deno.test("Counters counts an event word it does not know by that word", () => {
  const line = "smtp-delay: info: GREYED pid=1 ip=192.0.2.1 tier=ptr ptr=a.example lookup=found " +
    "delay=1.000 waited=1.001 action=451 memory=-";
  assert.equal(value(counted([line]), conn("GREYED", "ptr")), 1);
});

Deno.test("Counters ignores lines that are not outcome, BUSY or store failures", async (t) => {
  const rows: [string, string][] = [
    ["tcpserver's", "tcpserver: pid 4711 from 192.0.2.2"],
    ["END", "smtp-delay: info: END pid=4711 ip=192.0.2.2 why=eof in=5 out=4 seconds=1.000"],
    ["STRESS", "smtp-delay: info: STRESS on waiting=900 limit=1000"],
    ["a PTR warning", "smtp-delay: warning: unable to look up the PTR of 192.0.2.4: timed out"],
    ["a fatal", "smtp-delay: fatal: unable to run /x: No such file or directory"],
    ["a damaged outcome line", PASS.replace("waited=0.262", "waited=x")],
    ["an outcome line cut short", PASS.slice(0, 60)],
    ["an empty line", ""],
  ];
  const zero = counted([]);
  for (const [name, line] of rows) {
    await t.step(name, () => assert.equal(counted([line]), zero));
  }
});

Deno.test("Counters counts the store's failures: its two warnings, and no other", async (t) => {
  const rows: [string, string, number][] = [
    [
      "at the arrival",
      "smtp-delay: warning: going on without memory: sqlite /var/lib/smtp-delay/state.db: " +
      "unable to update: database is locked",
      1,
    ],
    [
      "after the outcome",
      "smtp-delay: warning: unable to remember the outcome: redis 127.0.0.1:6379: timed out",
      1,
    ],
    ["stamped", "@400000006579a1c20b2a1c34 smtp-delay: warning: going on without memory: x", 1],
    ["another warning", "smtp-delay: warning: unable to look up the PTR of 192.0.2.4: x", 0],
    ["an info line with the words", "smtp-delay: info: going on without memory: x", 0],
  ];
  for (const [name, line, want] of rows) {
    await t.step(name, () => {
      assert.equal(value(counted([line]), "smtp_delay_store_failures_total"), want);
    });
  }
});

Deno.test("Counters puts each wait in its tier's histogram, in the bucket at or above it", () => {
  const lines = [PASS, EARLY, EARLY_PENDING, CLOSED, REFUSED];
  const text = counted([...lines, BUSY]);
  const bucket = (tier: string, le: string) =>
    value(text, `smtp_delay_wait_seconds_bucket{tier="${tier}",le="${le}"}`);
  // ptr: 0.262, in le=0.3 and every bucket above, not in 0.1.
  assert.equal(bucket("ptr", "0.1"), 0);
  assert.equal(bucket("ptr", "0.3"), 1);
  assert.equal(bucket("ptr", "+Inf"), 1);
  // noptr: 0.031 (EARLY) and 0.048 (REFUSED), both in le=0.05.
  assert.equal(bucket("noptr", "0.05"), 2);
  // dynamic: 5.004, above 5, in 10.
  assert.equal(bucket("dynamic", "5"), 0);
  assert.equal(bucket("dynamic", "10"), 1);
  // no tier: 0.004; BUSY lines have no wait.
  assert.equal(bucket("-", "0.05"), 1);
  assert.equal(value(text, 'smtp_delay_wait_seconds_count{tier="-"}'), 1);
  assert.equal(value(text, 'smtp_delay_wait_seconds_sum{tier="noptr"}'), 0.079);
  assert.equal(value(text, 'smtp_delay_wait_seconds_sum{tier="ptr"}'), 0.262);
});

Deno.test("a wait exactly on a bound falls in that bound's bucket (le is 'at most')", async (t) => {
  for (const bound of WAIT_BOUNDS) {
    await t.step(`${bound} s`, () => {
      const line = PASS.replace("waited=0.262", `waited=${bound.toFixed(3)}`);
      const text = counted([line]);
      const at = value(text, `smtp_delay_wait_seconds_bucket{tier="ptr",le="${bound}"}`);
      assert.equal(at, 1);
      const below = WAIT_BOUNDS[WAIT_BOUNDS.indexOf(bound) - 1];
      if (below !== undefined) {
        assert.equal(value(text, `smtp_delay_wait_seconds_bucket{tier="ptr",le="${below}"}`), 0);
      }
    });
  }
});

Deno.test("the wait buckets cover delays of 0.25 to 300 s, increasing", () => {
  assert.ok(WAIT_BOUNDS[0]! < 0.25 && WAIT_BOUNDS.at(-1) === 300);
  for (let i = 1; i < WAIT_BOUNDS.length; i++) assert.ok(WAIT_BOUNDS[i]! > WAIT_BOUNDS[i - 1]!);
  // Just above each default delay: 0.25, 16, 26 s.
  for (const delay of [0.25, 16, 26]) {
    assert.ok(WAIT_BOUNDS.some((b) => b > delay && b <= delay * 1.2 + 0.1), `${delay}`);
  }
});

Deno.test("Counters counts the lines log.ts writes: formatOutcome's line round-trips", () => {
  const outcome: Outcome = {
    event: "early",
    pid: 0,
    ip: "2001:0db8:0000:0000:0000:0000:0000:0025",
    tier: "dynamic",
    ptr: "dyn-1.example.net",
    lookup: "found",
    delayMs: 16_000,
    waitedMs: 1234,
    action: "451",
    memory: "penalty",
    bytes: 6,
    data: new TextEncoder().encode("QUIT\r\n"),
  };
  const text = counted([formatOutcome(outcome)]);
  assert.equal(value(text, conn("EARLY", "dynamic")), 1, text);
  assert.equal(value(text, 'smtp_delay_wait_seconds_sum{tier="dynamic"}'), 1.234);
});

Deno.test("Counters counts the zones that hit, from lists=, by zone", async (t) => {
  const rows: Array<[string, string[], Record<string, number | undefined>]> = [
    ["no line with lists: no zone", [PASS, EARLY, REFUSED], { "zen.test": undefined }],
    ["score=- lists=-: no zone", [NOT_ASKED], { "zen.test": undefined, "-": undefined }],
    ["each zone of a LISTED line", [LISTED], { "zen.test": 1, "bl.test": 1 }],
    ["every line it hit, whatever its word", [LISTED, LISTED_RBLSMTPD, ALLOWED], {
      "zen.test": 2,
      "bl.test": 1,
      "list.dnswl.org": 1,
    }],
    ["a damaged line: nothing", [LISTED.replace("score=3", "score=x")], { "zen.test": undefined }],
  ];
  for (const [name, lines, want] of rows) {
    await t.step(name, () => {
      const text = counted(lines);
      assert.match(text, /^# TYPE smtp_delay_list_hits_total counter$/m);
      for (const [zone, n] of Object.entries(want)) {
        assert.equal(value(text, hits(zone)), n, `${zone} in\n${text}`);
      }
    });
  }
});

Deno.test("Counters keeps MAX_ZONES zones as labels, and counts any more under OTHER_ZONE", () => {
  const zones = Array.from({ length: MAX_ZONES + 3 }, (_, i) => `z${i}.test`);
  const lines = zones.map((z) => LISTED.replace("lists=zen.test,bl.test", `lists=${z}`));
  const text = counted([...lines, lines[0]!, lines.at(-1)!]);
  const series = text.split("\n").filter((l) => l.startsWith("smtp_delay_list_hits_total{"));
  assert.equal(series.length, MAX_ZONES + 1, "64 zones and other");
  assert.equal(value(text, hits("z0.test")), 2);
  assert.equal(value(text, hits(`z${MAX_ZONES - 1}.test`)), 1);
  assert.equal(value(text, hits(`z${MAX_ZONES}.test`)), undefined);
  assert.equal(value(text, hits(OTHER_ZONE)), 4);
});

Deno.test("Counters escapes a hostile zone in its label: quote, backslash", () => {
  // No space can be in a field: a quote and a backslash that would end the label and add one.
  const zone = 'evil"}1\\n{x="';
  const text = counted([LISTED.replace("lists=zen.test,bl.test", `lists=${zone},zen.test`)]);
  assert.equal(value(text, hits('evil\\"}1\\\\n{x=\\"')), 1, text);
  assert.equal(value(text, hits("zen.test")), 1);
  for (const line of text.split("\n").filter((l) => l.startsWith("smtp_delay_list_hits"))) {
    assert.match(line, /^smtp_delay_list_hits_total\{zone="(?:[^"\\]|\\.)*"\} \d+$/, line);
  }
});

Deno.test("Counters counts log.ts's lines with lists: LISTED, and the zones that hit", () => {
  const outcome: Outcome = {
    event: "listed",
    pid: 0,
    ip: "192.0.2.9",
    tier: "noptr",
    ptr: undefined,
    lookup: "none",
    delayMs: 26_000,
    waitedMs: 50,
    action: "421",
    memory: "",
    lists: { score: 3, hits: ["zen.test", "bl.test"] },
  };
  const text = counted([formatOutcome(outcome)]);
  assert.equal(value(text, conn("LISTED", "noptr")), 1, text);
  assert.equal(value(text, hits("zen.test")), 1);
  assert.equal(value(text, hits("bl.test")), 1);
});

Deno.test("Counters adds serve's gauges when given, and only then", () => {
  const counters = new Counters();
  assert.ok(!render(counters.families()).includes("smtp_delay_waiting"));
  const text = render(
    counters.families({ waiting: 12, waitingLimit: 1000, children: 3, childrenLimit: 40 }),
  );
  assert.equal(value(text, "smtp_delay_waiting"), 12);
  assert.equal(value(text, "smtp_delay_waiting_limit"), 1000);
  assert.equal(value(text, "smtp_delay_children"), 3);
  assert.equal(value(text, "smtp_delay_children_limit"), 40);
  assert.match(text, /^# TYPE smtp_delay_waiting gauge$/m);
});
