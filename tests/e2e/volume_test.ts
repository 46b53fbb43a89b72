/**
 * A high-volume sender, as a real MTA sends (Postfix's defaults: one
 * connection per message, a few at once): once it has passed, the memory
 * never slows it beyond its tier's delay, however many connections it makes
 * in the rate window. Both modes, the default memory (SQLite, --rate 30 in
 * 60 s), every message handed on byte for byte.
 */
import assert from "node:assert/strict";
import {
  Client,
  E2E,
  type Logged,
  messageBody,
  MODES,
  patient,
  type Rule,
  startDns,
  startServer,
} from "./harness.ts";

const RULES: Rule[] = [{ from: "127.0.0.2", env: { TCPREMOTEIP: "192.0.2.2" } }]; // mail.example.net

/** More connections than the default --rate (30) allows a stranger in its window. */
const MESSAGES = 45;
/** Deliveries at once, as an MTA's parallel deliveries to one destination. */
const AT_ONCE = 3;

/** One message in its own connection; checks what the next program read. */
async function deliver(server: Logged, n: number): Promise<void> {
  const client = await Client.connect(server.port, "127.0.0.2");
  const sent = await patient(client, messageBody(2048, n));
  await client.untilEnd();
  const pid = await server.pidOf(client.localPort);
  await server.endOf(pid);
  assert.deepEqual((await server.record(pid))!.input, sent, `message ${n}: every byte`);
}

for (const mode of MODES) {
  Deno.test(
    `${mode}: a sender that keeps passing is never slowed for its volume`,
    E2E,
    async () => {
      const dir = await Deno.makeTempDir({ prefix: "smtp-delay-volume-" });
      const dns = await startDns();
      const server = await startServer(mode, {
        args: ["-S", "-d", "0.05", "-D", "0.5", "-P", "0.5"],
        rules: RULES,
        env: { SMTPDELAY_DNS: dns.address, SMTPDELAY_STORE: `sqlite:${dir}/state.db` },
      });
      try {
        let next = 0;
        await Promise.all(
          Array.from({ length: AT_ONCE }, async () => {
            while (next < MESSAGES) await deliver(server, next++);
          }),
        );
        const passes = server.lines.filter((l) => / PASS .* ip=192\.0\.2\.2 /.test(l));
        assert.equal(passes.length, MESSAGES, server.lines.join("\n"));
        for (const line of passes) {
          assert.match(line, / tier=ptr .* delay=0\.050 .* memory=(-|passed)$/, line);
        }
        assert.ok(passes.filter((l) => l.endsWith(" memory=passed")).length >= MESSAGES - AT_ONCE);
      } finally {
        await server.stop();
        await dns.stop();
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}
