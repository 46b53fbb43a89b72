/**
 * The memory on Redis: two tcpservers (two "hosts") share one real
 * redis-server; a dead Redis costs a connection nothing but its memory.
 */
import assert from "node:assert/strict";
import { baselineFds, Client, E2E, FILTER, type Rule, run, Server, startRedis } from "./harness.ts";

const RULES: Rule[] = [
  { from: "127.0.0.5", env: { TCPREMOTEIP: "192.0.2.5", TCPREMOTEHOST: "mx.example.org" } },
  { from: "127.0.0.6", env: { TCPREMOTEIP: "192.0.2.6", TCPREMOTEHOST: "mx6.example.org" } },
];

/** Connects, waits for the first line, closes; returns it, the seconds it took and the pid. */
async function firstLine(server: Server, from: string) {
  const client = await Client.connect(server.port, from);
  await client.wait(() => client.text.includes("\r\n") || client.ended, "a first line");
  const pid = await server.pidOf(client.localPort);
  client.close();
  await server.endOf(pid);
  return { text: client.text, seconds: (client.firstByteAt! - client.connectedAt) / 1000, pid };
}

Deno.test("memory on Redis shared by two hosts", E2E, async (t) => {
  const redis = await startRedis();
  // Counting under a burst of 20 Deno start-ups on 2 cores: a generous store deadline.
  const env = { SMTPDELAY_STORE: redis.url, SMTPDELAY_STORE_TIMEOUT: "3" };
  const chain = [...FILTER, "-S", "-d", "0.05", "-P", "0.6", "--max-rate", "10"];
  const hostA = await Server.start({ chain, rules: RULES, env });
  const hostB = await Server.start({ chain, rules: RULES, env });
  try {
    await t.step(
      "20 connections at once over both hosts, --max-rate 10: exactly 10 pass",
      async () => {
        const clients = await Promise.all(
          Array.from(
            { length: 20 },
            (_, i) => Client.connect((i % 2 ? hostA : hostB).port, "127.0.0.6"),
          ),
        );
        const texts = await Promise.all(clients.map(async (c) => {
          await c.wait(() => c.text.includes("\r\n"), "a first line");
          c.close();
          return c.text;
        }));
        const passed = texts.filter((x) => x.startsWith("220 recorder")).length;
        const refused = texts.filter((x) => x.startsWith("421 Too many connections")).length;
        assert.deepEqual([passed, refused], [10, 10], texts.join(""));
        const lines = [...hostA.lines, ...hostB.lines].join("\n");
        assert.doesNotMatch(lines, /memory=down|warning/, "no count was lost");
      },
    );

    await t.step("a strike on one host is a penalty on the other", async () => {
      const early = await Client.connect(hostA.port, "127.0.0.5");
      await early.send("EHLO early.example.org\r\n");
      assert.match(await early.untilEnd(), /^451 /);
      await hostA.endOf(await hostA.pidOf(early.localPort));
      const next = await firstLine(hostB, "127.0.0.5");
      assert.match(next.text, /^220 recorder/);
      const handed = (await hostB.record(next.pid))!;
      assert.equal(handed.info.fds, await baselineFds(), "the Redis socket is not left open");
      assert.ok(next.seconds >= 0.6, `banner after ${next.seconds} s, want the noptr delay`);
      assert.match(hostB.linesOf(next.pid)[0]!, / PASS .* delay=0\.600 .* memory=penalty$/);
    });

    await t.step("smtp-delay state works on Redis too: list, show, forgive", async () => {
      const state = (...args: string[]) =>
        run([...FILTER, "state", "--store", redis.url, ...args], { DENO_NO_UPDATE_CHECK: "1" });
      const list = await state("list");
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /^192\.0\.2\.5 .* strikes=1 /m);
      assert.match((await state("show", "192.0.2.6")).stdout, /^192\.0\.2\.6 .* arrivals=20 /);
      assert.equal((await state("forgive", "192.0.2.5")).stdout, "192.0.2.5 forgiven\n");
      assert.equal((await state("list")).stdout, "");
    });

    await t.step("Redis killed: clients pass without memory, with a warning, no hang", async () => {
      await redis.stop();
      const { text, seconds, pid } = await firstLine(hostA, "127.0.0.5");
      assert.match(text, /^220 recorder/);
      assert.ok(seconds < 4, `banner after ${seconds} s`);
      assert.match(hostA.linesOf(pid)[0]!, / PASS .* delay=0\.050 .* memory=down$/);
      assert.match(hostA.lines.join("\n"), /smtp-delay: warning: going on without memory: redis /);
    });
  } finally {
    await hostA.stop();
    await hostB.stop();
    await redis.stop();
  }
});

Deno.test(
  "a Redis that never answers costs a connection the store deadline, not more",
  E2E,
  async () => {
    const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 }); // accepts, never replies
    const held: Deno.Conn[] = [];
    (async () => {
      for await (const conn of silent) held.push(conn);
    })().catch(() => {});
    const port = (silent.addr as Deno.NetAddr).port;
    const server = await Server.start({
      chain: [...FILTER, "-S", "-d", "0.05"],
      rules: RULES,
      env: { SMTPDELAY_STORE: `redis://127.0.0.1:${port}`, SMTPDELAY_STORE_TIMEOUT: "0.3" },
    });
    try {
      const { text, seconds, pid } = await firstLine(server, "127.0.0.6");
      assert.match(text, /^220 recorder/);
      assert.ok(seconds >= 0.3 && seconds < 3, `banner after ${seconds} s, want about 0.3`);
      assert.match(server.linesOf(pid)[0]!, / PASS .* memory=down$/);
      assert.match(server.lines.join("\n"), /going on without memory: redis .*timed out/);
    } finally {
      await server.stop();
      silent.close();
      for (const c of held) c.close();
    }
  },
);
