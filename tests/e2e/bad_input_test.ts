/**
 * Bad input, in both modes. From the run file (options, variables): one
 * `fatal:` line and exit 100; the filter when tcpserver starts it for a
 * client, with not a byte written to the client (who had talked early);
 * `smtp-delay serve` at its start, with nothing on stdout (no port: it never
 * listened). A port in use: serve exits 111. From tcprules, for one client:
 * the filter exits 100 for that client; serve drops that connection with a
 * warning, nothing written to it, and goes on serving the others.
 */
import assert from "node:assert/strict";
import {
  Client,
  E2E,
  FILTER,
  type Logged,
  type Mode,
  MODES,
  RECORDER,
  type Rule,
  Server,
  startServer,
  TIMEOUT_MS,
} from "./harness.ts";
import { runFileEnv } from "../fixtures/source.ts";

/**
 * Connects, talks, and checks that the filter answered nothing and exited
 * 100 with one fatal line: `fatal` matches it, or is the whole line.
 */
async function refusesToStart(server: Logged, from: string, fatal: RegExp | string): Promise<void> {
  const client = await Client.connect(server.port, from);
  await client.send("EHLO early.example.org\r\n");
  const pid = await server.pidOf(client.localPort);
  assert.equal(await server.endOf(pid), 100, "exit 100");
  assert.equal(await client.untilEnd(), "", "nothing written to the client");
  assert.equal(await server.record(pid), undefined, "the next program never ran");
  const start = server.lines.findIndex((l) => l.startsWith(`tcpserver: ok ${pid} `));
  const end = server.lines.findIndex((l) => l.startsWith(`tcpserver: end ${pid} `));
  const fatals = server.lines.slice(start, end).filter((l) => l.startsWith("smtp-delay: "));
  assert.equal(fatals.length, 1, fatals.join("\n"));
  if (typeof fatal === "string") assert.equal(fatals[0], fatal);
  else assert.match(fatals[0]!, fatal);
}

/**
 * serve under an empty environment, with -1: killed as soon as it prints a
 * port (it listens: it took the command line), or after TIMEOUT_MS.
 */
async function serve(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<{ code: number | "still running"; stdout: string; stderr: string }> {
  const child = new Deno.Command(FILTER[0]!, {
    args: [...FILTER.slice(1), "serve", "-1", ...args],
    clearEnv: true,
    env: runFileEnv({ SMTPDELAY_STORE: "none", ...env }),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let killed = false;
  const kill = () => {
    if (killed) return;
    killed = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // exited meanwhile
    }
  };
  const timer = setTimeout(kill, TIMEOUT_MS);
  const stderr = new Response(child.stderr).text();
  let stdout = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    stdout += chunk;
    if (stdout.includes("\n")) kill();
  }
  const status = await child.status; // bounded: killed after TIMEOUT_MS
  clearTimeout(timer);
  return { code: killed ? "still running" : status.code, stdout, stderr: await stderr };
}

/** Options of the screening that both modes refuse, with the same fatal line. */
const SCREENING_CASES: Array<[string, string[], RegExp]> = [
  [
    "a delay that is not a number",
    ["-d", "abc"],
    /^smtp-delay: fatal: -d wants seconds from 0 to 300, got "abc"$/,
  ],
  ["a negative delay", ["-D", "-1"], /^smtp-delay: fatal: -D wants seconds .* got "-1"$/],
  ["a delay over 300 s", ["-P", "301"], /^smtp-delay: fatal: -P wants seconds .* got "301"$/],
  [
    "a percentage over 100",
    ["-N", "101"],
    /^smtp-delay: fatal: -N wants a percentage from 0 to 100, got "101"$/,
  ],
  ["a bad lookup deadline", ["-t", "1e3"], /^smtp-delay: fatal: -t wants seconds .* got "1e3"$/],
  [
    "a missing pattern file",
    ["-f", "/nonexistent/patterns"],
    /^smtp-delay: fatal: unable to read pattern file "\/nonexistent\/patterns": No such file or directory$/,
  ],
  [
    "a list without a dot",
    ["--dnsbl", "zen*3"],
    /^smtp-delay: fatal: --dnsbl wants ZONE\[=FILTER\]\[\*WEIGHT\] \(.*\), got "zen\*3"$/,
  ],
  [
    "a list's reply that is no refusal",
    ["--dnsbl", "zen.test", "--dnsbl-reply", "250 ok"],
    /^smtp-delay: fatal: --dnsbl-reply wants CODE TEXT, .* got "250 ok"$/,
  ],
  [
    "a memory limit beside --store none",
    ["--store", "none", "--max-conns", "5"],
    /^smtp-delay: fatal: --max-conns needs a store, and --store none has none$/,
  ],
];

/** Variables of the run file that both modes refuse. */
const VARIABLE_CASES: Array<[Record<string, string>, RegExp]> = [
  [
    { SMTPDELAY_DNS: "dns.example.net" },
    /^smtp-delay: fatal: SMTPDELAY_DNS wants IP or IP:PORT, got "dns\.example\.net"$/,
  ],
  [
    { SMTPDELAY_DNS: "127.0.0.1:99999" },
    /^smtp-delay: fatal: SMTPDELAY_DNS wants IP or IP:PORT, got "127\.0\.0\.1:99999"$/,
  ],
  [{ SMTPDELAY: "FOO" }, /^smtp-delay: fatal: SMTPDELAY wants JUSTDELAY or nothing, got "FOO"$/],
  [
    { SMTPDELAY_DNSBL: "zen.test list.test=127.0.0.[9..2]" },
    /^smtp-delay: fatal: SMTPDELAY_DNSBL wants ZONE.*got "list\.test=127\.0\.0\.\[9\.\.2\]"$/,
  ],
];

/** The filter's own: [what, options, the last program (undefined: the recorder), fatal]. */
const FILTER_CASES: Array<[string, string[], string[] | undefined, RegExp]> = [
  ...SCREENING_CASES.map(([what, options, fatal]): [string, string[], undefined, RegExp] => [
    what,
    options,
    undefined,
    fatal,
  ]),
  ["an unknown option", ["-x"], undefined, /^smtp-delay: fatal: unknown option "-x"$/],
  [
    "no next program",
    ["-S"],
    [],
    /^smtp-delay: fatal: no program to run \(usage: smtp-delay \[options\] prog \[arg \.\.\.\]; see smtp-delay --help\)$/,
  ],
];

for (const [what, options, last, fatal] of FILTER_CASES) {
  Deno.test(`bad run file: ${what} exits 100 before touching the client`, E2E, async () => {
    const server = await Server.start({
      chain: [...FILTER, ...options],
      ...(last ? { last } : {}),
    });
    try {
      await refusesToStart(server, "127.0.0.2", fatal);
    } finally {
      await server.stop();
    }
  });
}

Deno.test("bad pattern file: a line that is not a regex exits 100", E2E, async () => {
  const file = await Deno.makeTempFile();
  await Deno.writeTextFile(file, "# dynamic names\n^dsl-\n(unclosed\n");
  const server = await Server.start({ chain: [...FILTER, "-f", file] });
  try {
    await refusesToStart(
      server,
      "127.0.0.2",
      /^smtp-delay: fatal: pattern file ".*" line 3 is not a regular expression: "\(unclosed"$/,
    );
  } finally {
    await server.stop();
    await Deno.remove(file);
  }
});

Deno.test("bad run-file variables exit 100 before touching the client", E2E, async (t) => {
  for (const [env, fatal] of VARIABLE_CASES) {
    await t.step(JSON.stringify(env), async () => {
      const server = await Server.start({ chain: [...FILTER, "-S"], env });
      try {
        await refusesToStart(server, "127.0.0.2", fatal);
      } finally {
        await server.stop();
      }
    });
  }
});

const HOST_PORT_PROG = ["127.0.0.1", "0", RECORDER];

/** serve's: [what, the words after `serve -1`, run-file variables, fatal]. */
const SERVE_CASES: Array<[string, string[], Record<string, string>, RegExp]> = [
  ...SCREENING_CASES.map(([what, options, fatal]): [
    string,
    string[],
    Record<string, string>,
    RegExp,
  ] => [what, [...options, ...HOST_PORT_PROG], {}, fatal]),
  ...VARIABLE_CASES.map(([env, fatal]): [string, string[], Record<string, string>, RegExp] => [
    `the run-file variables ${JSON.stringify(env)}`,
    HOST_PORT_PROG,
    env,
    fatal,
  ]),
  ["an unknown option", ["-Z", ...HOST_PORT_PROG], {}, /^smtp-delay: fatal: unknown option "-Z"$/],
  ["no program", ["-S", "127.0.0.1", "0"], {}, /^smtp-delay: fatal: no program \(usage: /],
  ["no port", ["-S", "127.0.0.1"], {}, /^smtp-delay: fatal: no PORT \(usage: /],
  [
    "a HOST that is not an address",
    ["mail.example.org", "25", RECORDER],
    {},
    /^smtp-delay: fatal: HOST wants an IP address or 0, got "mail\.example\.org"$/,
  ],
  [
    "a port over 65535",
    ["127.0.0.1", "65536", RECORDER],
    {},
    /^smtp-delay: fatal: PORT wants a number from 0 to 65535 or a tcp service, got "65536"$/,
  ],
  ["-c 0", ["-c", "0", ...HOST_PORT_PROG], {}, /^smtp-delay: fatal: -c wants a whole number /],
  [
    "--waiting 0",
    ["--waiting", "0", ...HOST_PORT_PROG],
    {},
    /^smtp-delay: fatal: --waiting wants a whole number from 1 to /,
  ],
  [
    "--stress-delay abc",
    ["--stress-delay", "abc", ...HOST_PORT_PROG],
    {},
    /^smtp-delay: fatal: --stress-delay wants seconds from 0 to 300, got "abc"$/,
  ],
  [
    "-U without UID",
    ["-U", ...HOST_PORT_PROG],
    {},
    /^smtp-delay: fatal: -U wants UID and GID in the environment \(run serve under envuidgid\), got UID="" GID=""$/,
  ],
  [
    "a missing allowlist",
    ["--allow", "/nonexistent/allow", ...HOST_PORT_PROG],
    {},
    /^smtp-delay: fatal: unable to read allowlist "\/nonexistent\/allow": No such file or directory$/,
  ],
  ...["p", "r", "o", "O", "B", "4", "6", "I"].map((letter): [
    string,
    string[],
    Record<string, string>,
    RegExp,
  ] => [
    `tcpserver's -${letter}`,
    [`-${letter}`, ...HOST_PORT_PROG],
    {},
    new RegExp(
      `^smtp-delay: fatal: option "-${letter}" of tcpserver is not taken by smtp-delay serve$`,
    ),
  ]),
];

Deno.test(
  "bad serve command lines exit 100 with one fatal line, never listening",
  E2E,
  async (t) => {
    // Four at a time: each is a Deno start-up.
    const results: Array<Awaited<ReturnType<typeof serve>>> = [];
    for (let i = 0; i < SERVE_CASES.length; i += 4) {
      const batch = SERVE_CASES.slice(i, i + 4).map(([, args, env]) => serve(args, env));
      results.push(...await Promise.all(batch));
    }
    for (const [i, [what, , , fatal]] of SERVE_CASES.entries()) {
      await t.step(what, () => {
        const { code, stdout, stderr } = results[i]!;
        assert.equal(code, 100, `exit status; stderr: ${stderr}`);
        assert.equal(stdout, "", "no port printed: it never listened");
        const lines = stderr.split("\n");
        assert.equal(lines.pop(), "", "ends with a newline");
        assert.equal(lines.length, 1, stderr);
        assert.match(lines[0]!, fatal);
      });
    }
  },
);

Deno.test("a port in use: fatal 'unable to listen', exit 111", E2E, async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    const { code, stdout, stderr } = await serve(["127.0.0.1", String(port), RECORDER]);
    assert.equal(code, 111, stderr);
    assert.equal(stdout, "");
    assert.match(
      stderr,
      new RegExp(
        `^smtp-delay: fatal: unable to listen on 127\\.0\\.0\\.1:${port}: [^\\n]*Address already in use\\n$`,
      ),
    );
  } finally {
    taken.close();
  }
});

/** Bad per-client variables and why each is refused (the end of the fatal or warning line). */
const PER_CLIENT_CASES: Array<[Record<string, string>, string]> = [
  [{ SMTPDELAYd: "abc" }, `SMTPDELAYd wants seconds from 0 to 300, got "abc"`],
  [{ SMTPDELAYD: "1,5" }, `SMTPDELAYD wants seconds from 0 to 300, got "1,5"`],
  [{ SMTPDELAYP: "400" }, `SMTPDELAYP wants seconds from 0 to 300, got "400"`],
  [{ SMTPDELAYN: "200" }, `SMTPDELAYN wants a percentage from 0 to 100, got "200"`],
  [{ SMTPDELAY: "yes" }, `SMTPDELAY wants JUSTDELAY or nothing, got "yes"`],
  [{ TCPREMOTEIP: "192.0.2.999" }, `TCPREMOTEIP wants an IP address, got "192.0.2.999"`],
];

/**
 * What each mode does with a client whose variables are bad: the test's name,
 * the check, and the name of the step whose client has an empty one.
 */
const PER_CLIENT: Record<Mode, {
  title: string;
  refused: (server: Logged, from: string, why: string) => Promise<void>;
  passes: string;
}> = {
  filter: {
    title: "bad per-client variables from tcprules exit 100 for that client only",
    passes: "an empty variable counts as unset and the client passes",
    refused: (server, from, why) => refusesToStart(server, from, `smtp-delay: fatal: ${why}`),
  },
  serve: {
    title: "bad per-client variables from the rules drop that client only",
    passes: "an empty variable counts as unset; the server still serves",
    async refused(server, from, why) {
      const at = server.lines.length;
      const client = await Client.connect(server.port, from);
      await client.send("EHLO early.example.org\r\n");
      assert.equal(await client.untilEnd(), "", "nothing written to the client");
      const line = await server.waitLog(/^smtp-delay: /, "its line", at);
      assert.equal(
        line,
        `smtp-delay: warning: unable to screen ${from} (connection dropped): ${why}`,
      );
      assert.equal(await server.recorderRuns(), 0, "the next program never ran");
    },
  },
};

for (const mode of MODES) {
  const { title, refused, passes } = PER_CLIENT[mode];
  Deno.test(title, E2E, async (t) => {
    const rules: Rule[] = PER_CLIENT_CASES.map(([env], i) => ({ from: `127.0.1.${i + 1}`, env }));
    rules.push({ from: "127.0.1.100", env: { SMTPDELAYd: "" } }); // empty: unset
    const server = await startServer(mode, { args: ["-S", "-d", "0.05", "-P", "0.05"], rules });
    try {
      for (const [i, [env, why]] of PER_CLIENT_CASES.entries()) {
        await t.step(JSON.stringify(env), async () => {
          await refused(server, `127.0.1.${i + 1}`, why);
        });
      }
      await t.step(passes, async () => {
        const client = await Client.connect(server.port, "127.0.1.100");
        await client.until(/^220 recorder/);
        const pid = await server.pidOf(client.localPort);
        client.close();
        await server.endOf(pid);
        assert.equal((await server.record(pid))!.info.exe, RECORDER);
        if (mode === "serve") {
          assert.equal(server.lines.filter((l) => l.startsWith("smtp-delay: fatal")).length, 0);
        }
      });
    } finally {
      await server.stop();
    }
    if (mode === "serve") assert.equal((await server.exited).code, 0, "serve exits 0 at SIGTERM");
  });
}
