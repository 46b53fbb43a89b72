/**
 * What the program says of itself and of settings that would do nothing:
 * --help and --version; a warning when RBLSMTPD goes to a chain without
 * rblsmtpd (without -S, nothing else refuses the client); a warning when
 * tcprules gives a memory setting to a client that has no store.
 */
import assert from "node:assert/strict";
import { VERSION } from "../../src/config.ts";
import {
  banner,
  Client,
  E2E,
  FILTER,
  RECORDER,
  type Rule,
  run,
  Server,
  ServeServer,
} from "./harness.ts";

Deno.test("--help and --version print on stdout and exit 0", E2E, async (t) => {
  const rows: { args: string[]; stdout: RegExp }[] = [
    {
      args: ["--help"],
      stdout: /^smtp-delay [0-9.]+: holds the SMTP banner back[^]*--max-conns N/,
    },
    { args: ["-S", "--help"], stdout: /^smtp-delay [0-9.]+: /m },
    { args: ["--version"], stdout: new RegExp(`^smtp-delay ${VERSION.replaceAll(".", "\\.")}\n$`) },
    { args: ["state", "--help"], stdout: /^usage: smtp-delay \[options\] prog/m },
    { args: ["serve", "--help"], stdout: /^serve takes tcpserver's -1 -c N/m },
    { args: ["serve", "-v", "--version"], stdout: /^smtp-delay [0-9.]+\n$/ },
  ];
  for (const row of rows) {
    await t.step(row.args.join(" "), async () => {
      const got = await run([...FILTER, ...row.args]);
      assert.equal(got.code, 0, got.stderr);
      assert.equal(got.stderr, "");
      assert.match(got.stdout, row.stdout);
    });
  }
});

const RULES: Rule[] = [
  { from: "127.0.0.2", env: { TCPREMOTEIP: "192.0.2.2", TCPREMOTEHOST: "mx.example.org" } },
  {
    from: "127.0.0.3",
    env: { TCPREMOTEIP: "192.0.2.3", TCPREMOTEHOST: "mx.example.org", SMTPDELAY_MAX_CONNS: "5" },
  },
];

/** An early talker; returns the filter's lines for its pid. */
async function talkEarly(server: Server): Promise<string[]> {
  const client = await Client.connect(server.port, "127.0.0.2");
  await client.send("EHLO early.example.org\r\n");
  const pid = await server.pidOf(client.localPort);
  await server.waitLog(new RegExp(`^smtp-delay: info: EARLY pid=${pid} `));
  client.close(); // the next program reads on until the client goes
  await server.endOf(pid);
  return server.linesOf(pid);
}

Deno.test("without -S, RBLSMTPD for a chain without rblsmtpd: one warning line", E2E, async (t) => {
  for (
    const [name, last, warns] of [
      ["the recorder next: a warning", [RECORDER], true],
      ["rblsmtpd next: no warning", ["rblsmtpd", RECORDER], false],
    ] as const
  ) {
    await t.step(name, async () => {
      const server = await Server.start({
        chain: [...FILTER, "-d", "0.3"],
        rules: RULES,
        last,
      });
      try {
        const lines = await talkEarly(server);
        assert.match(lines[0]!, / EARLY .* action=rblsmtpd /, lines.join("\n"));
        const warning = `smtp-delay: warning: without -S, early talkers go on to ${last[0]} ` +
          "with RBLSMTPD set, and only rblsmtpd acts on it (put rblsmtpd after smtp-delay, " +
          "or use -S)";
        assert.equal(server.lines.includes(warning), warns, server.lines.join("\n"));
      } finally {
        await server.stop();
      }
    });
  }
});

Deno.test(
  "a memory variable from tcprules for a client without a store: a warning, and it passes",
  E2E,
  async () => {
    const server = await Server.start({ chain: [...FILTER, "-S", "-d", "0.05"], rules: RULES });
    try {
      const client = await Client.connect(server.port, "127.0.0.3");
      await client.until(/^220 recorder/);
      const pid = await server.pidOf(client.localPort);
      client.close();
      await server.endOf(pid);
      assert.ok(
        server.lines.includes(
          "smtp-delay: warning: SMTPDELAY_MAX_CONNS does nothing without a store " +
            "(SMTPDELAY_STORE none)",
        ),
        server.lines.join("\n"),
      );
      assert.match(server.linesOf(pid)[0]!, / PASS .* memory=off$/);
    } finally {
      await server.stop();
    }
  },
);

Deno.test("serve says both at start, and a rule's memory variable once", E2E, async (t) => {
  const server = await ServeServer.start({ args: ["-H", "-d", "0.05"], rules: RULES });
  try {
    await t.step("without -S and without rblsmtpd: one warning at start", () => {
      const warning = `smtp-delay: warning: without -S, early talkers go on to ${RECORDER} ` +
        "with RBLSMTPD set, and only rblsmtpd acts on it (put rblsmtpd after smtp-delay, " +
        "or use -S)";
      assert.equal(server.lines.filter((l) => l === warning).length, 1, server.lines.join("\n"));
    });
    await t.step("SMTPDELAY_MAX_CONNS for clients without a store: one warning", async () => {
      for (let i = 0; i < 2; i++) await banner(server, "127.0.0.3");
      const warning = "smtp-delay: warning: SMTPDELAY_MAX_CONNS does nothing without a store " +
        "(SMTPDELAY_STORE none)";
      assert.equal(server.lines.filter((l) => l === warning).length, 1, server.lines.join("\n"));
    });
  } finally {
    await server.stop();
  }
});
