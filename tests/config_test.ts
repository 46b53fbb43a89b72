import assert from "node:assert/strict";
import {
  type Config,
  DEFAULTS,
  getopt,
  MAX_SECONDS,
  parseConfig,
  parseDecimal,
  parseNameServer,
  USAGE,
  UsageError,
} from "../src/config.ts";

type Env = Record<string, string | undefined>;

/** Runs `fn`, which must throw a UsageError whose message contains every one of `parts`. */
function assertUsageError(fn: () => unknown, ...parts: string[]): UsageError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  if (!(thrown instanceof UsageError)) {
    throw new assert.AssertionError({
      message: `got ${thrown === undefined ? "no error" : String(thrown)}, want a UsageError`,
    });
  }
  for (const part of parts) {
    assert.ok(
      thrown.message.includes(part),
      `message ${JSON.stringify(thrown.message)} does not contain ${JSON.stringify(part)}`,
    );
  }
  return thrown;
}

/** parseConfig that must return a run request. */
function run(args: string[], env: Env = {}): Config {
  const request = parseConfig(args, env);
  if (request.kind !== "run") assert.fail(`got ${JSON.stringify(request)}, want kind "run"`);
  return request.config;
}

Deno.test("getopt() splits options from the program as getopt(3) does", async (t) => {
  const rows: {
    name: string;
    args: string[];
    options: { letter: string; value: string }[];
    rest: string[];
  }[] = [
    { name: "no arguments", args: [], options: [], rest: [] },
    { name: "only a program", args: ["qmail-smtpd"], options: [], rest: ["qmail-smtpd"] },
    {
      name: "clustered flags -Sv",
      args: ["-Sv", "prog"],
      options: [{ letter: "S", value: "" }, { letter: "v", value: "" }],
      rest: ["prog"],
    },
    {
      name: "attached value -d5",
      args: ["-d5", "prog"],
      options: [{ letter: "d", value: "5" }],
      rest: ["prog"],
    },
    {
      name: "separate value -d 5",
      args: ["-d", "5", "prog"],
      options: [{ letter: "d", value: "5" }],
      rest: ["prog"],
    },
    {
      name: "a flag then a value option in one word, -Sd5",
      args: ["-Sd5", "prog"],
      options: [{ letter: "S", value: "" }, { letter: "d", value: "5" }],
      rest: ["prog"],
    },
    {
      name: "a flag then a value option taking the next word, -Sd 5",
      args: ["-Sd", "5", "prog"],
      options: [{ letter: "S", value: "" }, { letter: "d", value: "5" }],
      rest: ["prog"],
    },
    {
      name: "the rest of the word is the value, flags included (-dS)",
      args: ["-dS", "prog"],
      options: [{ letter: "d", value: "S" }],
      rest: ["prog"],
    },
    {
      name: "a separate value may start with a dash",
      args: ["-d", "-S", "prog"],
      options: [{ letter: "d", value: "-S" }],
      rest: ["prog"],
    },
    {
      name: "every option letter",
      args: ["-d", "1", "-D2", "-P", "3", "-N4", "-t", "5", "-f", "/p", "-S", "-v", "prog"],
      options: [
        { letter: "d", value: "1" },
        { letter: "D", value: "2" },
        { letter: "P", value: "3" },
        { letter: "N", value: "4" },
        { letter: "t", value: "5" },
        { letter: "f", value: "/p" },
        { letter: "S", value: "" },
        { letter: "v", value: "" },
      ],
      rest: ["prog"],
    },
    {
      name: "-- ends the options and is dropped",
      args: ["-S", "--", "-d", "5"],
      options: [{ letter: "S", value: "" }],
      rest: ["-d", "5"],
    },
    {
      name: "only the first -- is dropped",
      args: ["--", "--", "prog"],
      options: [],
      rest: ["--", "prog"],
    },
    {
      name: "the first non-option starts the program; its options are its own",
      args: ["-S", "rblsmtpd", "-r", "x", "-S"],
      options: [{ letter: "S", value: "" }],
      rest: ["rblsmtpd", "-r", "x", "-S"],
    },
    {
      name: "a lone - is a program word",
      args: ["-S", "-", "-d", "5"],
      options: [{ letter: "S", value: "" }],
      rest: ["-", "-d", "5"],
    },
    {
      name: "an empty word is a program word",
      args: ["", "-S"],
      options: [],
      rest: ["", "-S"],
    },
    {
      name: "a repeated option is kept twice, in order",
      args: ["-d1", "-d2", "prog"],
      options: [{ letter: "d", value: "1" }, { letter: "d", value: "2" }],
      rest: ["prog"],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const got = getopt(row.args);
      assert.deepEqual(got, { options: row.options, rest: row.rest });
    });
  }
});

Deno.test("getopt() rejects a missing value and an unknown option", async (t) => {
  const rows: { name: string; args: string[]; parts: string[] }[] = [
    { name: "-d at the end", args: ["-d"], parts: ["-d", "needs a value"] },
    { name: "-S then -N at the end", args: ["-SN"], parts: ["-N", "needs a value"] },
    { name: "-f at the end", args: ["-S", "-f"], parts: ["-f", "needs a value"] },
    { name: "unknown -x", args: ["-x", "prog"], parts: ['"-x"'] },
    { name: "unknown letter in a cluster", args: ["-Sq", "prog"], parts: ['"-q"'] },
    { name: "unknown long option", args: ["--delay=5", "prog"], parts: ['"--delay"'] },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assertUsageError(() => getopt(row.args), ...row.parts);
    });
  }
});

Deno.test("parseDecimal() accepts plain decimal numbers from 0 to the maximum", async (t) => {
  const rows: [string, number, number][] = [
    ["2", MAX_SECONDS, 2],
    ["0", MAX_SECONDS, 0],
    ["0.5", MAX_SECONDS, 0.5],
    ["16.000000", MAX_SECONDS, 16],
    ["0.25", MAX_SECONDS, 0.25],
    ["300", MAX_SECONDS, 300],
    ["300.000", MAX_SECONDS, 300],
    ["007", MAX_SECONDS, 7],
    ["100", 100, 100],
    ["123456789.123456789", 1e9, 123456789.123456789],
  ];
  for (const [text, max, want] of rows) {
    await t.step(`${JSON.stringify(text)} up to ${max}`, () => {
      const got = parseDecimal(text, max, "-d", "seconds");
      assert.equal(got, want, `parseDecimal(${JSON.stringify(text)}): got ${got}, want ${want}`);
    });
  }
});

Deno.test("parseDecimal() rejects anything else, quoting the value and naming the option", async (t) => {
  const rows = [
    "-1",
    "abc",
    "1e3",
    "301",
    "300.0001",
    "1.",
    ".5",
    "",
    " 1",
    "1 ",
    "0x10",
    "+1",
    "1,5",
    "Infinity",
    "NaN",
    "1234567890",
    "1.1234567890",
    "\uff11",
  ];
  for (const text of rows) {
    await t.step(JSON.stringify(text), () => {
      assertUsageError(
        () => parseDecimal(text, MAX_SECONDS, "-d", "seconds"),
        "-d",
        `from 0 to 300`,
        `"${text}"`,
      );
    });
  }
});

Deno.test("parseConfig() turns delays into milliseconds and -N into a percentage", async (t) => {
  const rows: { name: string; args: string[]; check: (c: Config) => unknown; want: unknown }[] = [
    { name: "-d 2", args: ["-d", "2"], check: (c) => c.delayMs.ptr, want: 2000 },
    { name: "-d 0.5", args: ["-d0.5"], check: (c) => c.delayMs.ptr, want: 500 },
    {
      name: "-D 16.000000",
      args: ["-D", "16.000000"],
      check: (c) => c.delayMs.dynamic,
      want: 16000,
    },
    { name: "-P 300", args: ["-P", "300"], check: (c) => c.delayMs.noptr, want: 300_000 },
    { name: "-P 0", args: ["-P", "0"], check: (c) => c.delayMs.noptr, want: 0 },
    { name: "-d 0.001", args: ["-d", "0.001"], check: (c) => c.delayMs.ptr, want: 1 },
    { name: "-t 0.2", args: ["-t", "0.2"], check: (c) => c.lookupTimeoutMs, want: 200 },
    { name: "-N 0", args: ["-N", "0"], check: (c) => c.refuseNoptrPercent, want: 0 },
    { name: "-N 100", args: ["-N", "100"], check: (c) => c.refuseNoptrPercent, want: 100 },
    { name: "-N 12.5", args: ["-N", "12.5"], check: (c) => c.refuseNoptrPercent, want: 12.5 },
    { name: "-N 0.01", args: ["-N0.01"], check: (c) => c.refuseNoptrPercent, want: 0.01 },
    { name: "-N 100.000", args: ["-N", "100.000"], check: (c) => c.refuseNoptrPercent, want: 100 },
    { name: "-f FILE", args: ["-f", "/etc/p"], check: (c) => c.patternFile, want: "/etc/p" },
    {
      name: "-f with an empty value",
      args: ["-f", ""],
      check: (c) => c.patternFile,
      want: undefined,
    },
    { name: "-S", args: ["-S"], check: (c) => c.standalone, want: true },
    {
      name: "the last of a repeated option wins",
      args: ["-d1", "-d2"],
      check: (c) => c.delayMs.ptr,
      want: 2000,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const got = row.check(run([...row.args, "prog"]));
      assert.equal(got, row.want, `${row.args.join(" ")}: got ${got}, want ${row.want}`);
    });
  }
});

Deno.test("parseConfig() rejects bad delays, deadlines and percentages, quoting the value", async (t) => {
  const rows: { args: string[]; env?: Env; parts: string[] }[] = [
    { args: ["-d", "-1"], parts: ["-d", '"-1"'] },
    { args: ["-D", "abc"], parts: ["-D", '"abc"'] },
    { args: ["-P", "1e3"], parts: ["-P", '"1e3"'] },
    { args: ["-d", "301"], parts: ["-d", "300", '"301"'] },
    { args: ["-t", "301"], parts: ["-t", '"301"'] },
    { args: ["-d", ""], parts: ["-d", '""'] },
    { args: ["-N", "101"], parts: ["-N", "from 0 to 100", '"101"'] },
    { args: ["-N", "100.5"], parts: ["-N", '"100.5"'] },
    { args: ["-N", "-5"], parts: ["-N", '"-5"'] },
    { args: ["-N", "50%"], parts: ["-N", '"50%"'] },
    { args: ["-N", ""], parts: ["-N", '""'] },
  ];
  for (const row of rows) {
    await t.step(row.args.join(" ") || "(none)", () => {
      assertUsageError(() => parseConfig([...row.args, "prog"], row.env ?? {}), ...row.parts);
    });
  }
});

Deno.test("parseNameServer() accepts an IP with an optional port", async (t) => {
  const rows: [string, string, number][] = [
    ["127.0.0.1", "127.0.0.1", 53],
    ["127.0.0.1:5353", "127.0.0.1", 5353],
    ["192.0.2.1:1", "192.0.2.1", 1],
    ["192.0.2.1:65535", "192.0.2.1", 65535],
    ["::1", "::1", 53],
    ["2001:db8::53", "2001:db8::53", 53],
    ["[::1]:53", "::1", 53],
    ["[::1]:5353", "::1", 5353],
    ["[::1]", "::1", 53],
    ["[2001:db8::1]:1053", "2001:db8::1", 1053],
  ];
  for (const [text, ipAddr, port] of rows) {
    await t.step(text, () => {
      assert.deepEqual(parseNameServer(text), { ipAddr, port });
    });
  }
});

Deno.test("parseNameServer() rejects bad ports, names and malformed addresses", async (t) => {
  const rows = [
    "",
    "localhost",
    "dns.example.com",
    "localhost:53",
    "1.2.3.4:0",
    "1.2.3.4:65536",
    "1.2.3.4:99999",
    "1.2.3.4:",
    "1.2.3.4:abc",
    "1.2.3.4:-1",
    "1.2.3.4: 53",
    "1.2.3",
    "256.1.1.1",
    ":53",
    "[::1]:",
    "[::1]:0",
    "[::1]:x",
    "[::1",
    "[]:53",
    "fe80::1%eth0",
    "[fe80::1%eth0]:53",
  ];
  for (const text of rows) {
    await t.step(JSON.stringify(text), () => {
      assertUsageError(() => parseNameServer(text), "SMTPDELAY_DNS", `"${text}"`);
    });
  }
});

Deno.test("parseNameServer() names the variable it was given", () => {
  assertUsageError(() => parseNameServer("nope", "SOMEWHERE"), "SOMEWHERE", '"nope"');
});

Deno.test("parseConfig() uses the documented defaults", () => {
  const config = run(["prog"]);
  assert.deepEqual(config, {
    delayMs: { ptr: 250, dynamic: 16_000, noptr: 26_000 },
    refuseNoptrPercent: 0,
    standalone: false,
    justDelay: false,
    nameServer: undefined,
    lookupTimeoutMs: 5_000,
    patternFile: undefined,
    memory: {
      passTtlMs: 86_400_000,
      penaltyTtlMs: 86_400_000,
      strikes: 3,
      boxMs: 600_000,
      boxMaxMs: 86_400_000,
      rate: 30,
      rateStepMs: 1_000,
      rateCapMs: 60_000,
      maxConns: 0,
      maxRate: 0,
      windowMs: 60_000,
      liveTtlMs: 1_200_000,
    },
    store: "sqlite:/var/lib/smtp-delay/state.db",
    storeTimeoutMs: 200,
    allowFile: undefined,
    program: ["prog"],
  });
  assert.deepEqual(DEFAULTS.delayMs, { ptr: 250, dynamic: 16_000, noptr: 26_000 });
});

Deno.test("parseConfig() keeps the program and its arguments as given", () => {
  const config = run(["-S", "-d", "1", "rblsmtpd", "-r", "-d", "qmail-smtpd"]);
  assert.deepEqual(config.program, ["rblsmtpd", "-r", "-d", "qmail-smtpd"]);
});

Deno.test("parseConfig() lets SMTPDELAY* variables override the options", async (t) => {
  const rows: {
    name: string;
    args: string[];
    env: Env;
    check: (c: Config) => unknown;
    want: unknown;
  }[] = [
    {
      name: "SMTPDELAYd over the default",
      args: [],
      env: { SMTPDELAYd: "3" },
      check: (c) => c.delayMs.ptr,
      want: 3000,
    },
    {
      name: "SMTPDELAYd over -d",
      args: ["-d", "1"],
      env: { SMTPDELAYd: "3" },
      check: (c) => c.delayMs.ptr,
      want: 3000,
    },
    {
      name: "SMTPDELAYD over -D",
      args: ["-D", "1"],
      env: { SMTPDELAYD: "0.5" },
      check: (c) => c.delayMs.dynamic,
      want: 500,
    },
    {
      name: "SMTPDELAYP over -P",
      args: ["-P", "1"],
      env: { SMTPDELAYP: "7" },
      check: (c) => c.delayMs.noptr,
      want: 7000,
    },
    {
      name: "SMTPDELAYN over -N",
      args: ["-N", "10"],
      env: { SMTPDELAYN: "100" },
      check: (c) => c.refuseNoptrPercent,
      want: 100,
    },
    {
      name: "SMTPDELAYN=0 switches -N off for one client",
      args: ["-N", "50"],
      env: { SMTPDELAYN: "0" },
      check: (c) => c.refuseNoptrPercent,
      want: 0,
    },
    {
      name: "SMTPDELAYd does not touch the other tiers",
      args: ["-D", "2", "-P", "4"],
      env: { SMTPDELAYd: "9" },
      check: (c) => c.delayMs,
      want: { ptr: 9000, dynamic: 2000, noptr: 4000 },
    },
    {
      name: "an empty SMTPDELAYd counts as unset: -d stays",
      args: ["-d", "1"],
      env: { SMTPDELAYd: "" },
      check: (c) => c.delayMs.ptr,
      want: 1000,
    },
    {
      name: "an empty SMTPDELAYN counts as unset: -N stays",
      args: ["-N", "30"],
      env: { SMTPDELAYN: "" },
      check: (c) => c.refuseNoptrPercent,
      want: 30,
    },
    {
      name: "an empty SMTPDELAYP counts as unset: the default stays",
      args: [],
      env: { SMTPDELAYP: "" },
      check: (c) => c.delayMs.noptr,
      want: 26_000,
    },
    {
      name: "variable names are case-sensitive: SMTPDELAYd is not SMTPDELAYD",
      args: [],
      env: { SMTPDELAYD: "1" },
      check: (c) => c.delayMs,
      want: { ptr: 250, dynamic: 1000, noptr: 26_000 },
    },
    {
      name: "SMTPDELAY=JUSTDELAY sets justDelay",
      args: [],
      env: { SMTPDELAY: "JUSTDELAY" },
      check: (c) => c.justDelay,
      want: true,
    },
    {
      name: "an empty SMTPDELAY is no mode",
      args: [],
      env: { SMTPDELAY: "" },
      check: (c) => c.justDelay,
      want: false,
    },
    {
      name: "SMTPDELAY_DNS names the server",
      args: [],
      env: { SMTPDELAY_DNS: "127.0.0.1:5353" },
      check: (c) => c.nameServer,
      want: { ipAddr: "127.0.0.1", port: 5353 },
    },
    {
      name: "an empty SMTPDELAY_DNS is the system resolver",
      args: [],
      env: { SMTPDELAY_DNS: "" },
      check: (c) => c.nameServer,
      want: undefined,
    },
    {
      name: "other variables are ignored",
      args: [],
      env: { SMTPDELAYX: "nonsense", TCPREMOTEIP: "192.0.2.1" },
      check: (c) => c.delayMs,
      want: { ptr: 250, dynamic: 16_000, noptr: 26_000 },
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.deepEqual(row.check(run([...row.args, "prog"], row.env)), row.want);
    });
  }
});

Deno.test("parseConfig() rejects a malformed variable, naming it and quoting the value", async (t) => {
  const rows: { env: Env; parts: string[] }[] = [
    { env: { SMTPDELAYd: "abc" }, parts: ["SMTPDELAYd", '"abc"'] },
    { env: { SMTPDELAYD: "-1" }, parts: ["SMTPDELAYD", '"-1"'] },
    { env: { SMTPDELAYP: "301" }, parts: ["SMTPDELAYP", '"301"'] },
    { env: { SMTPDELAYN: "101" }, parts: ["SMTPDELAYN", '"101"'] },
    { env: { SMTPDELAY: "justdelay" }, parts: ["SMTPDELAY", "JUSTDELAY", '"justdelay"'] },
    { env: { SMTPDELAY: "JUSTDELAY " }, parts: ["SMTPDELAY", '"JUSTDELAY "'] },
    { env: { SMTPDELAY: "1" }, parts: ["SMTPDELAY", '"1"'] },
    { env: { SMTPDELAY_DNS: "localhost" }, parts: ["SMTPDELAY_DNS", '"localhost"'] },
  ];
  for (const row of rows) {
    await t.step(JSON.stringify(row.env), () => {
      assertUsageError(() => parseConfig(["prog"], row.env), ...row.parts);
    });
  }
});

Deno.test("parseConfig() checks a bad variable even when the option is good", () => {
  assertUsageError(
    () => parseConfig(["-d", "1", "prog"], { SMTPDELAYd: "x" }),
    "SMTPDELAYd",
    '"x"',
  );
});

// A broken run file must fail for every client, not only for those without an override.
Deno.test("parseConfig() rejects a bad option even when a variable overrides it", () => {
  assertUsageError(() => parseConfig(["-d", "abc", "prog"], { SMTPDELAYd: "2" }), "-d", '"abc"');
});

Deno.test("parseConfig() answers -v with the version request", async (t) => {
  const rows: { name: string; args: string[]; env: Env }[] = [
    { name: "-v alone, no program needed", args: ["-v"], env: {} },
    { name: "-v among options", args: ["-S", "-d", "1", "-v", "prog"], env: {} },
    { name: "clustered -Sv", args: ["-Sv"], env: {} },
    { name: "-v before a bad variable", args: ["-v"], env: { SMTPDELAY: "bad" } },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.deepEqual(parseConfig(row.args, row.env), { kind: "version" });
    });
  }
});

Deno.test("parseConfig() wants a program to run", async (t) => {
  const rows: string[][] = [[], ["-d", "1"], ["--"], ["-S", "-N", "5"]];
  for (const args of rows) {
    await t.step(args.join(" ") || "(no arguments)", () => {
      const e = assertUsageError(() => parseConfig(args, {}), "No program to run");
      assert.ok(e.message.includes(USAGE), `message ${JSON.stringify(e.message)} lacks the usage`);
    });
  }
});

Deno.test("parseConfig() returns a frozen config", () => {
  const config = run(["-S", "prog", "arg"], { SMTPDELAY_DNS: "127.0.0.1" });
  assert.ok(Object.isFrozen(config), "config is not frozen");
  assert.ok(Object.isFrozen(config.delayMs), "config.delayMs is not frozen");
  assert.ok(Object.isFrozen(config.program), "config.program is not frozen");
  assert.ok(Object.isFrozen(config.nameServer), "config.nameServer is not frozen");
  assert.throws(() => {
    (config.delayMs as { ptr: number }).ptr = 1;
  }, TypeError);
});

Deno.test("parseConfig() copies the program, so later changes to args do not leak in", () => {
  const args = ["prog", "arg"];
  const config = run(args);
  args[1] = "changed";
  assert.deepEqual(config.program, ["prog", "arg"]);
});

Deno.test("UsageError is an Error named UsageError", () => {
  const e = new UsageError("x");
  assert.ok(e instanceof Error);
  assert.equal(e.name, "UsageError");
  assert.equal(e.message, "x");
});
