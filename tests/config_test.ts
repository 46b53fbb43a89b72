import assert from "node:assert/strict";
import {
  CAP_SETTINGS,
  type Config,
  DEFAULT_STORE,
  DEFAULTS,
  FILTER_USAGE,
  helpText,
  MAX_COUNT,
  MAX_SECONDS,
  MAX_TTL_SECONDS,
  MEMORY_SETTINGS,
  needsRelay,
  parseConfig,
  parseDecimal,
  parseNameServer,
  runsRblsmtpd,
  USAGE,
  VERSION,
} from "../src/config.ts";
import { DEFAULT_REPLY, type Lists } from "../src/lists/spec.ts";
import { formatStoreUrl, parseStoreUrl } from "../src/store/url.ts";
import { UsageError } from "../src/usage_error.ts";
import { assertUsageError } from "./fixtures/assert.ts";

type Env = Record<string, string | undefined>;

/** Every setting of the memory and the caps. */
const SETTINGS = [...Object.values(MEMORY_SETTINGS), ...Object.values(CAP_SETTINGS)];

/** parseConfig that must return a run request. */
function run(args: string[], env: Env = {}): Config {
  const request = parseConfig(args, env);
  if (request.kind !== "run") assert.fail(`got ${JSON.stringify(request)}, want kind "run"`);
  return request.config;
}

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
    lists: undefined,
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
    store: { kind: "sqlite", path: "/var/lib/smtp-delay/state.db" },
    action: "enforce",
    teaser: undefined,
    teaserTiers: ["noptr", "dynamic"],
    storeTimeoutMs: 200,
    allowFile: undefined,
    caps: { maxSessionMs: 900_000, maxIdleMs: 0, maxBytesPerSecond: 0 },
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

Deno.test("parseConfig() answers -v, --version and --help with a text to print", async (t) => {
  const version = { kind: "print", text: `smtp-delay ${VERSION}\n${USAGE}`, stdout: false };
  const versionOnly = { kind: "print", text: `smtp-delay ${VERSION}`, stdout: true };
  const help = { kind: "print", text: helpText(), stdout: true };
  const rows: { name: string; args: string[]; env: Env; want: unknown }[] = [
    { name: "-v alone, no program needed", args: ["-v"], env: {}, want: version },
    { name: "-v among options", args: ["-S", "-d", "1", "-v", "prog"], env: {}, want: version },
    { name: "clustered -Sv", args: ["-Sv"], env: {}, want: version },
    { name: "-v before a bad variable", args: ["-v"], env: { SMTPDELAY: "bad" }, want: version },
    {
      name: "--version: the version alone, on stdout",
      args: ["--version"],
      env: {},
      want: versionOnly,
    },
    { name: "--help: the help, on stdout", args: ["--help"], env: {}, want: help },
    { name: "--help wins over -v", args: ["-v", "--help"], env: {}, want: help },
    { name: "--help after options", args: ["-S", "-d", "1", "--help"], env: {}, want: help },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.deepEqual(parseConfig(row.args, row.env), row.want);
    });
  }
});

Deno.test("parseConfig() leaves --help to the program when it comes after prog", () => {
  assert.deepEqual(run(["-S", "prog", "--help"]).program, ["prog", "--help"]);
});

Deno.test("helpText() names every option and variable, in 80 columns", () => {
  const text = helpText();
  for (const { option, variable } of SETTINGS) {
    assert.ok(text.includes(`--${option} N`), `--${option} missing`);
    assert.ok(text.includes(variable), `${variable} missing`);
  }
  for (const word of ["-d N", "-D N", "-P N", "-N N", "-t N", "-f FILE", "-S", "--store URL"]) {
    assert.ok(text.includes(word), `${word} missing`);
  }
  for (const line of text.split("\n")) assert.ok(line.length <= 80, `too long: ${line}`);
});

Deno.test("parseConfig() wants a program to run", async (t) => {
  const rows: string[][] = [[], ["-d", "1"], ["--"], ["-S", "-N", "5"]];
  for (const args of rows) {
    await t.step(args.join(" ") || "(no arguments)", () => {
      const e = assertUsageError(() => parseConfig(args, {}), "no program to run");
      assert.ok(e.message.includes(FILTER_USAGE), `message ${JSON.stringify(e.message)}`);
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

Deno.test("the settings pair each option with its SMTPDELAY_ variable, one per field", () => {
  for (const { option, variable } of SETTINGS) {
    const want = `SMTPDELAY_${option.toUpperCase().replaceAll("-", "_")}`;
    assert.equal(variable, want, `--${option}: got ${variable}, want ${want}`);
  }
  const options = SETTINGS.map(({ option }) => option);
  assert.equal(new Set(options).size, options.length, `options repeat: ${options.join(" ")}`);
  const config = run(["prog"]);
  assert.deepEqual(Object.keys(MEMORY_SETTINGS), Object.keys(config.memory));
  assert.deepEqual(Object.keys(CAP_SETTINGS), Object.keys(config.caps));
  assert.equal(Object.keys(MEMORY_SETTINGS).length, 12);
});

/** A setting's value as parseConfig keeps it: seconds in ms, counts as they are. */
const kept = (unit: "seconds" | "count", n: number) => unit === "seconds" ? n * 1000 : n;

Deno.test("parseConfig() reads each memory setting from its option and its variable", async (t) => {
  for (const [field, { option, variable, unit, fallback }] of Object.entries(MEMORY_SETTINGS)) {
    await t.step(`--${option} / ${variable}`, async (t) => {
      const rows: { name: string; args: string[]; env: Env; want: number }[] = [
        { name: "default", args: [], env: {}, want: kept(unit, fallback) },
        { name: `--${option} 7`, args: [`--${option}`, "7"], env: {}, want: kept(unit, 7) },
        { name: `--${option}=7`, args: [`--${option}=7`], env: {}, want: kept(unit, 7) },
        { name: `--${option} 0`, args: [`--${option}`, "0"], env: {}, want: 0 },
        {
          name: "the last of a repeated option wins",
          args: [`--${option}`, "7", `--${option}=8`],
          env: {},
          want: kept(unit, 8),
        },
        { name: `${variable}=9`, args: [], env: { [variable]: "9" }, want: kept(unit, 9) },
        {
          name: "the variable wins over the option",
          args: [`--${option}`, "7"],
          env: { [variable]: "9" },
          want: kept(unit, 9),
        },
        {
          name: "the variable 0 wins over the option",
          args: [`--${option}`, "7"],
          env: { [variable]: "0" },
          want: 0,
        },
        {
          name: "an empty variable counts as unset: the option",
          args: [`--${option}`, "7"],
          env: { [variable]: "" },
          want: kept(unit, 7),
        },
        {
          name: "an empty variable counts as unset: the default",
          args: [],
          env: { [variable]: "" },
          want: kept(unit, fallback),
        },
      ];
      for (const row of rows) {
        await t.step(row.name, () => {
          // that field, and nothing else moved
          const want = { ...run(["prog"]).memory, [field]: row.want };
          assert.deepEqual(run([...row.args, "prog"], row.env).memory, want);
        });
      }
    });
  }
});

Deno.test("parseConfig() takes seconds up to 30 days and whole counts up to a million", async (t) => {
  const rows: { args: string[]; field: keyof Config["memory"]; want: number }[] = [
    { args: ["--pass-ttl", "2592000"], field: "passTtlMs", want: 2_592_000_000 },
    { args: ["--penalty-ttl", "2592000.000"], field: "penaltyTtlMs", want: 2_592_000_000 },
    { args: ["--box", "0.5"], field: "boxMs", want: 500 },
    { args: ["--rate-step", "0.001"], field: "rateStepMs", want: 1 },
    { args: ["--window", "90.25"], field: "windowMs", want: 90_250 },
    { args: ["--live-ttl", "301"], field: "liveTtlMs", want: 301_000 }, // more than -d's 300
    { args: ["--strikes", "1000000"], field: "strikes", want: 1_000_000 },
    { args: ["--rate", "0000001"], field: "rate", want: 1 },
    { args: ["--max-conns", "999999"], field: "maxConns", want: 999_999 },
  ];
  for (const row of rows) {
    await t.step(row.args.join(" "), () => {
      const got = run([...row.args, "prog"]).memory[row.field];
      assert.equal(got, row.want, `got ${got}, want ${row.want}`);
    });
  }
  assert.equal(MAX_TTL_SECONDS, 2_592_000);
  assert.equal(MAX_COUNT, 1_000_000);
});

Deno.test("parseConfig() rejects a bad memory setting, naming it and quoting the value", async (t) => {
  const seconds = ["2592001", "2592000.5", "-1", "", "abc", "1e3", "1,5", " 1", "1.", ".5", "+1"];
  const counts = ["1.5", "1.0", "1000001", "9999999", "01000000", "-1", "", "abc", "1e3", " 1"];
  for (const { option, variable, unit } of Object.values(MEMORY_SETTINGS)) {
    for (const text of unit === "seconds" ? seconds : counts) {
      const range = unit === "seconds" ? "from 0 to 2592000" : "from 0 to 1000000";
      await t.step(`--${option} ${JSON.stringify(text)}`, () => {
        assertUsageError(
          () => parseConfig([`--${option}`, text, "prog"], {}),
          `--${option}`,
          range,
          `"${text}"`,
        );
      });
      if (text === "") continue; // an empty variable is unset
      await t.step(`${variable}=${JSON.stringify(text)}`, () => {
        assertUsageError(() => parseConfig(["prog"], { [variable]: text }), variable, `"${text}"`);
      });
    }
  }
});

// A broken run file must fail for every client, not only for those tcprules overrides.
Deno.test("parseConfig() rejects a bad long option even when its variable overrides it", async (t) => {
  const rows: { args: string[]; env: Env; parts: string[] }[] = [
    {
      args: ["--pass-ttl", "abc"],
      env: { SMTPDELAY_PASS_TTL: "5" },
      parts: ["--pass-ttl", '"abc"'],
    },
    { args: ["--strikes", "1.5"], env: { SMTPDELAY_STRIKES: "2" }, parts: ["--strikes", '"1.5"'] },
    {
      args: ["--max-conns", "-1"],
      env: { SMTPDELAY_MAX_CONNS: "2" },
      parts: ["--max-conns", '"-1"'],
    },
    {
      args: ["--store", "mysql://x"],
      env: { SMTPDELAY_STORE: "none" },
      parts: ["--store", '"mysql://x"'],
    },
    {
      args: ["--store-timeout", "11"],
      env: { SMTPDELAY_STORE_TIMEOUT: "1" },
      parts: ["--store-timeout", '"11"'],
    },
    {
      // an earlier value that a later one replaces is checked too
      args: ["--box", "x", "--box", "5"],
      env: {},
      parts: ["--box", '"x"'],
    },
  ];
  for (const row of rows) {
    await t.step(`${row.args.join(" ")} ${JSON.stringify(row.env)}`, () => {
      assertUsageError(() => parseConfig([...row.args, "prog"], row.env), ...row.parts);
    });
  }
});

Deno.test("parseConfig() checks a bad memory variable even when its option is good", () => {
  assertUsageError(
    () => parseConfig(["--rate", "5", "prog"], { SMTPDELAY_RATE: "fast" }),
    "SMTPDELAY_RATE",
    '"fast"',
  );
});

Deno.test("parseConfig() reads the store from --store and SMTPDELAY_STORE, parsed", async (t) => {
  const rows: { name: string; args: string[]; env: Env; want: string }[] = [
    { name: "the default", args: [], env: {}, want: DEFAULT_STORE },
    { name: "--store none", args: ["--store", "none"], env: {}, want: "none" },
    {
      name: "--store=sqlite:/var/x.db",
      args: ["--store=sqlite:/var/x.db"],
      env: {},
      want: "sqlite:/var/x.db",
    },
    {
      name: "SMTPDELAY_STORE wins over --store",
      args: ["--store", "sqlite:/var/x.db"],
      env: { SMTPDELAY_STORE: "redis://127.0.0.1:6379/2" },
      want: "redis://127.0.0.1:6379/2",
    },
    {
      name: "an empty SMTPDELAY_STORE counts as unset",
      args: ["--store", "none"],
      env: { SMTPDELAY_STORE: "" },
      want: "none",
    },
    {
      name: "SMTPDELAY_STORE alone",
      args: [],
      env: { SMTPDELAY_STORE: "redis://:pw@[::1]:6380" },
      want: "redis://[::1]:6380/0",
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.equal(formatStoreUrl(run([...row.args, "prog"], row.env).store), row.want);
    });
  }
  assert.equal(DEFAULT_STORE, "sqlite:/var/lib/smtp-delay/state.db");
});

Deno.test("parseConfig() rejects a bad store, naming where it came from", async (t) => {
  const rows: { args: string[]; env: Env; parts: string[] }[] = [
    { args: ["--store", "sqlite:relative"], env: {}, parts: ["--store", '"sqlite:relative"'] },
    { args: ["--store="], env: {}, parts: ["--store", '""'] },
    {
      args: [],
      env: { SMTPDELAY_STORE: "sqlite:/dir/" },
      parts: ["SMTPDELAY_STORE", '"sqlite:/dir/"'],
    },
    {
      args: ["--store", "none"],
      env: { SMTPDELAY_STORE: "redis://host:99999999" },
      parts: ["SMTPDELAY_STORE", '"redis://host:99999999"'],
    },
    // What the Redis store would refuse at every connection is refused at start.
    {
      args: ["--store", "redis://mx@host"],
      env: {},
      parts: ["--store", '"redis://***@host"', "a user without a password"],
    },
    {
      args: [],
      env: { SMTPDELAY_STORE: "redis://:p%zz@host" },
      parts: ["SMTPDELAY_STORE", '"redis://:***@host"', "bad percent-encoding"],
    },
    { args: ["--store", "redis://host:"], env: {}, parts: ["--store", 'the port ""'] },
    { args: ["--store", "redis://host?db=1"], env: {}, parts: ["--store", "no ?query"] },
    {
      // a bad run file fails for every client, even those tcprules give a store of their own
      args: ["--store", "redis://mx@host"],
      env: { SMTPDELAY_STORE: "none" },
      parts: ["--store", "a user without a password"],
    },
  ];
  for (const row of rows) {
    await t.step(`${row.args.join(" ")} ${JSON.stringify(row.env)}`, () => {
      assertUsageError(() => parseConfig([...row.args, "prog"], row.env), ...row.parts);
    });
  }
});

Deno.test("parseConfig() takes every store URL the store takes, as the store parses it", async (t) => {
  const rows = [
    "redis://host/123456",
    "redis://mx:pw@host",
    "redis://:p@ss@host",
    "redis://redis_1:6380",
    "sqlite:/dir with space/x.db",
  ];
  for (const text of rows) {
    await t.step(text, () => {
      const want = parseStoreUrl(text, "--store");
      assert.deepEqual(run(["--store", text, "prog"]).store, want);
      assert.deepEqual(run(["prog"], { SMTPDELAY_STORE: text }).store, want);
    });
  }
});

Deno.test("parseConfig() wants a store deadline above 0", () => {
  for (const text of ["0", "0.0004"]) {
    assertUsageError(
      () => parseConfig(["--store-timeout", text, "prog"], {}),
      "--store-timeout",
      `"${text}"`,
    );
  }
});

Deno.test("parseConfig() reads the store deadline in seconds, at most 10", async (t) => {
  const rows: { args: string[]; env: Env; want: number }[] = [
    { args: [], env: {}, want: 200 },
    { args: ["--store-timeout", "0.5"], env: {}, want: 500 },
    { args: ["--store-timeout=10"], env: {}, want: 10_000 },
    { args: ["--store-timeout", "1"], env: { SMTPDELAY_STORE_TIMEOUT: "2" }, want: 2000 },
    { args: ["--store-timeout", "1"], env: { SMTPDELAY_STORE_TIMEOUT: "" }, want: 1000 },
  ];
  for (const row of rows) {
    await t.step(`${row.args.join(" ") || "(default)"} ${JSON.stringify(row.env)}`, () => {
      const got = run([...row.args, "prog"], row.env).storeTimeoutMs;
      assert.equal(got, row.want, `got ${got}, want ${row.want}`);
    });
  }
  for (const text of ["10.5", "11", "-1", "", "0.2s", "1e1"]) {
    await t.step(`--store-timeout ${JSON.stringify(text)} is rejected`, () => {
      assertUsageError(
        () => parseConfig(["--store-timeout", text, "prog"], {}),
        "--store-timeout",
        "from 0 to 10",
        `"${text}"`,
      );
    });
  }
  await t.step("a bad SMTPDELAY_STORE_TIMEOUT is rejected", () => {
    assertUsageError(
      () => parseConfig(["prog"], { SMTPDELAY_STORE_TIMEOUT: "soon" }),
      "SMTPDELAY_STORE_TIMEOUT",
      '"soon"',
    );
  });
});

Deno.test("parseConfig() reads the allowlist file from --allow and SMTPDELAY_ALLOW", async (t) => {
  const rows: { args: string[]; env: Env; want: string | undefined }[] = [
    { args: [], env: {}, want: undefined },
    { args: ["--allow", "/etc/smtp-delay/allow"], env: {}, want: "/etc/smtp-delay/allow" },
    { args: ["--allow=/etc/a"], env: {}, want: "/etc/a" },
    { args: ["--allow="], env: {}, want: undefined },
    { args: ["--allow", "/etc/a"], env: { SMTPDELAY_ALLOW: "/etc/b" }, want: "/etc/b" },
    { args: ["--allow", "/etc/a"], env: { SMTPDELAY_ALLOW: "" }, want: "/etc/a" },
    { args: [], env: { SMTPDELAY_ALLOW: "/etc/b" }, want: "/etc/b" },
  ];
  for (const row of rows) {
    await t.step(`${row.args.join(" ") || "(none)"} ${JSON.stringify(row.env)}`, () => {
      assert.equal(run([...row.args, "prog"], row.env).allowFile, row.want);
    });
  }
});

Deno.test("parseConfig() keeps the memory settings frozen", () => {
  const config = run(["--strikes", "2", "prog"]);
  assert.ok(Object.isFrozen(config.memory), "config.memory is not frozen");
});

Deno.test("parseConfig() reads each cap from its option and its variable", async (t) => {
  for (const [field, { option, variable, unit, fallback }] of Object.entries(CAP_SETTINGS)) {
    await t.step(`--${option} / ${variable}`, async (t) => {
      const rows: { name: string; args: string[]; env: Env; want: number }[] = [
        { name: "default", args: [], env: {}, want: kept(unit, fallback) },
        { name: `--${option} 7`, args: [`--${option}`, "7"], env: {}, want: kept(unit, 7) },
        { name: `--${option}=0`, args: [`--${option}=0`], env: {}, want: 0 },
        {
          name: "the variable wins over the option",
          args: [`--${option}`, "7"],
          env: { [variable]: "9" },
          want: kept(unit, 9),
        },
        {
          name: "an empty variable counts as unset",
          args: [`--${option}`, "7"],
          env: { [variable]: "" },
          want: kept(unit, 7),
        },
      ];
      for (const row of rows) {
        await t.step(row.name, () => {
          const want = { ...run(["prog"]).caps, [field]: row.want };
          assert.deepEqual(run([...row.args, "prog"], row.env).caps, want);
        });
      }
      await t.step("a malformed value is a usage error naming it", () => {
        assertUsageError(() => run([`--${option}`, "-1", "prog"]), `--${option}`, '"-1"');
        assertUsageError(() => run(["prog"], { [variable]: "x" }), variable, '"x"');
      });
    });
  }
});

Deno.test("needsRelay() is true for an idle or bandwidth cap, not for the session cap", async (t) => {
  const rows: [string, string[], boolean][] = [
    ["the defaults (a session cap of 900 s only)", [], false],
    ["--max-session 60", ["--max-session", "60"], false],
    ["--max-idle 30", ["--max-idle", "30"], true],
    ["--max-bytes-per-second 1000", ["--max-bytes-per-second", "1000"], true],
  ];
  for (const [name, args, want] of rows) {
    await t.step(name, () => {
      const got = needsRelay(run([...args, "prog"]).caps);
      assert.equal(got, want, `got ${got}, want ${want}`);
    });
  }
});

Deno.test("parseConfig() refuses a memory setting beside --store none, and warns of one set by a variable", async (t) => {
  const rows: { name: string; args: string[]; env: Env; error?: string; warnings?: string[] }[] = [
    {
      name: "--store none --max-conns 5: can never work",
      args: ["--store", "none", "--max-conns", "5", "prog"],
      env: {},
      error: "--max-conns needs a store, and --store none has none",
    },
    {
      name: "--max-conns 5 --store=none: the order does not matter",
      args: ["--max-conns", "5", "--store=none", "prog"],
      env: {},
      error: "--max-conns needs a store",
    },
    {
      name: "--store none --store-timeout 1",
      args: ["--store", "none", "--store-timeout", "1", "prog"],
      env: {},
      error: "--store-timeout needs a store",
    },
    {
      name: "--store none with SMTPDELAY_MAX_CONNS from tcprules: a warning",
      args: ["--store", "none", "prog"],
      env: { SMTPDELAY_MAX_CONNS: "5" },
      warnings: ["SMTPDELAY_MAX_CONNS does nothing without a store (--store none)"],
    },
    {
      name: "SMTPDELAY_STORE=none and SMTPDELAY_PASS_TTL in one rule: a warning",
      args: ["prog"],
      env: { SMTPDELAY_STORE: "none", SMTPDELAY_PASS_TTL: "60" },
      warnings: ["SMTPDELAY_PASS_TTL does nothing without a store (SMTPDELAY_STORE none)"],
    },
    {
      name: "SMTPDELAY_STORE=none for some clients, limits in the run file: meant, no word",
      args: ["--max-conns", "5", "prog"],
      env: { SMTPDELAY_STORE: "none" },
      warnings: [],
    },
    {
      name: "--store none alone: nothing to say",
      args: ["--store", "none", "prog"],
      env: {},
      warnings: [],
    },
    {
      name: "a store and limits: nothing to say",
      args: ["--max-conns", "5", "prog"],
      env: { SMTPDELAY_RATE: "3" },
      warnings: [],
    },
    {
      name: "an empty variable counts as unset",
      args: ["--store", "none", "prog"],
      env: { SMTPDELAY_MAX_CONNS: "" },
      warnings: [],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      if (row.error) {
        assertUsageError(() => parseConfig(row.args, row.env), row.error);
        return;
      }
      const request = parseConfig(row.args, row.env);
      assert.equal(request.kind, "run");
      assert.deepEqual(request.kind === "run" ? request.warnings : undefined, row.warnings);
    });
  }
});

Deno.test("runsRblsmtpd() finds rblsmtpd anywhere in the chain", async (t) => {
  const rows: [string[], boolean][] = [
    [["rblsmtpd", "-r", "zen.spamhaus.org", "qmail-smtpd"], true],
    [["/usr/bin/rblsmtpd", "qmail-smtpd"], true],
    [["fixcrio", "rblsmtpd", "qmail-smtpd"], true],
    [["softlimit", "-m", "30000000", "/usr/bin/rblsmtpd", "qmail-smtpd"], true],
    [["/var/qmail/bin/qmail-smtpd"], false],
    [["softlimit", "-m", "30000000", "/var/qmail/bin/qmail-smtpd"], false],
    [["my-rblsmtpd-wrapper"], false],
    [["/opt/rblsmtpd/qmail-smtpd"], false],
  ];
  for (const [program, want] of rows) {
    await t.step(program.join(" "), () => assert.equal(runsRblsmtpd(program), want));
  }
});

Deno.test("parseConfig() reads --action, --teaser and --teaser-tiers, and their variables", async (t) => {
  const rows: {
    name: string;
    args: string[];
    env?: Env;
    want: Partial<Config>;
    warnings?: string[];
  }[] = [
    {
      name: "the defaults",
      args: [],
      want: { action: "enforce", teaser: undefined, teaserTiers: ["noptr", "dynamic"] },
    },
    { name: "--action ignore", args: ["--action", "ignore"], want: { action: "ignore" } },
    {
      name: "SMTPDELAY_ACTION wins",
      args: ["--action=ignore"],
      env: { SMTPDELAY_ACTION: "enforce" },
      want: { action: "enforce" },
    },
    {
      name: "--teaser with spaces",
      args: ["--teaser", "mx.example.org ESMTP ready"],
      want: { teaser: "mx.example.org ESMTP ready" },
    },
    { name: "--teaser '' is none", args: ["--teaser", ""], want: { teaser: undefined } },
    {
      name: "SMTPDELAY_TEASER for one client",
      args: [],
      env: { SMTPDELAY_TEASER: "hi" },
      want: { teaser: "hi" },
    },
    {
      name: "--teaser-tiers ptr,noptr,ptr: each once",
      args: ["--teaser", "x", "--teaser-tiers", "ptr,noptr,ptr"],
      want: { teaserTiers: ["ptr", "noptr"] },
    },
    {
      name: "--teaser-tiers none",
      args: ["--teaser", "x", "--teaser-tiers", "none"],
      want: { teaserTiers: [] },
    },
    {
      name: "--teaser-tiers without a teaser: a warning",
      args: ["--teaser-tiers", "ptr"],
      want: { teaser: undefined },
      warnings: ["--teaser-tiers does nothing without a teaser (--teaser)"],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const request = parseConfig([...row.args, "prog"], row.env ?? {});
      assert.equal(request.kind, "run");
      if (request.kind !== "run") return;
      for (const [field, want] of Object.entries(row.want)) {
        assert.deepEqual(request.config[field as keyof Config], want, field);
      }
      assert.deepEqual(request.warnings, row.warnings ?? []);
    });
  }
});

Deno.test("parseConfig() refuses a bad --action, --teaser or --teaser-tiers", async (t) => {
  const rows: { args: string[]; env?: Env; parts: string[] }[] = [
    { args: ["--action", "drop"], parts: ['--action wants enforce or ignore, got "drop"'] },
    { args: [], env: { SMTPDELAY_ACTION: "Ignore" }, parts: ["SMTPDELAY_ACTION", '"Ignore"'] },
    { args: ["--teaser", "two\r\nlines"], parts: ["--teaser wants 1 to 200 printable ASCII"] },
    { args: ["--teaser", "caf\u00e9"], parts: ["--teaser wants"] },
    { args: ["--teaser", "x".repeat(201)], parts: ["--teaser wants"] },
    { args: [], env: { SMTPDELAY_TEASER: "\x1b[31m" }, parts: ["SMTPDELAY_TEASER wants"] },
    { args: ["--teaser-tiers", "all"], parts: ["--teaser-tiers wants none or ptr"] },
    { args: ["--teaser-tiers", "ptr,"], parts: ["--teaser-tiers wants"] },
  ];
  for (const row of rows) {
    await t.step(`${row.args.join(" ")} ${JSON.stringify(row.env ?? {})}`, () => {
      assertUsageError(() => parseConfig([...row.args, "prog"], row.env ?? {}), ...row.parts);
    });
  }
});

Deno.test("parseConfig() reads the lists from --dnsbl and SMTPDELAY_DNSBL, with their settings", async (t) => {
  const spec = (zone: string, weight = 1) => ({ zone, filter: undefined, weight });
  const rows: {
    name: string;
    args: string[];
    env?: Env;
    want: Partial<Lists> | undefined;
    warnings?: string[];
  }[] = [
    { name: "none by default", args: [], want: undefined },
    {
      name: "--dnsbl twice, the defaults",
      args: ["--dnsbl", "zen.test*3", "--dnsbl=wl.test*-5"],
      want: {
        specs: [spec("zen.test", 3), spec("wl.test", -5)],
        zones: ["zen.test", "wl.test"],
        blockThreshold: 1,
        allowThreshold: -1,
        reply: DEFAULT_REPLY,
      },
    },
    {
      name: "one zone with two filters is asked once",
      args: ["--dnsbl", "zen.test=127.0.0.2", "--dnsbl", "zen.test=127.0.0.[10..11]*2"],
      want: { zones: ["zen.test"] },
    },
    {
      name: "SMTPDELAY_DNSBL wins, its SPECs between spaces",
      args: ["--dnsbl", "zen.test"],
      env: { SMTPDELAY_DNSBL: " a.test  b.test*2 " },
      want: { zones: ["a.test", "b.test"] },
    },
    {
      name: "SMTPDELAY_DNSBL=none: no lists for this client, its settings silent",
      args: ["--dnsbl", "zen.test", "--dnsbl-threshold", "2"],
      env: { SMTPDELAY_DNSBL: "none" },
      want: undefined,
    },
    {
      name: "the thresholds and the reply, from options and variables",
      args: ["--dnsbl", "a.test*5", "--dnsbl", "w.test*-5", "--dnsbl-threshold", "3"],
      env: { SMTPDELAY_DNSWL_THRESHOLD: "-4", SMTPDELAY_DNSBL_REPLY: "554 Go away" },
      want: { blockThreshold: 3, allowThreshold: -4, reply: { code: 554, text: "Go away" } },
    },
    {
      name: "a threshold without lists: a warning",
      args: ["--dnsbl-threshold", "2"],
      want: undefined,
      warnings: ["--dnsbl-threshold does nothing without lists (--dnsbl, SMTPDELAY_DNSBL)"],
    },
    {
      name: "a reply set by a variable without lists: a warning naming it",
      args: [],
      env: { SMTPDELAY_DNSBL_REPLY: "421 no" },
      want: undefined,
      warnings: ["SMTPDELAY_DNSBL_REPLY does nothing without lists (--dnsbl, SMTPDELAY_DNSBL)"],
    },
    {
      name: "a blocklist threshold the weights cannot reach: a warning",
      args: ["--dnsbl", "a.test", "--dnsbl", "b.test*2", "--dnsbl-threshold", "4"],
      want: { blockThreshold: 4 },
      warnings: ["--dnsbl-threshold 4 is out of reach: the blocklists' weights add up to 3"],
    },
    {
      name: "an allowlist threshold the weights cannot reach: a warning",
      args: ["--dnsbl", "w.test*-2"],
      env: { SMTPDELAY_DNSWL_THRESHOLD: "-3" },
      want: { allowThreshold: -3 },
      warnings: [
        "SMTPDELAY_DNSWL_THRESHOLD -3 is out of reach: the allowlists' weights add up to -2",
      ],
    },
    {
      name: "-t 0: the lists are never asked, and it says so",
      args: ["--dnsbl", "a.test", "-t", "0"],
      want: { zones: ["a.test"] },
      warnings: ["the lists (--dnsbl, SMTPDELAY_DNSBL) are never asked with -t 0"],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const request = parseConfig([...row.args, "prog"], row.env ?? {});
      if (request.kind !== "run") return assert.fail(`got ${request.kind}`);
      const lists = request.config.lists;
      if (row.want === undefined) assert.equal(lists, undefined);
      else {
        for (const [field, want] of Object.entries(row.want)) {
          assert.deepEqual(lists?.[field as keyof Lists], want, field);
        }
      }
      assert.deepEqual(request.warnings, row.warnings ?? []);
    });
  }
});

Deno.test("parseConfig() refuses bad lists and list settings, naming what set them", async (t) => {
  const rows: { args: string[]; env?: Env; parts: string[] }[] = [
    { args: ["--dnsbl", "zen"], parts: ["--dnsbl wants ZONE[=FILTER][*WEIGHT]", '"zen"'] },
    { args: ["--dnsbl", "zen.test*0"], parts: ["--dnsbl wants", '"zen.test*0"'] },
    { args: ["--dnsbl", "zen.test*+2"], parts: ["--dnsbl wants"] },
    { args: ["--dnsbl", "zen.test=127.0.0.[3..2]"], parts: ["--dnsbl wants"] },
    { args: ["--dnsbl", "zen.test=127.0.0.256"], parts: ["--dnsbl wants"] },
    { args: ["--dnsbl", "zen.test="], parts: ["--dnsbl wants"] },
    { args: [], env: { SMTPDELAY_DNSBL: "a.test bad..test" }, parts: ["SMTPDELAY_DNSBL wants"] },
    // A bad option is an error even when the variable overrides it.
    { args: ["--dnsbl", "x"], env: { SMTPDELAY_DNSBL: "a.test" }, parts: ["--dnsbl wants"] },
    {
      args: [],
      env: { SMTPDELAY_DNSBL: Array.from({ length: 33 }, (_, i) => `z${i}.test`).join(" ") },
      parts: ["SMTPDELAY_DNSBL names 33 lists; at most 32"],
    },
    { args: ["--dnsbl-threshold", "0"], parts: ["--dnsbl-threshold wants a whole number from 1"] },
    { args: ["--dnsbl-threshold", "-1"], parts: ["--dnsbl-threshold wants"] },
    { args: ["--dnswl-threshold", "1"], parts: ["--dnswl-threshold wants a whole number from -"] },
    {
      args: ["--dnsbl", "a.test"],
      env: { SMTPDELAY_DNSBL_THRESHOLD: "1.5" },
      parts: ["SMTPDELAY_DNSBL_THRESHOLD wants", '"1.5"'],
    },
    { args: ["--dnsbl-reply", "250 fine"], parts: ["--dnsbl-reply wants CODE TEXT"] },
    { args: ["--dnsbl-reply", "421"], parts: ["--dnsbl-reply wants"] },
    { args: ["--dnsbl-reply", "421 two\r\nlines"], parts: ["--dnsbl-reply wants"] },
    { args: ["--dnsbl-reply", `421 ${"x".repeat(201)}`], parts: ["--dnsbl-reply wants"] },
  ];
  for (const row of rows) {
    await t.step(`${row.args.join(" ")} ${JSON.stringify(row.env ?? {})}`.slice(0, 100), () => {
      assertUsageError(() => parseConfig([...row.args, "prog"], row.env ?? {}), ...row.parts);
    });
  }
});
