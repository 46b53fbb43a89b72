import assert from "node:assert/strict";
import { formatIp } from "../src/ip.ts";
import { MAX_COUNT } from "../src/config.ts";
import { type Ip, parseIp } from "../src/ip.ts";
import {
  parseHost,
  parsePort,
  parseServe,
  SERVE_USAGE,
  type ServeConfig,
} from "../src/serve/options.ts";
import { assertUsageError } from "./fixtures/assert.ts";

type Env = Record<string, string | undefined>;

/** A few lines in the shape of /etc/services: tabs, aliases, comments, udp-only, a comment line. */
const SERVICES = [
  "# Network services, Internet style",
  "tcpmux\t\t1/tcp\t\t\t\t# TCP port service multiplexer",
  "smtp\t\t25/tcp\t\tmail",
  "domain\t\t53/tcp\t\t\t\t# Domain Name Server",
  "domain\t\t53/udp",
  "submissions\t465/tcp\t\tssmtp smtps urd # Submission over TLS [RFC8314]",
  "submission\t587/tcp\t\t\t\t# Submission [RFC4409]",
  "syslog\t\t514/udp",
  "#old-smtp\t2525/tcp",
  "x-mail\t\t2626/tcp\t# comment with words 7/tcp",
  "",
].join("\n");

/** parseServe with the services above; `args` are the words after `serve`. */
function serve(args: string[], env: Env = {}): ServeConfig {
  return parseServe(args, env, SERVICES);
}

function ip(text: string): Ip {
  const parsed = parseIp(text);
  if (!parsed) throw new Error(`bad test address ${text}`);
  return parsed;
}

interface Row {
  name: string;
  args: string[];
  env?: Env;
  want: Partial<ServeConfig>;
}

/** Each row: parseServe(args) has every field of `want` as given (the others are not checked). */
async function table(t: Deno.TestContext, rows: Row[]): Promise<void> {
  for (const row of rows) {
    await t.step(row.name, () => {
      const got = serve(row.args, row.env);
      const picked = Object.fromEntries(
        Object.keys(row.want).map((k) => [k, got[k as keyof ServeConfig]]),
      );
      assert.deepEqual(picked, row.want, `parseServe(${JSON.stringify(row.args)})`);
    });
  }
}

const TAIL = ["0", "25", "qmail-smtpd"];

Deno.test("parseServe() uses tcpserver's defaults and serve's own", () => {
  const got = serve(["0", "smtp", "qmail-smtpd", "-x", "arg"]);
  const want: ServeConfig = {
    ip: { family: 4, bytes: new Uint8Array([0, 0, 0, 0]) },
    port: 25,
    maxChildren: 40,
    maxWaiting: 1000,
    maxPerIp: 50,
    stressPercent: 90,
    stressDelayMs: 2000,
    rulesFile: undefined,
    rulesMissingOk: false,
    lookupRemote: true,
    localName: undefined,
    backlog: 4096,
    verbosity: 1,
    uid: undefined,
    gid: undefined,
    printPort: false,
    screening: [],
    program: ["qmail-smtpd", "-x", "arg"],
  };
  assert.deepEqual(got, want);
});

Deno.test("parseServe() returns a frozen config with frozen lists", () => {
  const got = serve(["-d", "1", ...TAIL]);
  assert.ok(Object.isFrozen(got), "the config is not frozen");
  assert.ok(Object.isFrozen(got.screening), "screening is not frozen");
  assert.ok(Object.isFrozen(got.program), "program is not frozen");
});

Deno.test("parseServe() reads tcpserver's options, attached, separate and clustered", async (t) => {
  await table(t, [
    { name: "-c 100", args: ["-c", "100", ...TAIL], want: { maxChildren: 100 } },
    { name: "-c100", args: ["-c100", ...TAIL], want: { maxChildren: 100 } },
    { name: "-c 1, the least", args: ["-c", "1", ...TAIL], want: { maxChildren: 1 } },
    {
      name: `-c ${MAX_COUNT}, the most`,
      args: [`-c${MAX_COUNT}`, ...TAIL],
      want: { maxChildren: MAX_COUNT },
    },
    {
      name: "-c twice: the last wins",
      args: ["-c5", "-c", "7", ...TAIL],
      want: { maxChildren: 7 },
    },
    {
      name: "-x FILE",
      args: ["-x", "/etc/tcp.smtp.cdb", ...TAIL],
      want: { rulesFile: "/etc/tcp.smtp.cdb", rulesMissingOk: false },
    },
    { name: "-xFILE", args: ["-x/r.cdb", ...TAIL], want: { rulesFile: "/r.cdb" } },
    {
      name: "-X -x FILE",
      args: ["-X", "-x", "/r.cdb", ...TAIL],
      want: { rulesFile: "/r.cdb", rulesMissingOk: true },
    },
    {
      name: "-Xx FILE, clustered",
      args: ["-Xx", "/r.cdb", ...TAIL],
      want: { rulesFile: "/r.cdb", rulesMissingOk: true },
    },
    { name: "-H", args: ["-H", ...TAIL], want: { lookupRemote: false } },
    { name: "-h", args: ["-h", ...TAIL], want: { lookupRemote: true } },
    {
      name: "-h then -H: the last wins",
      args: ["-h", "-H", ...TAIL],
      want: { lookupRemote: false },
    },
    { name: "-H then -h: the last wins", args: ["-Hh", ...TAIL], want: { lookupRemote: true } },
    { name: "-l NAME", args: ["-l", "mx.example", ...TAIL], want: { localName: "mx.example" } },
    { name: "-l0, tcpserver's common choice", args: ["-l0", ...TAIL], want: { localName: "0" } },
    { name: "-b 5", args: ["-b", "5", ...TAIL], want: { backlog: 5 } },
    { name: "-b128", args: ["-b128", ...TAIL], want: { backlog: 128 } },
    { name: "-v", args: ["-v", ...TAIL], want: { verbosity: 2 } },
    { name: "-q", args: ["-q", ...TAIL], want: { verbosity: 0 } },
    { name: "-Q", args: ["-Q", ...TAIL], want: { verbosity: 1 } },
    { name: "-v then -q: the last wins", args: ["-v", "-q", ...TAIL], want: { verbosity: 0 } },
    { name: "-q then -v: the last wins", args: ["-qv", ...TAIL], want: { verbosity: 2 } },
    { name: "-v then -Q: the last wins", args: ["-vQ", ...TAIL], want: { verbosity: 1 } },
    {
      name: "-R is taken and changes nothing",
      args: ["-R", ...TAIL],
      want: { verbosity: 1, lookupRemote: true },
    },
    {
      name: "-vRH clustered",
      args: ["-vRH", ...TAIL],
      want: { verbosity: 2, lookupRemote: false, screening: [] },
    },
    { name: "-1", args: ["-1", ...TAIL], want: { printPort: true } },
    { name: "-u 1000", args: ["-u", "1000", ...TAIL], want: { uid: 1000, gid: undefined } },
    { name: "-g 100", args: ["-g100", ...TAIL], want: { uid: undefined, gid: 100 } },
    { name: "-u 0 -g 0", args: ["-u0", "-g", "0", ...TAIL], want: { uid: 0, gid: 0 } },
    {
      name: "-U: UID and GID from the environment",
      args: ["-U", ...TAIL],
      env: { UID: "89", GID: "82" },
      want: { uid: 89, gid: 82 },
    },
    {
      name: "-vRHU -c100 -x FILE, the README's line",
      args: ["-vRHU", "-c100", "-x", "/etc/tcp.smtp.cdb", ...TAIL],
      env: { UID: "89", GID: "82" },
      want: {
        verbosity: 2,
        lookupRemote: false,
        uid: 89,
        gid: 82,
        maxChildren: 100,
        rulesFile: "/etc/tcp.smtp.cdb",
      },
    },
    {
      name: "a flag then a value option in one word, -1c 3",
      args: ["-1c", "3", ...TAIL],
      want: { printPort: true, maxChildren: 3 },
    },
    {
      name: "the rest of the word is the value, letters included (-lRH)",
      args: ["-lRH", ...TAIL],
      want: { localName: "RH", lookupRemote: true },
    },
    {
      name: "a separate value may start with a dash (-l -H)",
      args: ["-l", "-H", ...TAIL],
      want: { localName: "-H", lookupRemote: true },
    },
  ]);
});

Deno.test("parseServe() takes serve's long options with = or a separate value", async (t) => {
  await table(t, [
    { name: "--waiting 50", args: ["--waiting", "50", ...TAIL], want: { maxWaiting: 50 } },
    { name: "--waiting=50", args: ["--waiting=50", ...TAIL], want: { maxWaiting: 50 } },
    { name: "--waiting 1, the least", args: ["--waiting=1", ...TAIL], want: { maxWaiting: 1 } },
    {
      name: "--waiting twice: the last wins",
      args: ["--waiting=5", "--waiting", "6", ...TAIL],
      want: { maxWaiting: 6 },
    },
    { name: "--per-ip 3", args: ["--per-ip", "3", ...TAIL], want: { maxPerIp: 3 } },
    { name: "--per-ip=0 (no cap)", args: ["--per-ip=0", ...TAIL], want: { maxPerIp: 0 } },
    { name: "--stress 75", args: ["--stress", "75", ...TAIL], want: { stressPercent: 75 } },
    { name: "--stress=0 (never)", args: ["--stress=0", ...TAIL], want: { stressPercent: 0 } },
    { name: "--stress=100", args: ["--stress=100", ...TAIL], want: { stressPercent: 100 } },
    {
      name: "--stress-delay 0.5",
      args: ["--stress-delay", "0.5", ...TAIL],
      want: { stressDelayMs: 500 },
    },
    {
      name: "--stress-delay=3",
      args: ["--stress-delay=3", ...TAIL],
      want: { stressDelayMs: 3000 },
    },
    { name: "--stress-delay=0", args: ["--stress-delay=0", ...TAIL], want: { stressDelayMs: 0 } },
    {
      name: "--stress-delay=300, the most",
      args: ["--stress-delay=300", ...TAIL],
      want: { stressDelayMs: 300_000 },
    },
    {
      name: "--stress-delay=0.001",
      args: ["--stress-delay=0.001", ...TAIL],
      want: { stressDelayMs: 1 },
    },
    {
      name: "serve's long options stay out of the screening",
      args: ["--waiting=5", "--stress", "50", "--stress-delay=1", ...TAIL],
      want: { screening: [] },
    },
  ]);
});

Deno.test("parseServe() passes the screening's options on, in order, for parseConfig", async (t) => {
  await table(t, [
    { name: "-d 0.5", args: ["-d", "0.5", ...TAIL], want: { screening: ["-d", "0.5"] } },
    { name: "-d0.5", args: ["-d0.5", ...TAIL], want: { screening: ["-d", "0.5"] } },
    { name: "-S", args: ["-S", ...TAIL], want: { screening: ["-S"] } },
    { name: "-Sd 1", args: ["-Sd", "1", ...TAIL], want: { screening: ["-S", "-d", "1"] } },
    { name: "-Sd1", args: ["-Sd1", ...TAIL], want: { screening: ["-S", "-d", "1"] } },
    {
      name: "every screening letter",
      args: ["-d", "1", "-D2", "-P", "3", "-N4", "-t", "5", "-f", "/p", "-S", ...TAIL],
      want: {
        screening: ["-d", "1", "-D", "2", "-P", "3", "-N", "4", "-t", "5", "-f", "/p", "-S"],
      },
    },
    {
      name: "mixed with serve's letters in one word, -vSd 2",
      args: ["-vSd", "2", ...TAIL],
      want: { verbosity: 2, screening: ["-S", "-d", "2"] },
    },
    {
      name: "a serve value letter after a screening flag, -Sc5",
      args: ["-Sc5", ...TAIL],
      want: { maxChildren: 5, screening: ["-S"] },
    },
    {
      name: "a screening value may start with a dash (checked later)",
      args: ["-d", "-H", ...TAIL],
      want: { screening: ["-d", "-H"], lookupRemote: true },
    },
    {
      name: "-v is serve's verbosity, never the screening's version",
      args: ["-v", "-S", ...TAIL],
      want: { verbosity: 2, screening: ["-S"] },
    },
    {
      name: "--store URL, separate",
      args: ["--store", "redis://127.0.0.1/", ...TAIL],
      want: { screening: ["--store=redis://127.0.0.1/"] },
    },
    {
      name: "--pass-ttl=60",
      args: ["--pass-ttl=60", ...TAIL],
      want: { screening: ["--pass-ttl=60"] },
    },
    {
      name: "a long value containing =",
      args: ["--store", "redis://:a=b@127.0.0.1/", ...TAIL],
      want: { screening: ["--store=redis://:a=b@127.0.0.1/"] },
    },
    {
      name: "an empty long value",
      args: ["--allow=", ...TAIL],
      want: { screening: ["--allow="] },
    },
    {
      name: "long and short, in the order given",
      args: ["--strikes", "2", "-S", "--store=none", "-d", "0", ...TAIL],
      want: { screening: ["--strikes=2", "-S", "--store=none", "-d", "0"] },
    },
    {
      name: "a repeated option is kept twice",
      args: ["-d1", "-d", "2", ...TAIL],
      want: { screening: ["-d", "1", "-d", "2"] },
    },
  ]);
});

Deno.test("parseServe() splits HOST PORT and the program where the options end", async (t) => {
  await table(t, [
    {
      name: "the program's options are its own",
      args: ["-v", "0", "25", "rblsmtpd", "-r", "zen", "-c", "9"],
      want: { maxChildren: 40, program: ["rblsmtpd", "-r", "zen", "-c", "9"] },
    },
    {
      name: "-- ends the options and is dropped",
      args: ["-H", "--", "0", "25", "prog"],
      want: { lookupRemote: false, port: 25, program: ["prog"] },
    },
    {
      name: "only the first -- is dropped",
      args: ["--", "0", "25", "--", "prog"],
      want: { program: ["--", "prog"] },
    },
    {
      name: "a program word that looks like an option",
      args: ["0", "25", "-H"],
      want: { lookupRemote: true, program: ["-H"] },
    },
  ]);
});

Deno.test("parseServe() takes the last of -U, -u and -g, as tcpserver does", async (t) => {
  const env = { UID: "89", GID: "82" };
  const rows: [string[], [number | undefined, number | undefined]][] = [
    [["-u", "5", "-g", "6", "-U"], [89, 82]],
    [["-U", "-u", "5"], [5, 82]],
    [["-U", "-g", "6"], [89, 6]],
    [["-u", "5"], [5, undefined]],
  ];
  for (const [args, want] of rows) {
    await t.step(args.join(" "), () => {
      const got = serve([...args, ...TAIL], env);
      assert.deepEqual([got.uid, got.gid], want, `got ${got.uid}:${got.gid}`);
    });
  }
});

Deno.test("parseServe() -U without envuidgid says what is wrong and what to do", async (t) => {
  const rows: Array<[string, Env, string]> = [
    ["no UID nor GID", {}, 'got UID="" GID=""'],
    ["UID only", { UID: "89" }, 'got UID="89" GID=""'],
    ["GID only", { GID: "82" }, 'got UID="" GID="82"'],
    ["empty ones", { UID: "", GID: "" }, 'got UID="" GID=""'],
    ["a user name", { UID: "qmaild", GID: "82" }, 'got UID="qmaild" GID="82"'],
  ];
  for (const [name, env, got] of rows) {
    await t.step(name, () => {
      const e = assertUsageError(() => serve(["-U", ...TAIL], env));
      assert.equal(
        e.message,
        `-U wants UID and GID in the environment (run serve under envuidgid), ${got}`,
      );
    });
  }
});

Deno.test("parseServe() refuses --stress above 100 and unknown long options, naming them", () => {
  assertUsageError(() => serve(["--stress", "101", ...TAIL]), "--stress", '"101"');
  assertUsageError(() => serve(["--hlep", "0", "25", "prog"]), '"--hlep"');
  assertUsageError(() => serve(["--waitng", "50", ...TAIL]), '"--waitng"');
});

Deno.test("parseServe() takes any uid and gid the system has, not only counts up to a million", async (t) => {
  // uid_t is 32 bits; directory-service and user-namespace ids are often above 1000000.
  await table(t, [
    { name: "-u 1000001", args: ["-u", "1000001", ...TAIL], want: { uid: 1_000_001 } },
    { name: "-g 1786600500", args: ["-g", "1786600500", ...TAIL], want: { gid: 1_786_600_500 } },
    {
      name: "-U with UID and GID 2000000000",
      args: ["-U", ...TAIL],
      env: { UID: "2000000000", GID: "2000000000" },
      want: { uid: 2_000_000_000, gid: 2_000_000_000 },
    },
  ]);
});

Deno.test("parseServe() reads HOST: 0, IPv4 and IPv6", async (t) => {
  await table(t, [
    { name: "0 is 0.0.0.0", args: ["0", "25", "p"], want: { ip: ip("0.0.0.0") } },
    { name: "127.0.0.1", args: ["127.0.0.1", "25", "p"], want: { ip: ip("127.0.0.1") } },
    { name: "::", args: ["::", "25", "p"], want: { ip: ip("::") } },
    { name: "::1", args: ["::1", "25", "p"], want: { ip: ip("::1") } },
    { name: "2001:db8::25", args: ["2001:db8::25", "25", "p"], want: { ip: ip("2001:db8::25") } },
  ]);
});

Deno.test("parseHost() gives the address tcpserver would bind", async (t) => {
  const rows: [string, number, string][] = [
    ["0", 4, "0.0.0.0"],
    ["0.0.0.0", 4, "0.0.0.0"],
    ["192.0.2.7", 4, "192.0.2.7"],
    ["::", 6, "0:0:0:0:0:0:0:0"],
    ["::1", 6, "0:0:0:0:0:0:0:1"],
    ["2001:DB8::A", 6, "2001:db8:0:0:0:0:0:a"],
  ];
  for (const [text, family, want] of rows) {
    await t.step(text, () => {
      const got = parseHost(text);
      assert.equal(got.family, family);
      assert.equal(formatIp(got), want);
    });
  }
});

Deno.test("parseHost() refuses names and malformed addresses, quoting them", async (t) => {
  for (
    const text of [
      "localhost",
      "mx.example.com",
      "",
      "00",
      "1.2.3",
      "256.0.0.1",
      ":::",
      "0x0",
      " 0",
    ]
  ) {
    await t.step(JSON.stringify(text), () => {
      assertUsageError(() => parseHost(text), "HOST", `"${text}"`);
    });
  }
});

Deno.test("parsePort() reads a number or a tcp service of /etc/services", async (t) => {
  const rows: [string, number][] = [
    ["25", 25],
    ["0", 0],
    ["65535", 65535],
    ["02525", 2525],
    ["smtp", 25],
    ["mail", 25],
    ["domain", 53],
    ["submission", 587],
    ["submissions", 465],
    ["smtps", 465],
    ["urd", 465],
    ["tcpmux", 1],
    ["x-mail", 2626],
  ];
  for (const [text, want] of rows) {
    await t.step(text, () => {
      assert.equal(parsePort(text, SERVICES), want);
    });
  }
});

Deno.test("parsePort() refuses big numbers and services that are not tcp ones, quoting them", async (t) => {
  const rows: [string, string][] = [
    ["65536", "one more than the largest port"],
    ["99999", "five digits, too big"],
    ["123456", "six digits"],
    ["-1", "a negative number"],
    ["2.5", "a decimal"],
    ["", "empty"],
    ["nosuch", "an unknown service"],
    ["syslog", "a udp-only service"],
    ["old-smtp", "a service in a comment line"],
    ["comment", "a word of a comment"],
    ["tcp", "the protocol word"],
    ["25/tcp", "the port/protocol word"],
  ];
  for (const [text, name] of rows) {
    await t.step(`${name}: ${JSON.stringify(text)}`, () => {
      assertUsageError(() => parsePort(text, SERVICES), "PORT", `"${text}"`);
    });
  }
});

Deno.test("parsePort() without /etc/services takes numbers only", () => {
  assert.equal(parsePort("2525", ""), 2525);
  assertUsageError(() => parsePort("smtp", ""), "PORT", '"smtp"');
});

Deno.test("parsePort() refuses a service whose port in the file is not a port", () => {
  assertUsageError(() => parsePort("huge", "huge\t\t70000/tcp\n"), "PORT", '"huge"');
});

Deno.test("parseServe() reads PORT as a number or a service name", async (t) => {
  await table(t, [
    { name: "2525", args: ["0", "2525", "p"], want: { port: 2525 } },
    { name: "smtp", args: ["0", "smtp", "p"], want: { port: 25 } },
    { name: "the alias mail", args: ["0", "mail", "p"], want: { port: 25 } },
    {
      name: "0: any free port",
      args: ["-1", "127.0.0.1", "0", "p"],
      want: { port: 0, printPort: true },
    },
  ]);
});

Deno.test("parseServe() wants HOST, PORT and a program, saying which is missing", async (t) => {
  const rows: { name: string; args: string[]; missing: string }[] = [
    { name: "nothing", args: [], missing: "no HOST" },
    { name: "only options", args: ["-v", "-c", "5"], missing: "no HOST" },
    { name: "only HOST", args: ["0"], missing: "no PORT" },
    { name: "HOST PORT, no program", args: ["0", "25"], missing: "no program" },
    { name: "-- then HOST PORT", args: ["--", "0", "25"], missing: "no program" },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assertUsageError(() => serve(row.args), row.missing, SERVE_USAGE);
    });
  }
});

Deno.test("parseServe() refuses tcpserver's options that serve does not take, saying so", async (t) => {
  for (const letter of ["p", "r", "o", "O", "B", "4", "6", "I"]) {
    await t.step(`-${letter}`, () => {
      assertUsageError(() => serve([`-${letter}`, ...TAIL]), `"-${letter}"`, "not taken");
    });
  }
  await t.step("in a cluster, -vRp", () => {
    assertUsageError(() => serve(["-vRp", ...TAIL]), '"-p"', "not taken");
  });
  await t.step("-B with a banner", () => {
    assertUsageError(() => serve(["-B", "220 hi\r\n", ...TAIL]), '"-B"', "not taken");
  });
});

Deno.test("parseServe() refuses an unknown letter, naming it", async (t) => {
  const rows: [string, string[], string][] = [
    ["-z", ["-z", ...TAIL], '"-z"'],
    ["-T", ["-T", "5", ...TAIL], '"-T"'],
    ["in a cluster, -vRz", ["-vRz", ...TAIL], '"-z"'],
    ["after a screening flag, -Sk", ["-Sk", ...TAIL], '"-k"'],
  ];
  for (const [name, args, part] of rows) {
    await t.step(name, () => {
      assertUsageError(() => serve(args), "unknown option", part);
    });
  }
});

Deno.test("parseServe() wants a value after a value option, naming the option", async (t) => {
  const rows: [string, string][] = [
    ["-c", "-c"],
    ["-x", "-x"],
    ["-l", "-l"],
    ["-b", "-b"],
    ["-u", "-u"],
    ["-g", "-g"],
    ["-d", "-d"],
    ["-Sd", "-d"],
    ["-vf", "-f"],
    ["--waiting", "--waiting"],
    ["--stress", "--stress"],
    ["--stress-delay", "--stress-delay"],
    ["--store", "--store"],
  ];
  for (const [word, option] of rows) {
    await t.step(word, () => {
      assertUsageError(() => serve([word]), option, "needs a value");
    });
  }
});

Deno.test("parseServe() refuses bad counts, naming the option and quoting the value", async (t) => {
  const rows: { name: string; args: string[]; env?: Env; parts: string[] }[] = [
    { name: "-c 0", args: ["-c", "0"], parts: ["-c", '"0"'] },
    { name: "-c abc", args: ["-cabc"], parts: ["-c", '"abc"'] },
    { name: "-c -5", args: ["-c", "-5"], parts: ["-c", '"-5"'] },
    { name: "-c 1.5", args: ["-c", "1.5"], parts: ["-c", '"1.5"'] },
    { name: "-c 1e3", args: ["-c", "1e3"], parts: ["-c", '"1e3"'] },
    {
      name: "-c above the most",
      args: [`-c${MAX_COUNT + 1}`],
      parts: ["-c", `"${MAX_COUNT + 1}"`],
    },
    { name: "-c empty", args: ["-c", ""], parts: ["-c", '""'] },
    { name: "-b 0", args: ["-b0"], parts: ["-b", '"0"'] },
    { name: "-b x", args: ["-b", "x"], parts: ["-b", '"x"'] },
    { name: "-u name", args: ["-u", "qmaild"], parts: ["-u", '"qmaild"'] },
    { name: "-g -1", args: ["-g", "-1"], parts: ["-g", '"-1"'] },
    {
      name: "-u 4294967295, (uid_t) -1: setuid's no change",
      args: ["-u", "4294967295"],
      parts: ["-u", '"4294967295"'],
    },
    { name: "-g beyond 32 bits", args: ["-g", "4294967296"], parts: ["-g", '"4294967296"'] },
    { name: "--waiting 0", args: ["--waiting=0"], parts: ["--waiting", '"0"'] },
    { name: "--waiting x", args: ["--waiting", "x"], parts: ["--waiting", '"x"'] },
    { name: "--waiting empty", args: ["--waiting="], parts: ["--waiting", '""'] },
    { name: "--stress -1", args: ["--stress=-1"], parts: ["--stress", '"-1"'] },
    { name: "--stress 50.5", args: ["--stress=50.5"], parts: ["--stress", '"50.5"'] },
    {
      name: "--stress-delay 301",
      args: ["--stress-delay=301"],
      parts: ["--stress-delay", '"301"'],
    },
    { name: "--stress-delay 1.", args: ["--stress-delay=1."], parts: ["--stress-delay", '"1."'] },
    { name: "--stress-delay .5", args: ["--stress-delay=.5"], parts: ["--stress-delay", '".5"'] },
    {
      name: "--stress-delay -1",
      args: ["--stress-delay", "-1"],
      parts: ["--stress-delay", '"-1"'],
    },
    { name: "--stress-delay 1s", args: ["--stress-delay=1s"], parts: ["--stress-delay", '"1s"'] },
    { name: "-U without UID", args: ["-U"], env: { GID: "82" }, parts: ["UID", '""'] },
    { name: "-U without GID", args: ["-U"], env: { UID: "89" }, parts: ["GID", '""'] },
    {
      name: "-U with UID a name",
      args: ["-U"],
      env: { UID: "qmaild", GID: "82" },
      parts: ["UID", '"qmaild"'],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assertUsageError(() => serve([...row.args, ...TAIL], row.env), ...row.parts);
    });
  }
});

Deno.test("parseServe() refuses a bad HOST or PORT, quoting it", async (t) => {
  const rows: [string, string[], string[]][] = [
    ["a host name", ["localhost", "25", "p"], ["HOST", '"localhost"']],
    ["a malformed IPv4", ["1.2.3.256", "25", "p"], ["HOST", '"1.2.3.256"']],
    ["a port too big", ["0", "65536", "p"], ["PORT", '"65536"']],
    ["an unknown service", ["0", "nosuch", "p"], ["PORT", '"nosuch"']],
    ["a udp-only service", ["0", "syslog", "p"], ["PORT", '"syslog"']],
  ];
  for (const [name, args, parts] of rows) {
    await t.step(name, () => {
      assertUsageError(() => serve(args), ...parts);
    });
  }
});
