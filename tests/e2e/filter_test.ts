/**
 * The filter standalone (-S) under a real tcpserver, with a real dnsmasq:
 * patient clients reach the next program byte for byte, early talkers get
 * 451, quitters start nothing, each tier waits its delay.
 */
import assert from "node:assert/strict";
import {
  baselineFds,
  Client,
  FILTER,
  messageBody,
  patient,
  PTR,
  RECORDER,
  type Rule,
  run,
  Server,
  startDns,
  watching,
} from "./harness.ts";

const E2E = { sanitizeOps: false, sanitizeResources: false };

/** Each test client connects from 127.0.0.N and is given 192.0.2.N. */
const RULES: Rule[] = [2, 3, 4, 5, 6].map((n) => ({
  from: `127.0.0.${n}`,
  env: { TCPREMOTEIP: `192.0.2.${n}` },
}));
const PTR_CLIENT = "127.0.0.2"; // mail.example.net
const DYNAMIC_CLIENT = "127.0.0.3"; // dsl-192-0-2-3.pool.example.net
const NOPTR_CLIENT = "127.0.0.4"; // NXDOMAIN

const SIGPIPE_BIT = 1n << 12n; // signal 13

Deno.test("smtp-delay -S under tcpserver", E2E, async (t) => {
  const dns = await startDns();
  const server = await Server.start({
    chain: [...FILTER, "-S", "-d", "0.1", "-D", "0.4", "-P", "0.7"],
    rules: [
      ...RULES,
      {
        from: "127.0.0.7",
        env: { TCPREMOTEIP: "192.0.2.7", TCPREMOTEHOST: "Dyn-7.Pool.Example.ORG" },
      },
      { from: "127.0.0.8", env: { TCPREMOTEIP: "192.0.2.2", SMTPDELAYd: "0.02" } },
      { from: "127.0.0.9", env: { TCPREMOTEIP: "2001:db8::25" } },
    ],
    env: { SMTPDELAY_DNS: dns.address },
  });
  try {
    await t.step("a patient client's every byte reaches the next program, in order", async () => {
      const client = await Client.connect(server.port, PTR_CLIENT);
      const sent = await patient(client, messageBody(20_000, 1));
      await client.untilClosed();
      const pid = await server.pidOf(client.localPort);
      assert.equal(await server.endOf(pid), 0);
      const handed = await server.record(pid);
      assert.ok(handed, "the recorder ran under the filter's pid");
      assert.deepEqual(handed.input, sent, "bytes the recorder read = bytes the client sent");
    });

    await t.step(
      "the hand-off is an exec: same pid, SIGPIPE default, fd 0 blocking, fds 0 1 2",
      async () => {
        const client = await Client.connect(server.port, PTR_CLIENT);
        await patient(client, messageBody(100, 2));
        const pid = await server.pidOf(client.localPort);
        await server.endOf(pid);
        const handed = (await server.record(pid))!;
        assert.equal(handed.info.pid, String(pid), "the recorder has tcpserver's child pid");
        assert.equal(handed.info.exe, RECORDER, "no filter process stayed in between");
        assert.equal(BigInt(`0x${handed.info.sigign}`) & SIGPIPE_BIT, 0n, "SIGPIPE is not ignored");
        assert.equal(handed.info.sigblk, "0000000000000000", "no signal is blocked");
        assert.equal(Number.parseInt(handed.info.fd0flags!, 8) & 0o4000, 0, "fd 0 is blocking");
        assert.equal(handed.info.fds, await baselineFds(), "the filter leaks no fd");
      },
    );

    await t.step(
      "a patient client passes with the verdict exported and one PASS line",
      async () => {
        const client = await Client.connect(server.port, PTR_CLIENT);
        await patient(client, messageBody(10, 3));
        const pid = await server.pidOf(client.localPort);
        await server.endOf(pid);
        const env = (await server.record(pid))!.env;
        assert.equal(env.SMTPDELAY_TIER, "ptr");
        assert.equal(env.SMTPDELAY_PTR, "mail.example.net");
        assert.ok(Number(env.SMTPDELAY_WAITED) >= 0.1, `waited ${env.SMTPDELAY_WAITED}`);
        assert.equal(env.RBLSMTPD, undefined, "RBLSMTPD untouched");
        assert.equal(env.TCPREMOTEIP, "192.0.2.2", "tcpserver's variables pass through");
        const lines = server.linesOf(pid);
        assert.equal(lines.length, 1, lines.join("\n"));
        assert.match(
          lines[0]!,
          new RegExp(
            `^smtp-delay: info: PASS pid=${pid} ip=192\\.0\\.2\\.2 tier=ptr ptr=mail\\.example\\.net ` +
              `lookup=found delay=0\\.100 waited=0\\.[0-9]{3} action=exec memory=off$`,
          ),
        );
      },
    );

    await t.step("an early talker gets 451 and never reaches the next program", async () => {
      const client = await Client.connect(server.port, NOPTR_CLIENT);
      await client.send("EHLO early.example.org\r\n");
      const text = await client.untilClosed();
      assert.equal(text, "451 You talked before my greeting; try again later (#4.5.0)\r\n");
      const pid = await server.pidOf(client.localPort);
      assert.equal(await server.endOf(pid), 0);
      assert.equal(await server.record(pid), undefined, "the recorder did not run");
      assert.match(
        server.linesOf(pid).join("\n"),
        new RegExp(
          `^smtp-delay: info: EARLY pid=${pid} ip=192\\.0\\.2\\.4 tier=(noptr|-) ptr=- ` +
            `lookup=(none|pending) delay=(0\\.700|-) waited=0\\.[0-9]{3} action=451 memory=off ` +
            `bytes=24 data=EHLO\\?early\\.example\\.org\\?\\?$`,
        ),
      );
    });

    await t.step(
      "a client that talks after a quiet start is still caught before the banner",
      async () => {
        const client = await Client.connect(server.port, NOPTR_CLIENT);
        const pid = await server.pidOf(client.localPort);
        await watching(pid); // the filter sits in poll(2) on fd 0; its delay is 0.7 s
        await client.send("MAIL FROM:<spam@example.org>\r\n");
        const text = await client.untilClosed();
        assert.match(text, /^451 /);
        assert.equal(await server.record(pid), undefined);
      },
    );

    await t.step("a quitter never starts the next program", async () => {
      const client = await Client.connect(server.port, NOPTR_CLIENT);
      const pid = await server.pidOf(client.localPort);
      client.close();
      assert.equal(await server.endOf(pid), 0);
      assert.equal(await server.record(pid), undefined, "no empty session");
      assert.match(
        server.linesOf(pid).join("\n"),
        new RegExp(
          `^smtp-delay: info: CLOSED pid=${pid} ip=192\\.0\\.2\\.4 .* action=exit memory=off$`,
        ),
      );
    });

    const tiers: Array<[string, string, string, number]> = [
      [PTR_CLIENT, "ptr", PTR["192.0.2.2"]!, 0.1],
      [DYNAMIC_CLIENT, "dynamic", PTR["192.0.2.3"]!, 0.4],
      [NOPTR_CLIENT, "noptr", "", 0.7],
      ["127.0.0.7", "dynamic", "dyn-7.pool.example.org", 0.4],
      ["127.0.0.8", "ptr", PTR["192.0.2.2"]!, 0.02],
      ["127.0.0.9", "ptr", PTR["2001:db8::25"]!, 0.1],
    ];
    for (const [from, tier, ptr, delay] of tiers) {
      await t.step(`${from} (${ptr || "no PTR"}) waits the ${tier} delay, ${delay} s`, async () => {
        const client = await Client.connect(server.port, from);
        await client.until(/^220 /);
        const bannerS = (client.firstByteAt! - client.connectedAt) / 1000;
        const pid = await server.pidOf(client.localPort);
        client.close();
        await server.endOf(pid);
        const env = (await server.record(pid))!.env;
        assert.equal(env.SMTPDELAY_TIER, tier);
        assert.equal(env.SMTPDELAY_PTR, ptr.toLowerCase());
        const waited = Number(env.SMTPDELAY_WAITED);
        assert.ok(waited >= delay && waited < delay + 0.5, `waited ${waited}, want ${delay}`);
        assert.ok(bannerS >= delay, `banner after ${bannerS} s, want at least ${delay}`);
        assert.match(
          server.linesOf(pid)[0]!,
          new RegExp(` tier=${tier} .*delay=${delay.toFixed(3)} `),
        );
      });
    }
  } finally {
    await server.stop();
    await dns.stop();
  }
});

Deno.test("swaks, a real SMTP client, delivers through the filter", E2E, async () => {
  const dns = await startDns();
  const server = await Server.start({
    chain: [...FILTER, "-S", "-d", "0.1"],
    rules: RULES,
    env: { SMTPDELAY_DNS: dns.address },
  });
  try {
    const marker = `marker-${crypto.randomUUID()}`;
    const out = await run([
      "swaks",
      "--server",
      `127.0.0.1:${server.port}`,
      "--local-interface",
      PTR_CLIENT,
      "--from",
      "sender@example.org",
      "--to",
      "rcpt@example.net",
      "--body",
      marker,
      "--timeout",
      "10",
    ]);
    assert.equal(out.code, 0, out.stdout + out.stderr);
    const line = await server.waitLog(/^smtp-delay: info: PASS /);
    const pid = Number(/pid=(\d+)/.exec(line)![1]);
    await server.endOf(pid);
    const input = new TextDecoder().decode((await server.record(pid))!.input);
    assert.match(input, /^EHLO /);
    assert.ok(input.includes(marker), "the body reached the next program");
    assert.match(input, /\r\n\.\r\nQUIT\r\n$/);
  } finally {
    await server.stop();
    await dns.stop();
  }
});
