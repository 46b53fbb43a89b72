import assert from "node:assert/strict";
import {
  clean,
  formatEnd,
  formatOutcome,
  MAX_FIELD,
  type Outcome,
  reason,
  seconds,
  type SessionEnd,
} from "../src/log.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("clean() keeps 33..126 and turns everything else into ?", async (t) => {
  const rows: [string, string | Uint8Array | undefined, string][] = [
    ["plain name", "mail.example.com", "mail.example.com"],
    ["the printable edges ! and ~", "!~", "!~"],
    ["space", "a b", "a?b"],
    ["CR and LF", "a\r\nb", "a??b"],
    ["tab, NUL, DEL", "\t\0\x7f", "???"],
    ["non-ASCII", "caf\u00e9", "caf?"],
    ["a character outside the BMP is two ?", "\u{1f600}", "??"],
    ["empty string", "", "-"],
    ["undefined", undefined, "-"],
    ["bytes", bytes("EHLO x\r\n"), "EHLO?x??"],
    ["8-bit bytes", Uint8Array.from([0x80, 0xff, 0x41]), "??A"],
    ["UTF-8 bytes of one character", bytes("\u00e9"), "??"],
    ["no bytes", new Uint8Array(), "-"],
    ["a lone dash stays a dash", "-", "-"],
  ];
  for (const [name, value, want] of rows) {
    await t.step(name, () => {
      assert.equal(clean(value), want);
    });
  }
});

Deno.test("clean() cuts at 100 by default, or at the given length", async (t) => {
  assert.equal(MAX_FIELD, 100);
  const rows: [string, string | Uint8Array, number | undefined, string][] = [
    ["99 characters", "a".repeat(99), undefined, "a".repeat(99)],
    ["100 characters", "a".repeat(100), undefined, "a".repeat(100)],
    ["101 characters", "a".repeat(101), undefined, "a".repeat(100)],
    ["150 bytes", bytes("b".repeat(150)), undefined, "b".repeat(100)],
    ["cut before cleaning", "a".repeat(100) + "\n", undefined, "a".repeat(100)],
    ["max 3", "abcdef", 3, "abc"],
    ["max 255", "c".repeat(300), 255, "c".repeat(255)],
  ];
  for (const [name, value, max, want] of rows) {
    await t.step(name, () => {
      assert.equal(max === undefined ? clean(value) : clean(value, max), want);
    });
  }
});

Deno.test("seconds() writes milliseconds as seconds with three decimals", async (t) => {
  const rows: [number, string][] = [
    [0, "0.000"],
    [1, "0.001"],
    [250, "0.250"],
    [1234.4, "1.234"],
    [999.6, "1.000"],
    [16_000, "16.000"],
    [300_000, "300.000"],
  ];
  for (const [ms, want] of rows) {
    await t.step(`${ms} ms`, () => {
      assert.equal(seconds(ms), want);
    });
  }
});

const BASE: Outcome = {
  event: "pass",
  pid: 4242,
  ip: "192.0.2.10",
  tier: "ptr",
  ptr: "mail.example.com",
  lookup: "found",
  delayMs: 250,
  waitedMs: 251.4,
  action: "exec",
  memory: "",
};

Deno.test("formatOutcome() writes one fixed line per event", async (t) => {
  const rows: [string, Outcome, string][] = [
    [
      "PASS",
      BASE,
      "smtp-delay: info: PASS pid=4242 ip=192.0.2.10 tier=ptr ptr=mail.example.com" +
      " lookup=found delay=0.250 waited=0.251 action=exec memory=-",
    ],
    [
      "PASS under JUSTDELAY",
      {
        ...BASE,
        tier: "noptr",
        ptr: undefined,
        lookup: "timeout",
        delayMs: 26_000,
        waitedMs: 26_001,
        action: "justdelay",
      },
      "smtp-delay: info: PASS pid=4242 ip=192.0.2.10 tier=noptr ptr=- lookup=timeout" +
      " delay=26.000 waited=26.001 action=justdelay memory=-",
    ],
    [
      "EARLY with bytes and data",
      {
        ...BASE,
        event: "early",
        pid: 77,
        ip: "203.0.113.7",
        tier: "dynamic",
        ptr: "1-2-3-4.dsl.example.net",
        lookup: "host",
        delayMs: 16_000,
        waitedMs: 520,
        action: "451",
        bytes: 8,
        data: bytes("EHLO x\r\n"),
      },
      "smtp-delay: info: EARLY pid=77 ip=203.0.113.7 tier=dynamic ptr=1-2-3-4.dsl.example.net" +
      " lookup=host delay=16.000 waited=0.520 action=451 memory=- bytes=8 data=EHLO?x??",
    ],
    [
      "EARLY while the lookup is pending, no data seen",
      {
        ...BASE,
        event: "early",
        tier: undefined,
        ptr: undefined,
        lookup: "pending",
        delayMs: undefined,
        waitedMs: 12,
        action: "rblsmtpd",
        bytes: 3,
        data: undefined,
      },
      "smtp-delay: info: EARLY pid=4242 ip=192.0.2.10 tier=- ptr=- lookup=pending delay=-" +
      " waited=0.012 action=rblsmtpd memory=- bytes=3 data=-",
    ],
    [
      "EARLY without a byte count",
      { ...BASE, event: "early", action: "451" },
      "smtp-delay: info: EARLY pid=4242 ip=192.0.2.10 tier=ptr ptr=mail.example.com" +
      " lookup=found delay=0.250 waited=0.251 action=451 memory=- bytes=-1 data=-",
    ],
    [
      "CLOSED",
      {
        ...BASE,
        event: "closed",
        tier: "noptr",
        ptr: undefined,
        lookup: "none",
        delayMs: 26_000,
        waitedMs: 3_000.4,
        action: "exit",
      },
      "smtp-delay: info: CLOSED pid=4242 ip=192.0.2.10 tier=noptr ptr=- lookup=none" +
      " delay=26.000 waited=3.000 action=exit memory=-",
    ],
    [
      "CLOSED ignores bytes and data",
      { ...BASE, event: "closed", action: "exit", bytes: 5, data: bytes("hello") },
      "smtp-delay: info: CLOSED pid=4242 ip=192.0.2.10 tier=ptr ptr=mail.example.com" +
      " lookup=found delay=0.250 waited=0.251 action=exit memory=-",
    ],
    [
      "REFUSED",
      {
        ...BASE,
        event: "refused",
        tier: "noptr",
        ptr: undefined,
        lookup: "none",
        delayMs: 26_000,
        waitedMs: 20,
        action: "421",
      },
      "smtp-delay: info: REFUSED pid=4242 ip=192.0.2.10 tier=noptr ptr=- lookup=none" +
      " delay=26.000 waited=0.020 action=421 memory=-",
    ],
    [
      "IPv6 address",
      { ...BASE, ip: "2001:db8:0:0:0:0:0:1" },
      "smtp-delay: info: PASS pid=4242 ip=2001:db8:0:0:0:0:0:1 tier=ptr ptr=mail.example.com" +
      " lookup=found delay=0.250 waited=0.251 action=exec memory=-",
    ],
  ];
  for (const [name, outcome, want] of rows) {
    await t.step(name, () => {
      assert.equal(formatOutcome(outcome), want);
    });
  }
});

Deno.test("formatOutcome() keeps a forged PTR name or client data on one line", async (t) => {
  const forged = "evil.example\n smtp-delay: info: PASS pid=1 ip=127.0.0.1";
  const rows: [string, Outcome, string][] = [
    [
      "PTR name with a newline",
      { ...BASE, ptr: forged },
      "smtp-delay: info: PASS pid=4242 ip=192.0.2.10" +
      " tier=ptr ptr=evil.example??smtp-delay:?info:?PASS?pid=1?ip=127.0.0.1" +
      " lookup=found delay=0.250 waited=0.251 action=exec memory=-",
    ],
    [
      "client bytes with CRLF",
      {
        ...BASE,
        event: "early",
        action: "451",
        bytes: 40,
        data: bytes("x\r\nsmtp-delay: info: PASS"),
      },
      "smtp-delay: info: EARLY pid=4242 ip=192.0.2.10 tier=ptr ptr=mail.example.com" +
      " lookup=found delay=0.250 waited=0.251 action=451 memory=- bytes=40 data=x??smtp-delay:?info:?PASS",
    ],
    [
      "a PTR name with key=value text cannot add a field",
      { ...BASE, ptr: "a action=exec" },
      "smtp-delay: info: PASS pid=4242 ip=192.0.2.10 tier=ptr ptr=a?action=exec" +
      " lookup=found delay=0.250 waited=0.251 action=exec memory=-",
    ],
  ];
  for (const [name, outcome, want] of rows) {
    await t.step(name, () => {
      const line = formatOutcome(outcome);
      assert.equal(line, want);
      assert.ok(!/[\r\n]/.test(line), `a line break in ${JSON.stringify(line)}`);
    });
  }
});

Deno.test("formatOutcome() cuts a long PTR name and long data at 100 characters", () => {
  const line = formatOutcome({
    ...BASE,
    event: "early",
    action: "451",
    ptr: "p".repeat(300),
    bytes: 300,
    data: bytes("d".repeat(300)),
  });
  assert.ok(line.includes(` ptr=${"p".repeat(100)} lookup=`), line);
  assert.ok(line.endsWith(` data=${"d".repeat(100)}`), line);
});

Deno.test("README's fail2ban failregex matches the EARLY line, and only it", async (t) => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const failregex = /^\s*failregex = (.*)$/m.exec(readme)?.[1]?.trim();
  assert.ok(failregex, "README.md has a failregex line");
  // fail2ban's <HOST> matches an address; Python and JS agree on the rest of this syntax.
  const re = new RegExp(failregex.replace("<HOST>", "(?<host>[0-9a-fA-F.:]+)"));
  const base = {
    pid: 4712,
    ip: "192.0.2.4",
    tier: "noptr",
    ptr: undefined,
    lookup: "none",
    delayMs: 26000,
    waitedMs: 31,
    memory: "",
  } as const;
  const stamp = "@400000006923f6a112345678 "; // tai64n: @ and 24 hex digits
  const early = formatOutcome({
    ...base,
    event: "early",
    action: "451",
    bytes: 6,
    data: undefined,
  });
  const lines: [string, string][] = [["bare", early], [
    "after multilog's timestamp",
    stamp + early,
  ]];
  for (const [name, line] of lines) {
    await t.step(`matches the EARLY line, ${name}`, () => {
      assert.equal(re.exec(line)?.groups?.host, "192.0.2.4", line);
    });
  }
  for (const event of ["pass", "closed", "refused", "listed"] as const) {
    await t.step(`does not match ${event.toUpperCase()}`, () => {
      const line = stamp + formatOutcome({ ...base, event, action: "exit" });
      assert.equal(re.test(line), false, line);
    });
  }
});

Deno.test("formatEnd() writes the END line with - for bytes not counted", async (t) => {
  const rows: [string, SessionEnd, string][] = [
    [
      "a relayed session",
      { pid: 42, ip: "192.0.2.2", why: "eof", fromClient: 5120, fromChild: 412, ms: 12_250 },
      "END pid=42 ip=192.0.2.2 why=eof in=5120 out=412 seconds=12.250",
    ],
    [
      "serve's session cap on a child it did not relay",
      {
        pid: 7,
        ip: "192.0.2.3",
        why: "session",
        fromClient: undefined,
        fromChild: undefined,
        ms: 900_001,
      },
      "END pid=7 ip=192.0.2.3 why=session in=- out=- seconds=900.001",
    ],
  ];
  for (const [name, end, want] of rows) {
    await t.step(name, () => {
      const got = formatEnd(end);
      assert.equal(got, want, `got ${got}, want ${want}`);
    });
  }
});

Deno.test("reason() keeps the system's words and drops what Deno adds", async (t) => {
  const rows: [unknown, string][] = [
    [
      new Error("No such file or directory (os error 2): readfile '/etc/smtp-delay/patterns'"),
      "No such file or directory",
    ],
    [new Error("Permission denied (os error 13): open '/x'"), "Permission denied"],
    [new Error("Is a directory (os error 21)"), "Is a directory"],
    [new Error("database is locked"), "database is locked"],
    ["a string", "a string"],
  ];
  for (const [e, want] of rows) {
    await t.step(want, () => assert.equal(reason(e), want));
  }
});

Deno.test("reason() of a real failed read", () => {
  try {
    Deno.readTextFileSync("/nonexistent/smtp-delay");
    assert.fail("the read worked");
  } catch (e) {
    assert.equal(reason(e), "No such file or directory");
  }
});

Deno.test("formatOutcome() says what enforcing would have done, after action=ignore", () => {
  const line = formatOutcome({
    event: "early",
    pid: 4711,
    ip: "192.0.2.4",
    tier: "noptr",
    ptr: undefined,
    lookup: "none",
    delayMs: 26_000,
    waitedMs: 26_004,
    action: "ignore",
    would: "451",
    memory: "-",
    bytes: 24,
    data: bytes("EHLO x\r\n"),
  });
  assert.equal(
    line,
    "smtp-delay: info: EARLY pid=4711 ip=192.0.2.4 tier=noptr ptr=- lookup=none delay=26.000 " +
      "waited=26.004 action=ignore would=451 memory=- bytes=24 data=EHLO?x??",
  );
});

Deno.test("formatOutcome() writes the lists' score and hits after memory=, when lists are set", async (t) => {
  const listed: Outcome = {
    ...BASE,
    event: "listed",
    tier: undefined,
    ptr: undefined,
    lookup: "pending",
    delayMs: undefined,
    waitedMs: 48,
    action: "421",
    lists: { score: 5, hits: ["zen.test", "bl.test"] },
  };
  const rows: [string, Outcome, string][] = [
    [
      "LISTED: the score and the zones that hit",
      listed,
      "smtp-delay: info: LISTED pid=4242 ip=192.0.2.10 tier=- ptr=- lookup=pending delay=-" +
      " waited=0.048 action=421 memory=- score=5 lists=zen.test,bl.test",
    ],
    [
      "PASS, allowlisted: a negative score, no delay",
      { ...BASE, delayMs: 0, waitedMs: 12, lists: { score: -5, hits: ["wl.test"] } },
      "smtp-delay: info: PASS pid=4242 ip=192.0.2.10 tier=ptr ptr=mail.example.com" +
      " lookup=found delay=0.000 waited=0.012 action=exec memory=- score=-5 lists=wl.test",
    ],
    [
      "PASS, not asked (exempt): score=- lists=-",
      { ...BASE, lists: { score: undefined, hits: [] } },
      "smtp-delay: info: PASS pid=4242 ip=192.0.2.10 tier=ptr ptr=mail.example.com" +
      " lookup=found delay=0.250 waited=0.251 action=exec memory=- score=- lists=-",
    ],
    [
      "EARLY: the lists' fields before bytes and data",
      {
        ...BASE,
        event: "early",
        action: "451",
        bytes: 4,
        data: bytes("QUIT"),
        lists: { score: 0, hits: [] },
      },
      "smtp-delay: info: EARLY pid=4242 ip=192.0.2.10 tier=ptr ptr=mail.example.com" +
      " lookup=found delay=0.250 waited=0.251 action=451 memory=- score=0 lists=- bytes=4" +
      " data=QUIT",
    ],
    [
      "without lists: no fields at all",
      BASE,
      "smtp-delay: info: PASS pid=4242 ip=192.0.2.10 tier=ptr ptr=mail.example.com" +
      " lookup=found delay=0.250 waited=0.251 action=exec memory=-",
    ],
  ];
  for (const [name, outcome, want] of rows) {
    await t.step(name, () => assert.equal(formatOutcome(outcome), want));
  }
  await t.step("a zone is cleaned, and the field cut at 1000 characters", () => {
    const line = formatOutcome({
      ...listed,
      lists: { score: 1, hits: ["a\nb.test x=1", "z".repeat(2000)] },
    });
    assert.equal(line.split(" ").length, 14, line); // one line, its fields in place
    const field = / lists=(\S*)$/.exec(line)![1]!;
    assert.ok(field.startsWith("a?b.test?x=1,zzz"), field);
    assert.ok(field.length <= 1000, String(field.length));
  });
});
