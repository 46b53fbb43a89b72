/**
 * The "220-" teaser (postscreen's greet banner), in both modes: a client of a
 * teased tier gets `220-TEXT` at once and the next program's own `220` after
 * the delay, one valid multi-line greeting; a client that answers the first
 * line is an early talker (451 with -S, the 451 ending the reply); rblsmtpd
 * after the filter completes the greeting with its own 220; and a real SMTP
 * server that is not ours (Debian's qpsmtpd) takes a message through it.
 */
import assert from "node:assert/strict";
import {
  Client,
  E2E,
  finalReplies,
  MODES,
  RECORDER,
  type Rule,
  run,
  startDns,
  startServer,
} from "./harness.ts";
import { delivered, QPSMTPD, qpsmtpdConfig } from "./qpsmtpd.ts";
import { EARLY_TEXT } from "../../src/reply.ts";

const RULES: Rule[] = [
  { from: "127.0.0.2", env: { TCPREMOTEIP: "192.0.2.2" } }, // mail.example.net: ptr
  { from: "127.0.0.3", env: { TCPREMOTEIP: "192.0.2.3" } }, // dsl-...pool.example.net: dynamic
];

const TEASER = "mx.example.org ESMTP, one moment";
const LINE = `220-${TEASER}\r\n`;
/** The delays: the dynamic tier's is long enough to tell the teaser from the banner. */
const ARGS = ["-d", "0.05", "-D", "0.5", "-P", "0.5", "--teaser", TEASER];

for (const mode of MODES) {
  Deno.test(`${mode}: the teaser, then the next program's 220`, E2E, async (t) => {
    const dns = await startDns();
    const server = await startServer(mode, {
      args: ["-S", ...ARGS],
      rules: RULES,
      env: { SMTPDELAY_DNS: dns.address },
    });
    try {
      await t.step("a dynamic client: 220- at once, 220 after the delay", async () => {
        const client = await Client.connect(server.port, "127.0.0.3");
        await client.until(/^220-/);
        await client.until(/220 recorder ESMTP\r\n/);
        // Timed from the teaser to the banner, not from the connect: in filter mode that would
        // count a Deno start, which a loaded machine can stretch past the delay.
        const gapMs = performance.now() - client.firstByteAt!;
        assert.equal(client.text, `${LINE}220 recorder ESMTP\r\n`);
        assert.ok(
          gapMs >= 250,
          `the teaser came ${gapMs} ms before the banner, not at the delay's start`,
        );
        await client.send("QUIT\r\n");
        await client.wait(() => finalReplies(client.text).includes("221 bye"), "221");
        client.close();
      });

      await t.step("a ptr client (not a teased tier): the banner alone", async () => {
        const client = await Client.connect(server.port, "127.0.0.2");
        await client.until(/220 recorder ESMTP\r\n/);
        assert.equal(client.text, "220 recorder ESMTP\r\n");
        client.close();
      });

      await t.step("a client that answers the teaser: 451, ending the reply", async () => {
        const from = server.lines.length;
        const client = await Client.connect(server.port, "127.0.0.3");
        await client.until(/^220-.*\r\n/);
        await client.send("EHLO bot.example.org\r\n");
        assert.equal(await client.untilEnd(), `${LINE}451 ${EARLY_TEXT}\r\n`);
        assert.match(
          await server.waitLog(/ EARLY /, "EARLY", from),
          / EARLY .* ip=192\.0\.2\.3 tier=dynamic .* action=451 .* data=EHLO\?bot\.example\.org\?\?$/,
        );
      });
    } finally {
      await server.stop();
      await dns.stop();
    }
  });
}

Deno.test(
  "filter without -S before rblsmtpd: rblsmtpd's 220 ends the teased greeting",
  E2E,
  async () => {
    const dns = await startDns();
    const server = await startServer("filter", {
      args: ARGS,
      rules: RULES,
      env: { SMTPDELAY_DNS: dns.address },
      last: ["rblsmtpd", RECORDER],
    });
    try {
      const client = await Client.connect(server.port, "127.0.0.3");
      await client.until(/^220-.*\r\n/);
      await client.send("EHLO bot.example.org\r\n");
      await client.until(/\r\n250 rblsmtpd\.local\r\n/); // rblsmtpd answers HELO and EHLO
      await client.send("MAIL FROM:<bot@example.org>\r\n"); // 250 too
      await client.send("RCPT TO:<postmaster@example.net>\r\n"); // 451
      await client.until(/\r\n451 [^\r\n]*\r\n/);
      await client.send("QUIT\r\n");
      const text = await client.untilEnd();
      assert.deepEqual(text.split("\r\n").slice(0, 5), [
        `220-${TEASER}`,
        "220 rblsmtpd.local",
        "250 rblsmtpd.local",
        "250 rblsmtpd.local",
        `451 ${EARLY_TEXT}`,
      ]);
    } finally {
      await server.stop();
      await dns.stop();
    }
  },
);

for (const mode of MODES) {
  Deno.test(`${mode}: swaks delivers through the teaser to Debian's qpsmtpd`, E2E, async () => {
    const dir = await Deno.makeTempDir({ prefix: "smtp-delay-teaser-" });
    const dns = await startDns();
    const conf = await qpsmtpdConfig(dir);
    const server = await startServer(mode, {
      args: ["-S", ...ARGS],
      rules: RULES,
      env: { SMTPDELAY_DNS: dns.address, QPSMTPD_CONFIG: conf },
      last: [QPSMTPD],
    });
    try {
      const swaks = await run([
        "swaks",
        "--server",
        `127.0.0.1:${server.port}`,
        "--local-interface",
        "127.0.0.3",
        "--from",
        "sender@example.org",
        "--to",
        "postmaster@example.net",
        "--body",
        "through the teaser",
        "--timeout",
        "10",
      ]);
      assert.equal(swaks.code, 0, swaks.stdout + swaks.stderr);
      assert.match(swaks.stdout, /^<- {2}220-mx\.example\.org ESMTP, one moment$/m);
      assert.match(swaks.stdout, /^<- {2}220 mx\.example\.net ESMTP qpsmtpd/m);
      assert.match(swaks.stdout, /^<- {2}250 Queued!/m);
      const mail = await delivered(dir);
      assert.equal(mail.length, 1);
      assert.ok(mail[0]!.includes("through the teaser"), mail[0]);
    } finally {
      await server.stop();
      await dns.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}
