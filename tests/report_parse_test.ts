/**
 * src/report/parse.ts: every line shape of smtp-delay.8's LOG LINES, the
 * stamps (multilog's TAI64N, tai64nlocal's), other programs' lines, damaged
 * and hostile ones; and what log.ts writes reads back as it was written.
 */
import assert from "node:assert/strict";
import { formatEnd, formatOutcome } from "../src/log.ts";
import {
  decodeTai64n,
  encodeTai64n,
  isOurs,
  type LogRecord,
  parseLine,
} from "../src/report/parse.ts";

const STAMP = "@4000000069321a0c0bebc200"; // 2025-12-04 23:32:18.200 UTC (tai64nlocal, TZ=UTC)
const STAMP_MS = Date.UTC(2025, 11, 4, 23, 32, 18, 200);

Deno.test("decodeTai64n() reads labels as daemontools' tai64nlocal does", async (t) => {
  const rows: Array<[string, number | undefined]> = [
    [STAMP, STAMP_MS],
    // daemontools' own example; tai64nlocal (TZ=UTC) says 2001-07-09 23:09:44.848605500.
    ["@400000003b4a39c23294b13c", Date.UTC(2001, 6, 9, 23, 9, 44, 848)],
    ["@400000000000000a00000000", 0], // the Unix epoch: 2^62 + 10
    ["@4000000069321A0C0BEBC200", STAMP_MS], // upper case
    ["@4000000069321a0c0bebc20", undefined], // short
    ["@4000000069321a0c0bebc2000", undefined], // long
    ["4000000069321a0c0bebc200x", undefined], // no @
    ["@4000000069321a0g0bebc200", undefined], // not hex
    ["@4000000069321a0c3b9aca00", undefined], // 10^9 nanoseconds
  ];
  for (const [label, want] of rows) {
    await t.step(label, () => assert.equal(decodeTai64n(label), want));
  }
});

Deno.test("encodeTai64n() is decodeTai64n()'s inverse, to the millisecond", () => {
  for (const ms of [0, STAMP_MS, Date.UTC(2026, 11, 5, 0, 0, 0, 1), 1_999_999_999_999]) {
    const label = encodeTai64n(ms);
    assert.match(label, /^@[0-9a-f]{24}$/);
    assert.equal(decodeTai64n(label), ms, label);
  }
  assert.equal(encodeTai64n(STAMP_MS), STAMP);
});

/** A row: a line (as the man page shows it, on one line) and the record it must give. */
type Row = [string, LogRecord];

const base = { atMs: undefined };

const SHAPES: Row[] = [
  [
    "smtp-delay: info: PASS pid=4711 ip=192.0.2.2 tier=ptr ptr=mail.example.net lookup=found delay=0.250 waited=0.262 action=exec memory=passed",
    {
      kind: "outcome",
      event: "PASS",
      pid: 4711,
      ip: "192.0.2.2",
      tier: "ptr",
      ptr: "mail.example.net",
      lookup: "found",
      delaySeconds: 0.25,
      waitedSeconds: 0.262,
      action: "exec",
      would: undefined,
      memory: ["passed"],
      score: undefined,
      lists: undefined,
      bytes: undefined,
      data: undefined,
      ...base,
    },
  ],
  [
    "smtp-delay: info: EARLY pid=4712 ip=192.0.2.4 tier=noptr ptr=- lookup=none delay=26.000 waited=0.031 action=451 memory=- bytes=24 data=EHLO?spam.example.org??",
    {
      kind: "outcome",
      event: "EARLY",
      pid: 4712,
      ip: "192.0.2.4",
      tier: "noptr",
      ptr: undefined,
      lookup: "none",
      delaySeconds: 26,
      waitedSeconds: 0.031,
      action: "451",
      would: undefined,
      memory: [],
      score: undefined,
      lists: undefined,
      bytes: 24,
      data: "EHLO?spam.example.org??",
      ...base,
    },
  ],
  [
    "smtp-delay: info: CLOSED pid=4713 ip=192.0.2.3 tier=dynamic ptr=dsl-192-0-2-3.pool.example.net lookup=found delay=16.000 waited=5.004 action=exit memory=-",
    {
      kind: "outcome",
      event: "CLOSED",
      pid: 4713,
      ip: "192.0.2.3",
      tier: "dynamic",
      ptr: "dsl-192-0-2-3.pool.example.net",
      lookup: "found",
      delaySeconds: 16,
      waitedSeconds: 5.004,
      action: "exit",
      would: undefined,
      memory: [],
      score: undefined,
      lists: undefined,
      bytes: undefined,
      data: undefined,
      ...base,
    },
  ],
  [
    "smtp-delay: info: REFUSED pid=4714 ip=192.0.2.9 tier=noptr ptr=- lookup=none delay=26.000 waited=0.048 action=421 memory=-",
    {
      kind: "outcome",
      event: "REFUSED",
      pid: 4714,
      ip: "192.0.2.9",
      tier: "noptr",
      ptr: undefined,
      lookup: "none",
      delaySeconds: 26,
      waitedSeconds: 0.048,
      action: "421",
      would: undefined,
      memory: [],
      score: undefined,
      lists: undefined,
      bytes: undefined,
      data: undefined,
      ...base,
    },
  ],
  [
    // Refused by the box at once: no tier, no delay; serve's pid 0; IPv6 in full; memory rules.
    "smtp-delay: info: REFUSED pid=0 ip=2001:0db8:0000:0000:0000:0000:0000:0025 tier=- ptr=- lookup=unneeded delay=- waited=0.001 action=421 memory=penalty,box",
    {
      kind: "outcome",
      event: "REFUSED",
      pid: 0,
      ip: "2001:0db8:0000:0000:0000:0000:0000:0025",
      tier: undefined,
      ptr: undefined,
      lookup: "unneeded",
      delaySeconds: undefined,
      waitedSeconds: 0.001,
      action: "421",
      would: undefined,
      memory: ["penalty", "box"],
      score: undefined,
      lists: undefined,
      bytes: undefined,
      data: undefined,
      ...base,
    },
  ],
  [
    // On a pipe without -S: bytes not counted, data not seen.
    "smtp-delay: info: EARLY pid=7 ip=192.0.2.4 tier=- ptr=- lookup=pending delay=- waited=0.002 action=rblsmtpd memory=off bytes=-1 data=-",
    {
      kind: "outcome",
      event: "EARLY",
      pid: 7,
      ip: "192.0.2.4",
      tier: undefined,
      ptr: undefined,
      lookup: "pending",
      delaySeconds: undefined,
      waitedSeconds: 0.002,
      action: "rblsmtpd",
      would: undefined,
      memory: ["off"],
      score: undefined,
      lists: undefined,
      bytes: -1,
      data: undefined,
      ...base,
    },
  ],
  [
    // --action ignore: handed on after the delay, and what enforcing would have done.
    "smtp-delay: info: EARLY pid=4715 ip=192.0.2.4 tier=noptr ptr=- lookup=none delay=26.000 waited=26.004 action=ignore would=451 memory=penalty bytes=6 data=EHLO??",
    {
      kind: "outcome",
      event: "EARLY",
      pid: 4715,
      ip: "192.0.2.4",
      tier: "noptr",
      ptr: undefined,
      lookup: "none",
      delaySeconds: 26,
      waitedSeconds: 26.004,
      action: "ignore",
      would: "451",
      memory: ["penalty"],
      score: undefined,
      lists: undefined,
      bytes: 6,
      data: "EHLO??",
      ...base,
    },
  ],
  [
    // The lists' score reached the threshold, with -S: refused with --dnsbl-reply's code.
    "smtp-delay: info: LISTED pid=4716 ip=192.0.2.9 tier=noptr ptr=- lookup=none delay=26.000 waited=0.050 action=421 memory=- score=3 lists=zen.test,bl.test",
    {
      kind: "outcome",
      event: "LISTED",
      pid: 4716,
      ip: "192.0.2.9",
      tier: "noptr",
      ptr: undefined,
      lookup: "none",
      delaySeconds: 26,
      waitedSeconds: 0.05,
      action: "421",
      would: undefined,
      memory: [],
      score: 3,
      lists: ["zen.test", "bl.test"],
      bytes: undefined,
      data: undefined,
      ...base,
    },
  ],
  [
    // Without -S: rblsmtpd refuses it; --action ignore: handed on, would=.
    "smtp-delay: info: LISTED pid=4717 ip=192.0.2.9 tier=- ptr=- lookup=pending delay=- waited=26.010 action=ignore would=rblsmtpd memory=penalty score=1 lists=zen.test",
    {
      kind: "outcome",
      event: "LISTED",
      pid: 4717,
      ip: "192.0.2.9",
      tier: undefined,
      ptr: undefined,
      lookup: "pending",
      delaySeconds: undefined,
      waitedSeconds: 26.01,
      action: "ignore",
      would: "rblsmtpd",
      memory: ["penalty"],
      score: 1,
      lists: ["zen.test"],
      bytes: undefined,
      data: undefined,
      ...base,
    },
  ],
  [
    // Allowlisted by the lists: a PASS without delay, a score below zero.
    "smtp-delay: info: PASS pid=4718 ip=192.0.2.2 tier=ptr ptr=mail.example.net lookup=found delay=0.000 waited=0.012 action=exec memory=- score=-5 lists=list.dnswl.org",
    {
      kind: "outcome",
      event: "PASS",
      pid: 4718,
      ip: "192.0.2.2",
      tier: "ptr",
      ptr: "mail.example.net",
      lookup: "found",
      delaySeconds: 0,
      waitedSeconds: 0.012,
      action: "exec",
      would: undefined,
      memory: [],
      score: -5,
      lists: ["list.dnswl.org"],
      bytes: undefined,
      data: undefined,
      ...base,
    },
  ],
  [
    // Lists configured but not asked (score=-), none hit (lists=-): before EARLY's bytes and data.
    "smtp-delay: info: EARLY pid=4719 ip=192.0.2.4 tier=noptr ptr=- lookup=none delay=26.000 waited=0.031 action=451 memory=- score=- lists=- bytes=24 data=EHLO?spam.example.org??",
    {
      kind: "outcome",
      event: "EARLY",
      pid: 4719,
      ip: "192.0.2.4",
      tier: "noptr",
      ptr: undefined,
      lookup: "none",
      delaySeconds: 26,
      waitedSeconds: 0.031,
      action: "451",
      would: undefined,
      memory: [],
      score: undefined,
      lists: [],
      bytes: 24,
      data: "EHLO?spam.example.org??",
      ...base,
    },
  ],
  [
    "smtp-delay: info: END pid=4711 ip=192.0.2.2 why=eof in=5120 out=412 seconds=12.250",
    {
      kind: "end",
      pid: 4711,
      ip: "192.0.2.2",
      why: "eof",
      inBytes: 5120,
      outBytes: 412,
      seconds: 12.25,
      ...base,
    },
  ],
  [
    "smtp-delay: info: END pid=4711 ip=192.0.2.2 why=session in=- out=- seconds=900.001",
    {
      kind: "end",
      pid: 4711,
      ip: "192.0.2.2",
      why: "session",
      inBytes: undefined,
      outBytes: undefined,
      seconds: 900.001,
      ...base,
    },
  ],
  [
    "smtp-delay: info: BUSY ip=192.0.2.7 why=waiting waiting=1000 action=421",
    { kind: "busy", ip: "192.0.2.7", why: "waiting", waiting: 1000, action: "421", ...base },
  ],
  [
    "smtp-delay: info: STRESS on waiting=900 limit=1000",
    { kind: "stress", on: true, waiting: 900, limit: 1000, ...base },
  ],
  [
    "smtp-delay: info: STRESS off waiting=674 limit=1000",
    { kind: "stress", on: false, waiting: 674, limit: 1000, ...base },
  ],
  [
    "smtp-delay: info: STOP waiting=12 children=80",
    { kind: "stop", waiting: 12, children: 80, ...base },
  ],
  [
    "smtp-delay: info: RELOAD waiting=12 children=80",
    { kind: "reload", waiting: 12, children: 80, ...base },
  ],
  [
    "smtp-delay: warning: unable to look up the PTR of 192.0.2.4: timed out",
    { kind: "warning", message: "unable to look up the PTR of 192.0.2.4: timed out", ...base },
  ],
  [
    'smtp-delay: fatal: -d wants seconds from 0 to 300, got "abc"',
    { kind: "fatal", message: '-d wants seconds from 0 to 300, got "abc"', ...base },
  ],
  [
    // A word a later version may add: kept, with its fields and words.
    "smtp-delay: info: TEASE on ip=192.0.2.2 lines=1",
    {
      kind: "event",
      event: "TEASE",
      fields: { ip: "192.0.2.2", lines: "1" },
      words: ["on"],
      ...base,
    },
  ],
  [
    "smtp-delay: info: reading: 25% of 912 MB",
    { kind: "info", message: "reading: 25% of 912 MB", ...base },
  ],
];

Deno.test("parseLine() reads every line shape of LOG LINES", async (t) => {
  for (const [line, want] of SHAPES) {
    await t.step(line.slice(0, 60), () => {
      assert.deepEqual(parseLine(line), want);
      assert.ok(isOurs(line));
    });
  }
});

Deno.test("parseLine() reads the stamp of multilog and of tai64nlocal, a newline and a CR", async (t) => {
  const [line, want] = SHAPES[0]!;
  const local = new Date(2026, 11, 5, 10, 11, 12, 123).getTime(); // local time, as tai64nlocal
  const rows: Array<[string, string, number | undefined]> = [
    ["multilog's @TAI64N", `${STAMP} ${line}`, STAMP_MS],
    ["tai64nlocal's", `2026-12-05 10:11:12.123456789 ${line}`, local],
    ["a newline", `${STAMP} ${line}\n`, STAMP_MS],
    ["CR LF", `${line}\r\n`, undefined],
  ];
  for (const [name, text, atMs] of rows) {
    await t.step(name, () => assert.deepEqual(parseLine(text), { ...want, atMs }));
  }
});

Deno.test("parseLine() takes what log.ts writes back as it was written", () => {
  const line = formatOutcome({
    event: "early",
    pid: 99,
    ip: "192.0.2.66",
    tier: "dynamic",
    ptr: "host<script>.example.com",
    lookup: "found",
    delayMs: 16_000,
    waitedMs: 1234,
    action: "451",
    memory: "penalty,rate",
    bytes: 6,
    data: new TextEncoder().encode("EHLO \x1b[31m\r\n<b>"),
  });
  assert.deepEqual(parseLine(line), {
    kind: "outcome",
    event: "EARLY",
    pid: 99,
    ip: "192.0.2.66",
    tier: "dynamic",
    ptr: "host<script>.example.com",
    lookup: "found",
    delaySeconds: 16,
    waitedSeconds: 1.234,
    action: "451",
    would: undefined,
    memory: ["penalty", "rate"],
    score: undefined,
    lists: undefined,
    bytes: 6,
    data: "EHLO??[31m??<b>",
    atMs: undefined,
  });
  const end = formatEnd({
    pid: 5,
    ip: "192.0.2.2",
    why: "idle",
    fromClient: 10,
    fromChild: undefined,
    ms: 30_000,
  });
  assert.deepEqual(parseLine(`smtp-delay: info: ${end}`), {
    kind: "end",
    pid: 5,
    ip: "192.0.2.2",
    why: "idle",
    inBytes: 10,
    outBytes: undefined,
    seconds: 30,
    atMs: undefined,
  });
});

Deno.test("parseLine() ignores other programs' lines: undefined, and not ours", async (t) => {
  const rows = [
    "tcpserver: status: 3/100",
    `${STAMP} tcpserver: pid 4711 from 192.0.2.2`,
    "tcpserver: end 4711 status 0",
    "rblsmtpd: 192.0.2.4 pid 4712: 451 early talker",
    "",
    "@4000000069321a0c0bebc200",
    "  smtp-delay: info: PASS pid=1 ip=192.0.2.2 tier=ptr ptr=- lookup=found delay=0 waited=0 action=exec memory=-",
    "smtp-delayed: info: PASS",
    "qpsmtpd[123]: smtp-delay: info: PASS pid=1",
  ];
  for (const line of rows) {
    await t.step(JSON.stringify(line).slice(0, 60), () => {
      assert.equal(parseLine(line), undefined);
      assert.equal(isOurs(line), false);
    });
  }
});

Deno.test("parseLine() refuses damaged lines of ours: undefined, but ours", async (t) => {
  const pass =
    "pid=1 ip=192.0.2.2 tier=ptr ptr=mx.example.net lookup=found delay=0.250 waited=0.262 action=exec memory=-";
  const rows: Array<[string, string]> = [
    ["cut short", "smtp-delay: info: PASS pid=1 ip=192.0.2.2 tier=ptr ptr=mx.exa"],
    ["no level", "smtp-delay: PASS " + pass],
    ["an unknown level", "smtp-delay: debug: PASS " + pass],
    ["an empty info", "smtp-delay: info: "],
    ["an empty warning", "smtp-delay: warning: "],
    ["a bad stamp", "@4000000069321a0c0bebc2zz smtp-delay: info: PASS " + pass],
    ["a bad local stamp", "2026-13-05 10:11:12.123456789 smtp-delay: info: PASS " + pass],
    ["no pid", "smtp-delay: info: PASS " + pass.replace("pid=1 ", "")],
    ["a pid that is no number", "smtp-delay: info: PASS " + pass.replace("pid=1", "pid=x1")],
    ["a negative waited", "smtp-delay: info: PASS " + pass.replace("waited=0.262", "waited=-1")],
    ["an exponent", "smtp-delay: info: PASS " + pass.replace("waited=0.262", "waited=1e3")],
    ["hex", "smtp-delay: info: PASS " + pass.replace("pid=1", "pid=0x10")],
    ["a tier of no list", "smtp-delay: info: PASS " + pass.replace("tier=ptr", "tier=static")],
    ["an ip that is a name", "smtp-delay: info: PASS " + pass.replace("192.0.2.2", "mx.evil")],
    ["a tab", "smtp-delay: info: PASS " + pass.replace("mx.example.net", "mx\t.example.net")],
    ["ESC", "smtp-delay: info: PASS " + pass.replace("mx.example.net", "\x1b[2Jmx")],
    ["NUL", "smtp-delay: info: PASS " + pass.replace("memory=-", "memory=\0")],
    ["a byte over 126", "smtp-delay: info: PASS " + pass.replace("mx.", "mx\u00e9.")],
    ["two spaces", "smtp-delay: info: PASS " + pass.replace(" ip=", "  ip=")],
    ["an empty key", "smtp-delay: info: PASS " + pass + " =x"],
    ["an empty value", "smtp-delay: info: PASS " + pass.replace("memory=-", "memory=")],
    ["EARLY with bytes that are no count", "smtp-delay: info: EARLY " + pass + " bytes=a data=-"],
    ["a score that is no number", "smtp-delay: info: LISTED " + pass + " score=x lists=zen.test"],
    ["a score with a plus", "smtp-delay: info: LISTED " + pass + " score=+3 lists=zen.test"],
    ["a score of two minuses", "smtp-delay: info: PASS " + pass + " score=--3 lists=zen.test"],
    ["a fractional score", "smtp-delay: info: LISTED " + pass + " score=1.5 lists=zen.test"],
    ["an empty lists", "smtp-delay: info: LISTED " + pass + " score=3 lists="],
    ["END without seconds", "smtp-delay: info: END pid=1 ip=192.0.2.2 why=eof in=1 out=2"],
    ["END with bad in", "smtp-delay: info: END pid=1 ip=192.0.2.2 why=eof in=x out=2 seconds=1"],
    ["BUSY without ip", "smtp-delay: info: BUSY why=fds waiting=3 action=421"],
    ["STRESS maybe", "smtp-delay: info: STRESS maybe waiting=1 limit=2"],
    ["STOP without children", "smtp-delay: info: STOP waiting=1"],
    ["a control byte in a warning", "smtp-delay: warning: unable\x07 to"],
  ];
  for (const [name, line] of rows) {
    await t.step(name, () => {
      assert.equal(parseLine(line), undefined, line);
      assert.equal(isOurs(line), true, line);
    });
  }
});

Deno.test("parseLine() keeps hostile but printable text as it is, for the outputs to escape", () => {
  const line = "smtp-delay: info: EARLY pid=3 ip=192.0.2.4 tier=ptr " +
    "ptr=<img/src=x/onerror=alert(1)>&amp;\"' lookup=host delay=0.250 waited=0.010 " +
    "action=451 memory=- bytes=9 data=<script>x";
  const record = parseLine(line);
  assert.equal(record?.kind, "outcome");
  if (record?.kind !== "outcome") return;
  assert.equal(record.ptr, "<img/src=x/onerror=alert(1)>&amp;\"'");
  assert.equal(record.data, "<script>x");
});

Deno.test("parseLine() ignores fields a later version adds, wherever they stand", () => {
  const line = "smtp-delay: info: PASS pid=1 ip=192.0.2.2 tier=ptr ptr=- teaser=yes " +
    "lookup=found delay=0.250 waited=0.262 action=exec memory=- extra=1";
  const record = parseLine(line);
  assert.equal(record?.kind, "outcome");
  assert.equal(record?.kind === "outcome" && record.waitedSeconds, 0.262);
  const listed = parseLine(
    "smtp-delay: info: LISTED pid=1 ip=192.0.2.9 tier=noptr ptr=- lookup=none delay=26.000 " +
      "waited=0.050 action=421 memory=- score=3 weight=9 lists=zen.test odd=bl.test=127.1.0.1",
  );
  assert.equal(listed?.kind, "outcome");
  if (listed?.kind !== "outcome") return;
  assert.deepEqual([listed.score, listed.lists], [3, ["zen.test"]]);
});

Deno.test("parseLine() takes log.ts's lines with lists back: LISTED, score=, lists=", async (t) => {
  const outcome = {
    pid: 1,
    ip: "192.0.2.9",
    tier: "noptr",
    ptr: undefined,
    lookup: "none",
    delayMs: 26_000,
    waitedMs: 50,
    memory: "",
  } as const;
  const rows: Array<[string, Parameters<typeof formatOutcome>[0], Partial<LogRecord>]> = [
    [
      "LISTED with -S",
      {
        ...outcome,
        event: "listed",
        action: "421",
        lists: { score: 3, hits: ["zen.test", "bl.test"] },
      },
      { event: "LISTED", action: "421", score: 3, lists: ["zen.test", "bl.test"] },
    ],
    [
      "LISTED for rblsmtpd",
      { ...outcome, event: "listed", action: "rblsmtpd", lists: { score: 2, hits: ["zen.test"] } },
      { event: "LISTED", action: "rblsmtpd", score: 2, lists: ["zen.test"] },
    ],
    [
      "LISTED under --action ignore",
      {
        ...outcome,
        event: "listed",
        action: "ignore",
        would: "421",
        lists: { score: 1, hits: ["zen.test"] },
      },
      { event: "LISTED", action: "ignore", would: "421", score: 1, lists: ["zen.test"] },
    ],
    [
      "an allowlisted PASS",
      {
        ...outcome,
        event: "pass",
        action: "exec",
        delayMs: 0,
        lists: { score: -5, hits: ["list.dnswl.org"] },
      },
      { event: "PASS", delaySeconds: 0, score: -5, lists: ["list.dnswl.org"] },
    ],
    [
      "EARLY, the lists not asked",
      {
        ...outcome,
        event: "early",
        action: "451",
        lists: { score: undefined, hits: [] },
        bytes: 4,
        data: new TextEncoder().encode("QUIT"),
      },
      { event: "EARLY", score: undefined, lists: [], bytes: 4, data: "QUIT" },
    ],
    [
      "no lists configured",
      { ...outcome, event: "refused", action: "421" },
      { event: "REFUSED", score: undefined, lists: undefined },
    ],
  ];
  for (const [name, written, want] of rows) {
    await t.step(name, () => {
      const line = formatOutcome(written);
      const record = parseLine(line);
      assert.equal(record?.kind, "outcome", line);
      for (const [key, value] of Object.entries(want)) {
        assert.deepEqual(record?.[key as keyof typeof record], value, `${key} of ${line}`);
      }
    });
  }
});

Deno.test("parseLine() reads log.ts's --action ignore line: action=ignore, would=", () => {
  const line = formatOutcome({
    event: "refused",
    pid: 1,
    ip: "192.0.2.9",
    tier: "noptr",
    ptr: undefined,
    lookup: "none",
    delayMs: 26_000,
    waitedMs: 26_010,
    action: "ignore",
    would: "421",
    memory: "box",
  });
  const record = parseLine(line);
  assert.equal(record?.kind, "outcome", line);
  if (record?.kind !== "outcome") return;
  assert.deepEqual([record.event, record.action, record.would], ["REFUSED", "ignore", "421"]);
});
