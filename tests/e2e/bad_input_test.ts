/**
 * Bad input, from the run file or from tcprules: one `fatal:` line, exit 100,
 * and not a byte written to the client (who had talked early).
 */
import assert from "node:assert/strict";
import { Client, FILTER, RECORDER, type Rule, Server } from "./harness.ts";

const E2E = { sanitizeOps: false, sanitizeResources: false };

/** Connects, talks, and checks that the filter answered nothing and exited 100. */
async function refusesToStart(server: Server, from: string, fatal: RegExp): Promise<void> {
  const client = await Client.connect(server.port, from);
  await client.send("EHLO early.example.org\r\n");
  const pid = await server.pidOf(client.localPort);
  assert.equal(await server.endOf(pid), 100, "exit 100");
  assert.equal(await client.untilClosed(), "", "nothing written to the client");
  assert.equal(await server.record(pid), undefined, "the next program never ran");
  const start = server.lines.findIndex((l) => l.startsWith(`tcpserver: ok ${pid} `));
  const end = server.lines.findIndex((l) => l.startsWith(`tcpserver: end ${pid} `));
  const fatals = server.lines.slice(start, end).filter((l) => l.startsWith("smtp-delay: "));
  assert.equal(fatals.length, 1, fatals.join("\n"));
  assert.match(fatals[0]!, fatal);
}

const OPTION_CASES: Array<[string, string[], string[] | undefined, RegExp]> = [
  [
    "a delay that is not a number",
    ["-d", "abc"],
    undefined,
    /^smtp-delay: fatal: -d wants seconds from 0 to 300, got "abc"$/,
  ],
  [
    "a negative delay",
    ["-D", "-1"],
    undefined,
    /^smtp-delay: fatal: -D wants seconds .* got "-1"$/,
  ],
  [
    "a delay over 300 s",
    ["-P", "301"],
    undefined,
    /^smtp-delay: fatal: -P wants seconds .* got "301"$/,
  ],
  [
    "a percentage over 100",
    ["-N", "101"],
    undefined,
    /^smtp-delay: fatal: -N wants a percentage from 0 to 100, got "101"$/,
  ],
  [
    "a bad lookup deadline",
    ["-t", "1e3"],
    undefined,
    /^smtp-delay: fatal: -t wants seconds .* got "1e3"$/,
  ],
  ["an unknown option", ["-x"], undefined, /^smtp-delay: fatal: Unknown option "-x"$/],
  ["no next program", ["-S"], [], /^smtp-delay: fatal: No program to run \(usage: smtp-delay /],
  [
    "a missing pattern file",
    ["-f", "/nonexistent/patterns"],
    undefined,
    /^smtp-delay: fatal: Unable to read pattern file "\/nonexistent\/patterns": /,
  ],
];

for (const [what, options, last, fatal] of OPTION_CASES) {
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
      /^smtp-delay: fatal: Pattern file ".*" line 3 is not a regular expression: "\(unclosed"$/,
    );
  } finally {
    await server.stop();
    await Deno.remove(file);
  }
});

Deno.test("bad run-file variables exit 100 before touching the client", E2E, async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [
      { SMTPDELAY_DNS: "dns.example.net" },
      /SMTPDELAY_DNS wants IP or IP:PORT, got "dns\.example\.net"$/,
    ],
    [
      { SMTPDELAY_DNS: "127.0.0.1:99999" },
      /SMTPDELAY_DNS wants IP or IP:PORT, got "127\.0\.0\.1:99999"$/,
    ],
    [{ SMTPDELAY: "FOO" }, /SMTPDELAY wants JUSTDELAY or nothing, got "FOO"$/],
  ];
  for (const [env, fatal] of cases) {
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

Deno.test(
  "bad per-client variables from tcprules exit 100 for that client only",
  E2E,
  async (t) => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ SMTPDELAYd: "abc" }, /SMTPDELAYd wants seconds from 0 to 300, got "abc"$/],
      [{ SMTPDELAYD: "1,5" }, /SMTPDELAYD wants seconds .* got "1,5"$/],
      [{ SMTPDELAYP: "400" }, /SMTPDELAYP wants seconds .* got "400"$/],
      [{ SMTPDELAYN: "200" }, /SMTPDELAYN wants a percentage .* got "200"$/],
      [{ SMTPDELAY: "yes" }, /SMTPDELAY wants JUSTDELAY or nothing, got "yes"$/],
      [{ TCPREMOTEIP: "192.0.2.999" }, /TCPREMOTEIP wants an IP address, got "192\.0\.2\.999"$/],
    ];
    const rules: Rule[] = cases.map(([env], i) => ({ from: `127.0.1.${i + 1}`, env }));
    rules.push({ from: "127.0.1.100", env: { SMTPDELAYd: "" } }); // empty: unset
    const server = await Server.start({
      chain: [...FILTER, "-S", "-d", "0.05", "-P", "0.05"],
      rules,
    });
    try {
      for (const [i, [env, fatal]] of cases.entries()) {
        await t.step(JSON.stringify(env), async () => {
          await refusesToStart(server, `127.0.1.${i + 1}`, fatal);
        });
      }
      await t.step("an empty variable counts as unset and the client passes", async () => {
        const client = await Client.connect(server.port, "127.0.1.100");
        await client.until(/^220 recorder/);
        const pid = await server.pidOf(client.localPort);
        client.close();
        await server.endOf(pid);
        assert.equal((await server.record(pid))!.info.exe, RECORDER);
      });
    } finally {
      await server.stop();
    }
  },
);
