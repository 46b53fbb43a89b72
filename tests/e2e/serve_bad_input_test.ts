/**
 * Bad input to `smtp-delay serve`. From the command line or the run file's
 * environment: one `fatal:` line, exit 100, nothing on stdout (no port: it
 * never listened). A port in use: exit 111. From the rules, for one client:
 * that connection is dropped with a warning, nothing written to it, and the
 * server goes on serving the others.
 */
import assert from "node:assert/strict";
import { Client, FILTER, RECORDER, type Rule, ServeServer, TIMEOUT_MS } from "./harness.ts";

const E2E = { sanitizeOps: false, sanitizeResources: false };

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
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      DENO_NO_UPDATE_CHECK: "1",
      NO_COLOR: "1",
      SMTPDELAY_STORE: "none",
      ...env,
    },
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

const HOST_PORT_PROG = ["127.0.0.1", "0", RECORDER];

const CASES: Array<[string, string[], Record<string, string>, RegExp]> = [
  [
    "a delay that is not a number",
    ["-d", "abc", ...HOST_PORT_PROG],
    {},
    /^smtp-delay: fatal: -d wants seconds from 0 to 300, got "abc"$/,
  ],
  [
    "a percentage over 100",
    ["-N", "101", ...HOST_PORT_PROG],
    {},
    /^smtp-delay: fatal: -N wants a percentage from 0 to 100, got "101"$/,
  ],
  ["an unknown option", ["-Z", ...HOST_PORT_PROG], {}, /^smtp-delay: fatal: Unknown option "-Z"$/],
  ["no program", ["-S", "127.0.0.1", "0"], {}, /^smtp-delay: fatal: No program \(usage: /],
  ["no port", ["-S", "127.0.0.1"], {}, /^smtp-delay: fatal: No PORT \(usage: /],
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
    /^smtp-delay: fatal: UID \(for -U\) wants .*, got ""$/,
  ],
  [
    "a run-file SMTPDELAY_DNS that is not an address",
    HOST_PORT_PROG,
    { SMTPDELAY_DNS: "dns.example.net" },
    /^smtp-delay: fatal: SMTPDELAY_DNS wants IP or IP:PORT, got "dns\.example\.net"$/,
  ],
  [
    "a missing pattern file",
    ["-f", "/nonexistent/patterns", ...HOST_PORT_PROG],
    {},
    /^smtp-delay: fatal: Unable to read pattern file "\/nonexistent\/patterns": /,
  ],
  [
    "a missing allowlist",
    ["--allow", "/nonexistent/allow", ...HOST_PORT_PROG],
    {},
    /^smtp-delay: fatal: Unable to read allowlist "\/nonexistent\/allow": /,
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
      `^smtp-delay: fatal: Option "-${letter}" of tcpserver is not taken by smtp-delay serve$`,
    ),
  ]),
];

Deno.test(
  "bad serve command lines exit 100 with one fatal line, never listening",
  E2E,
  async (t) => {
    // Four at a time: each is a Deno start-up.
    const results: Array<Awaited<ReturnType<typeof serve>>> = [];
    for (let i = 0; i < CASES.length; i += 4) {
      const batch = CASES.slice(i, i + 4).map(([, args, env]) => serve(args, env));
      results.push(...await Promise.all(batch));
    }
    for (const [i, [what, , , fatal]] of CASES.entries()) {
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

Deno.test("bad per-client variables from the rules drop that client only", E2E, async (t) => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ SMTPDELAYd: "abc" }, `SMTPDELAYd wants seconds from 0 to 300, got "abc"`],
    [{ SMTPDELAYD: "1,5" }, `SMTPDELAYD wants seconds from 0 to 300, got "1,5"`],
    [{ SMTPDELAYP: "400" }, `SMTPDELAYP wants seconds from 0 to 300, got "400"`],
    [{ SMTPDELAYN: "200" }, `SMTPDELAYN wants a percentage from 0 to 100, got "200"`],
    [{ SMTPDELAY: "yes" }, `SMTPDELAY wants JUSTDELAY or nothing, got "yes"`],
    [{ TCPREMOTEIP: "192.0.2.999" }, `TCPREMOTEIP wants an IP address, got "192.0.2.999"`],
  ];
  const rules: Rule[] = cases.map(([env], i) => ({ from: `127.0.1.${i + 1}`, env }));
  rules.push({ from: "127.0.1.100", env: { SMTPDELAYd: "" } }); // empty: unset
  const server = await ServeServer.start({ args: ["-H", "-S", "-d", "0.05", "-P", "0.05"], rules });
  try {
    for (const [i, [env, why]] of cases.entries()) {
      await t.step(JSON.stringify(env), async () => {
        const from = server.lines.length;
        const client = await Client.connect(server.port, `127.0.1.${i + 1}`);
        await client.send("EHLO early.example.org\r\n");
        assert.equal(await client.untilClosed(), "", "nothing written to the client");
        const line = await server.waitLog(/^smtp-delay: /, "its line", from);
        assert.equal(
          line,
          `smtp-delay: warning: dropping connection from 127.0.1.${i + 1}: ${why}`,
        );
        assert.equal(await server.recorderRuns(), 0, "the next program never ran");
      });
    }
    await t.step("an empty variable counts as unset; the server still serves", async () => {
      const client = await Client.connect(server.port, "127.0.1.100");
      await client.until(/^220 recorder/);
      const pid = await server.pidOf(client.localPort);
      client.close();
      await server.endOf(pid);
      assert.equal((await server.record(pid))!.info.exe, RECORDER);
      assert.equal(server.lines.filter((l) => l.startsWith("smtp-delay: fatal")).length, 0);
    });
  } finally {
    await server.stop();
  }
  assert.equal((await server.exited).code, 0, "serve exits 0 at SIGTERM");
});
