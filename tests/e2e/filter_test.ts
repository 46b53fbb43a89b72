/**
 * The screening standalone (-S) with a real dnsmasq, in both modes: the
 * filter under a real tcpserver, and `smtp-delay serve` in tcpserver's place.
 * Patient clients reach the next program byte for byte, early talkers get
 * 451, quitters start nothing, each tier waits its delay.
 */
import assert from "node:assert/strict";
import {
  banner,
  baselineFds,
  Client,
  E2E,
  messageBody,
  type Mode,
  MODES,
  patient,
  PTR,
  RECORDER,
  type Rule,
  run,
  startDns,
  startServer,
} from "./harness.ts";

/** Each test client connects from 127.0.0.N and is given 192.0.2.N. */
const RULES: Rule[] = [2, 3, 4, 5, 6].map((n) => ({
  from: `127.0.0.${n}`,
  env: { TCPREMOTEIP: `192.0.2.${n}` },
}));
const PTR_CLIENT = "127.0.0.2"; // mail.example.net
const DYNAMIC_CLIENT = "127.0.0.3"; // dsl-192-0-2-3.pool.example.net
const NOPTR_CLIENT = "127.0.0.4"; // NXDOMAIN

const SIGPIPE_BIT = 1n << 12n; // signal 13
const EARLY = "451 You talked before my greeting; try again later (#4.5.0)\r\n";

/** What differs between the modes in the suite's names and messages. */
const SUITE: Record<Mode, { title: string; handOff: string; who: string; parent: string }> = {
  filter: {
    title: "smtp-delay -S under tcpserver",
    handOff: "the hand-off is an exec: same pid, SIGPIPE default, fd 0 blocking, fds 0 1 2",
    who: "the filter",
    parent: "tcpserver",
  },
  serve: {
    title: "smtp-delay serve -S",
    handOff:
      "the child is serve's own: SIGPIPE default, no signal blocked, fd 0 blocking, no fd leaked",
    who: "serve",
    parent: "serve",
  },
};

for (const mode of MODES) {
  const { title, handOff, who, parent } = SUITE[mode];
  Deno.test(title, E2E, async (t) => {
    const dns = await startDns();
    const server = await startServer(mode, {
      args: ["-S", "-d", "0.1", "-D", "0.4", "-P", "0.7"],
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
        await client.untilEnd();
        const pid = await server.pidOf(client.localPort);
        assert.equal(await server.endOf(pid), 0);
        const handed = await server.record(pid);
        assert.ok(handed, "the recorder ran under the pid of the ok line");
        assert.deepEqual(handed.input, sent, "bytes the recorder read = bytes the client sent");
      });

      await t.step(handOff, async () => {
        const client = await Client.connect(server.port, PTR_CLIENT);
        await patient(client, messageBody(100, 2));
        const pid = await server.pidOf(client.localPort);
        await server.endOf(pid);
        const handed = (await server.record(pid))!;
        assert.equal(handed.info.pid, String(pid), "the recorder has the pid of the ok line");
        assert.equal(handed.info.ppid, String(server.pid), `no process between ${parent} and it`);
        assert.equal(handed.info.exe, RECORDER, "no filter process stayed in between");
        assert.equal(BigInt(`0x${handed.info.sigign}`) & SIGPIPE_BIT, 0n, "SIGPIPE is not ignored");
        assert.equal(handed.info.sigblk, "0000000000000000", "no signal is blocked");
        assert.equal(Number.parseInt(handed.info.fd0flags!, 8) & 0o4000, 0, "fd 0 is blocking");
        assert.equal(handed.info.fds, await baselineFds(), `${who} leaks no fd`);
      });

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
          assert.equal(env.TCPREMOTEIP, "192.0.2.2", "the rules' variables pass through");
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
        const { line, pid } = await server.startsNothing("EARLY", async () => {
          const client = await Client.connect(server.port, NOPTR_CLIENT);
          await client.send("EHLO early.example.org\r\n");
          assert.equal(await client.untilEnd(), EARLY);
          return client;
        });
        assert.match(
          line,
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
          const { line } = await server.startsNothing("EARLY", async () => {
            const client = await Client.connect(server.port, NOPTR_CLIENT);
            await server.inScreening(client.localPort); // its delay is 0.7 s
            await client.send("MAIL FROM:<spam@example.org>\r\n");
            assert.equal(await client.untilEnd(), EARLY);
            return client;
          });
          assert.match(
            line,
            / action=451 memory=off bytes=30 data=MAIL\?FROM:<spam@example\.org>\?\?$/,
          );
        },
      );

      await t.step("a quitter never starts the next program", async () => {
        const { line, pid } = await server.startsNothing("CLOSED", async () => {
          const client = await Client.connect(server.port, NOPTR_CLIENT);
          await server.inScreening(client.localPort);
          client.close();
          return client;
        });
        assert.match(
          line,
          new RegExp(
            `^smtp-delay: info: CLOSED pid=${pid} ip=192\\.0\\.2\\.4 tier=\\S+ ptr=- lookup=\\S+ ` +
              `delay=\\S+ waited=0\\.[0-9]{3} action=exit memory=off$`,
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
        await t.step(
          `${from} (${ptr || "no PTR"}) waits the ${tier} delay, ${delay} s`,
          async () => {
            const { seconds, pid } = await banner(server, from);
            const env = (await server.record(pid))!.env;
            assert.equal(env.SMTPDELAY_TIER, tier);
            assert.equal(env.SMTPDELAY_PTR, ptr.toLowerCase());
            const waited = Number(env.SMTPDELAY_WAITED);
            assert.ok(waited >= delay && waited < delay + 0.5, `waited ${waited}, want ${delay}`);
            assert.ok(seconds >= delay, `banner after ${seconds} s, want at least ${delay}`);
            assert.match(
              server.linesOf(pid)[0]!,
              new RegExp(` tier=${tier} .*delay=${delay.toFixed(3)} .* action=exec memory=off$`),
            );
          },
        );
      }
    } finally {
      await server.stop();
      await dns.stop();
    }
  });

  Deno.test(`swaks, a real SMTP client, delivers through ${who}`, E2E, async () => {
    const dns = await startDns();
    const server = await startServer(mode, {
      args: ["-S", "-d", "0.1"],
      rules: RULES,
      env: { SMTPDELAY_DNS: dns.address },
    });
    try {
      const marker = `marker-${crypto.randomUUID()}`;
      const out = await run([
        "swaks",
        "--server",
        "127.0.0.1",
        "--port",
        String(server.port),
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
      assert.match(out.stdout, /<- {2}220 recorder ESMTP/);
      const line = await server.waitLog(/^smtp-delay: info: PASS /);
      const pid = Number(/pid=(\d+)/.exec(line)![1]);
      assert.equal(await server.endOf(pid), 0);
      const input = new TextDecoder().decode((await server.record(pid))!.input);
      assert.match(input, /^EHLO /);
      assert.ok(input.includes(marker), "the body reached the next program");
      assert.match(input, /\r\n\.\r\nQUIT\r\n$/);
    } finally {
      await server.stop();
      await dns.stop();
    }
  });
}
