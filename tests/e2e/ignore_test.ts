/**
 * Log-only rollout, `--action ignore` (postscreen's `ignore`), in both modes:
 * every test runs and every delay is waited, but nobody is refused. An early
 * talker is handed on after its delay with its bytes unread, its line says
 * `action=ignore would=451`, and the memory counts its strike all the same,
 * so that a boxed client is handed on too (`would=421`), and enforcing later
 * starts from a warm memory.
 */
import assert from "node:assert/strict";
import {
  Client,
  E2E,
  FILTER,
  finalReplies,
  type Logged,
  MODES,
  type Rule,
  run,
  startDns,
  startServer,
} from "./harness.ts";

const RULES: Rule[] = [{ from: "127.0.0.2", env: { TCPREMOTEIP: "192.0.2.2" } }]; // mail.example.net

const EHLO = "EHLO early.example.org\r\n";

/** An early talker: sends EHLO unasked; returns what it got, once its session ended. */
async function talkEarly(server: Logged): Promise<{ text: string; pid: number; ms: number }> {
  const client = await Client.connect(server.port, "127.0.0.2");
  await client.send(EHLO);
  // The next program answers the EHLO it was handed unread, after the banner.
  await client.wait(() => finalReplies(client.text).length >= 2, "the banner and EHLO's reply");
  const ms = client.firstByteAt! - client.connectedAt;
  await client.send("QUIT\r\n");
  const text = await client.untilEnd();
  const pid = await server.pidOf(client.localPort);
  await server.endOf(pid);
  return { text, pid, ms };
}

for (const mode of MODES) {
  Deno.test(
    `${mode}: --action ignore refuses nobody, and remembers all the same`,
    E2E,
    async (t) => {
      const dir = await Deno.makeTempDir({ prefix: "smtp-delay-ignore-" });
      const store = `sqlite:${dir}/state.db`;
      const dns = await startDns();
      const server = await startServer(mode, {
        args: ["-S", "-d", "0.4", "-P", "0.4", "--strikes", "1", "--action", "ignore"],
        rules: RULES,
        env: { SMTPDELAY_DNS: dns.address, SMTPDELAY_STORE: store },
      });
      try {
        await t.step(
          "an early talker: its delay waited, handed on, its EHLO read by prog",
          async () => {
            const { text, pid, ms } = await talkEarly(server);
            assert.ok(ms >= 400, `the banner after ${ms} ms, want the delay (400 ms)`);
            assert.equal(
              text,
              "220 recorder ESMTP\r\n250-recorder\r\n250 PIPELINING\r\n221 bye\r\n",
            );
            assert.equal(
              new TextDecoder().decode((await server.record(pid))!.input),
              `${EHLO}QUIT\r\n`,
              "every byte, the early ones first",
            );
            assert.match(
              server.linesOf(pid)[0]!,
              / EARLY pid=\d+ ip=192\.0\.2\.2 tier=ptr .* action=ignore would=451 memory=- bytes=24 /,
            );
          },
        );

        await t.step("the strike was counted: boxed, yet handed on (would=421)", async () => {
          const shown = await run([...FILTER, "state", "--store", store, "show", "192.0.2.2"]);
          assert.match(shown.stdout, / boxes=1 box-until=20/, shown.stdout + shown.stderr);
          const client = await Client.connect(server.port, "127.0.0.2");
          await client.until(/^220 recorder ESMTP\r\n/);
          const ms = client.firstByteAt! - client.connectedAt;
          assert.ok(ms >= 400, `the banner after ${ms} ms, want the delay (400 ms)`);
          const pid = await server.pidOf(client.localPort);
          client.close();
          await server.endOf(pid);
          assert.match(
            server.linesOf(pid)[0]!,
            / REFUSED pid=\d+ ip=192\.0\.2\.2 tier=ptr ptr=mail\.example\.net lookup=found .* action=ignore would=421 memory=box$/,
          );
        });
      } finally {
        await server.stop();
        await dns.stop();
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}
