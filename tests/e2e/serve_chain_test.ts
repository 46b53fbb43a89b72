/**
 * `smtp-delay serve` before rblsmtpd (no -S): serve sets RBLSMTPD and starts
 * rblsmtpd on the client's socket, the early talker's bytes unread, and
 * rblsmtpd does the talking. With -S, serve answers the -N refusal itself.
 */
import assert from "node:assert/strict";
import {
  Client,
  finalReplies,
  messageBody,
  patient,
  RECORDER,
  type Rule,
  ServeServer,
  startDns,
} from "./harness.ts";

const E2E = { sanitizeOps: false, sanitizeResources: false };

const RULES: Rule[] = [
  { from: "127.0.0.2", env: { TCPREMOTEIP: "192.0.2.2" } }, // mail.example.net
  { from: "127.0.0.4", env: { TCPREMOTEIP: "192.0.2.4" } }, // no PTR
  { from: "127.0.0.5", env: { TCPREMOTEIP: "192.0.2.2", RBLSMTPD: "" } }, // allowlisted in rblsmtpd
  { from: "127.0.0.6", env: { TCPREMOTEIP: "192.0.2.4", SMTPDELAY: "JUSTDELAY" } },
];

const EARLY = "You talked before my greeting; try again later (#4.5.0)";
const REFUSED = "No reverse DNS for your address; try again later (#4.7.1)";

/** Talks to rblsmtpd as an early talker would, after its EHLO was sent unasked. */
async function rblsmtpdDialogue(client: Client): Promise<string[]> {
  await client.wait(() => finalReplies(client.text).length >= 2, "220 and the EHLO's 250");
  await client.send("MAIL FROM:<a@example.org>\r\n");
  await client.wait(() => finalReplies(client.text).length >= 3, "MAIL's reply");
  await client.send("RCPT TO:<b@example.net>\r\n");
  await client.wait(() => finalReplies(client.text).length >= 4, "RCPT's reply");
  await client.send("QUIT\r\n");
  await client.untilClosed();
  return finalReplies(client.text);
}

Deno.test("smtp-delay serve before rblsmtpd (no -S)", E2E, async (t) => {
  const dns = await startDns();
  const server = await ServeServer.start({
    args: ["-H", "-d", "0.1", "-P", "0.3", "-N", "100"],
    rules: RULES,
    env: { SMTPDELAY_DNS: dns.address },
    last: ["rblsmtpd", RECORDER],
  });
  try {
    await t.step(
      "an early talker's bytes reach rblsmtpd unread, and rblsmtpd refuses it",
      async () => {
        const client = await Client.connect(server.port, "127.0.0.2");
        await client.send("EHLO early.example.org\r\n");
        const replies = await rblsmtpdDialogue(client);
        assert.deepEqual(replies, [
          "220 rblsmtpd.local", // rblsmtpd's greeting
          "250 rblsmtpd.local", // its answer to the EHLO serve left unread
          "250 rblsmtpd.local",
          `451 ${EARLY}`,
          "221 rblsmtpd.local",
        ]);
        const pid = await server.pidOf(client.localPort);
        assert.equal(await server.endOf(pid), 0);
        assert.equal(await server.record(pid), undefined, "qmail-smtpd never ran");
        assert.match(
          server.linesOf(pid).join("\n"),
          new RegExp(
            `^smtp-delay: info: EARLY pid=${pid} ip=192\\.0\\.2\\.2 .* action=rblsmtpd memory=off ` +
              `bytes=24 data=EHLO\\?early\\.example\\.org\\?\\?$`,
          ),
        );
        assert.ok(
          server.lines.some((l) => l.startsWith(`rblsmtpd: 192.0.2.2 pid ${pid}: 451 You talked`)),
          server.lines.join("\n"),
        );
      },
    );

    await t.step("-N 100 turns a client with no PTR over to rblsmtpd's 451", async () => {
      const client = await Client.connect(server.port, "127.0.0.4");
      await client.until(/^220 rblsmtpd\.local\r\n/);
      await client.send("EHLO x.example.org\r\n");
      const replies = await rblsmtpdDialogue(client);
      assert.equal(replies[3], `451 ${REFUSED}`);
      const pid = await server.pidOf(client.localPort);
      await server.endOf(pid);
      assert.equal(await server.record(pid), undefined);
      assert.match(
        server.linesOf(pid)[0]!,
        new RegExp(
          `^smtp-delay: info: REFUSED pid=${pid} ip=192\\.0\\.2\\.4 tier=noptr .* action=rblsmtpd memory=off$`,
        ),
      );
    });

    await t.step("a patient client rblsmtpd lets through reaches qmail-smtpd intact", async () => {
      const client = await Client.connect(server.port, "127.0.0.5");
      const sent = await patient(client, messageBody(5000, 7));
      const pid = await server.pidOf(client.localPort);
      assert.equal(await server.endOf(pid), 0);
      const handed = (await server.record(pid))!;
      assert.deepEqual(handed.input, sent);
      assert.equal(handed.info.exe, RECORDER);
      assert.equal(handed.info.pid, String(pid), "rblsmtpd exec'd it in the child serve started");
      assert.equal(handed.info.ppid, String(server.pid));
    });

    await t.step("SMTPDELAY=JUSTDELAY delays, skips -N and sets RBLSMTPD empty", async () => {
      const client = await Client.connect(server.port, "127.0.0.6");
      await patient(client, messageBody(10, 8));
      const pid = await server.pidOf(client.localPort);
      await server.endOf(pid);
      const env = (await server.record(pid))!.env;
      assert.equal(env.RBLSMTPD, "");
      assert.equal(env.SMTPDELAY_TIER, "noptr");
      assert.ok(Number(env.SMTPDELAY_WAITED) >= 0.3);
      assert.match(
        server.linesOf(pid)[0]!,
        / PASS .* delay=0\.300 .* action=justdelay memory=off$/,
      );
    });
  } finally {
    await server.stop();
    await dns.stop();
  }
});

Deno.test("smtp-delay serve -S -N 100 answers 421 itself; no process starts", E2E, async () => {
  const dns = await startDns();
  const server = await ServeServer.start({
    args: ["-H", "-S", "-P", "0.3", "-N", "100"],
    rules: RULES,
    env: { SMTPDELAY_DNS: dns.address },
  });
  try {
    const client = await Client.connect(server.port, "127.0.0.4");
    assert.equal(await client.untilClosed(), `421 ${REFUSED}\r\n`);
    const line = await server.waitLog(/^smtp-delay: info: REFUSED /);
    assert.match(
      line,
      /^smtp-delay: info: REFUSED pid=0 ip=192\.0\.2\.4 tier=noptr ptr=- lookup=none delay=0\.300 waited=0\.[0-9]{3} action=421 memory=off$/,
    );
    assert.equal(await server.recorderRuns(), 0);
    assert.ok(!server.lines.some((l) => l.startsWith("tcpserver: ok ")), server.lines.join("\n"));
  } finally {
    await server.stop();
    await dns.stop();
  }
});
