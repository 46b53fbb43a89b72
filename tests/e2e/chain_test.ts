/**
 * The screening in the chains of a run file, in both modes (the filter under
 * tcpserver, and `smtp-delay serve`): before rblsmtpd (it sets RBLSMTPD and
 * starts rblsmtpd on the client's socket, the early talker's bytes unread, and
 * rblsmtpd talks); with -S, the -N refusal answered by the screening itself.
 * Then the filter behind fixcrio (fd 0/1 are pipes, not a socket).
 */
import assert from "node:assert/strict";
import {
  Client,
  E2E,
  FILTER,
  finalReplies,
  messageBody,
  type Mode,
  MODES,
  patient,
  poll,
  RECORDER,
  type Rule,
  Server,
  startDns,
  startServer,
  watching,
} from "./harness.ts";

const RULES: Rule[] = [
  { from: "127.0.0.2", env: { TCPREMOTEIP: "192.0.2.2" } }, // mail.example.net
  { from: "127.0.0.4", env: { TCPREMOTEIP: "192.0.2.4" } }, // no PTR
  { from: "127.0.0.5", env: { TCPREMOTEIP: "192.0.2.2", RBLSMTPD: "" } }, // allowlisted in rblsmtpd
  { from: "127.0.0.6", env: { TCPREMOTEIP: "192.0.2.4", SMTPDELAY: "JUSTDELAY" } },
];

const EARLY = "You talked before my greeting; try again later (#4.5.0)";
const REFUSED = "No reverse DNS for your address; try again later (#4.7.1)";

/** Talks to rblsmtpd as an early talker would, after `early` was sent unasked. */
async function rblsmtpdDialogue(client: Client): Promise<string[]> {
  await client.wait(() => finalReplies(client.text).length >= 2, "220 and the EHLO's 250");
  await client.send("MAIL FROM:<a@example.org>\r\n");
  await client.wait(() => finalReplies(client.text).length >= 3, "MAIL's reply");
  await client.send("RCPT TO:<b@example.net>\r\n");
  await client.wait(() => finalReplies(client.text).length >= 4, "RCPT's reply");
  await client.send("QUIT\r\n");
  await client.untilEnd();
  return finalReplies(client.text);
}

/** What differs between the modes in the tests' names and messages. */
const CHAIN: Record<Mode, { name: string; execs: string; refuses: string }> = {
  filter: {
    name: "smtp-delay",
    execs: "filter and rblsmtpd both exec'd in place",
    refuses: "smtp-delay -S -N 100 answers 421 itself",
  },
  serve: {
    name: "smtp-delay serve",
    execs: "rblsmtpd exec'd it in the child serve started",
    refuses: "smtp-delay serve -S -N 100 answers 421 itself; no process starts",
  },
};

for (const mode of MODES) {
  const { name, execs, refuses } = CHAIN[mode];
  Deno.test(`${name} before rblsmtpd (no -S)`, E2E, async (t) => {
    const dns = await startDns();
    const server = await startServer(mode, {
      args: ["-d", "0.1", "-P", "0.3", "-N", "100"],
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
            "250 rblsmtpd.local", // its answer to the EHLO the screening left unread
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
          assert.match(
            server.linesOf(pid, "rblsmtpd:").join("\n"),
            new RegExp(`^rblsmtpd: 192\\.0\\.2\\.2 pid ${pid}: 451 You talked`),
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

      await t.step(
        "a patient client rblsmtpd lets through reaches qmail-smtpd intact",
        async () => {
          const client = await Client.connect(server.port, "127.0.0.5");
          const sent = await patient(client, messageBody(5000, 7));
          const pid = await server.pidOf(client.localPort);
          assert.equal(await server.endOf(pid), 0);
          const handed = (await server.record(pid))!;
          assert.deepEqual(handed.input, sent);
          assert.equal(handed.info.exe, RECORDER);
          assert.equal(handed.info.pid, String(pid), execs);
          assert.equal(handed.info.ppid, String(server.pid));
        },
      );

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

  Deno.test(refuses, E2E, async () => {
    const dns = await startDns();
    const server = await startServer(mode, {
      args: ["-S", "-P", "0.3", "-N", "100"],
      rules: RULES,
      env: { SMTPDELAY_DNS: dns.address },
    });
    try {
      const { line, pid } = await server.startsNothing("REFUSED", async () => {
        const client = await Client.connect(server.port, "127.0.0.4");
        assert.equal(await client.untilEnd(), `421 ${REFUSED}\r\n`);
        return client;
      });
      assert.match(
        line,
        new RegExp(
          `^smtp-delay: info: REFUSED pid=${pid} ip=192\\.0\\.2\\.4 tier=noptr ptr=- lookup=none ` +
            `delay=0\\.300 waited=0\\.[0-9]{3} action=421 memory=off$`,
        ),
      );
      assert.equal(await server.recorderRuns(), 0, "no next program ran");
    } finally {
      await server.stop();
      await dns.stop();
    }
  });
}

Deno.test("smtp-delay behind fixcrio (fd 0/1 are pipes)", E2E, async (t) => {
  const dns = await startDns();
  const standalone = await Server.start({
    chain: ["fixcrio", ...FILTER, "-S", "-d", "0.3"],
    rules: RULES,
    env: { SMTPDELAY_DNS: dns.address },
  });
  const before = await Server.start({
    chain: ["fixcrio", ...FILTER, "-d", "0.3", "rblsmtpd"],
    rules: RULES,
    env: { SMTPDELAY_DNS: dns.address },
  });
  /** The filter's pid: fixcrio is tcpserver's child, the filter fixcrio's. */
  const filterPid = async (server: Server, clientIp: string) => {
    const line = await server.waitLog(new RegExp(`^smtp-delay: info: .* ip=${clientIp} `));
    return Number(/ pid=(\d+) /.exec(line)![1]);
  };
  try {
    await t.step("a patient client's bytes reach the next program through the pipes", async () => {
      const client = await Client.connect(standalone.port, "127.0.0.2");
      const sent = await patient(client, messageBody(8000, 9));
      const pid = await filterPid(standalone, "192\\.0\\.2\\.2");
      const handed = (await standalone.record(pid))!;
      assert.ok(handed, "the recorder ran under the filter's pid");
      assert.deepEqual(handed.input, sent);
      assert.equal(handed.info.exe, RECORDER);
    });

    await t.step("an early talker on a pipe gets 451 and the next program never runs", async () => {
      const client = await Client.connect(standalone.port, "127.0.0.4");
      await client.send("EHLO early.example.org\r\n");
      assert.equal(await client.untilEnd(), `451 ${EARLY}\r\n`);
      const pid = await filterPid(standalone, "192\\.0\\.2\\.4");
      assert.equal(await standalone.record(pid), undefined);
      assert.match(
        standalone.linesOf(pid)[0]!,
        / EARLY .* action=451 memory=off bytes=24 data=EHLO\?/,
      );
    });

    await t.step("a client that talks during the wait on a pipe is caught", async () => {
      const client = await Client.connect(standalone.port, "127.0.0.5");
      const fixcrio = await standalone.pidOf(client.localPort);
      const children = `/proc/${fixcrio}/task/${fixcrio}/children`;
      const filter = await poll(`a child of fixcrio ${fixcrio}`, async () => {
        const kids = (await Deno.readTextFile(children).catch(() => "")).trim();
        return kids ? Number(kids.split(" ")[0]) : undefined;
      });
      await watching(filter);
      await client.send("HELO talker\r\n");
      assert.match(await client.untilEnd(), /^451 /);
      assert.equal(await standalone.record(filter), undefined);
    });

    await t.step("an early talker's bytes reach rblsmtpd unread through the pipes", async () => {
      const client = await Client.connect(before.port, "127.0.0.4");
      await client.send("EHLO early.example.org\r\n");
      const replies = await rblsmtpdDialogue(client);
      assert.deepEqual(replies.slice(0, 2), ["220 rblsmtpd.local", "250 rblsmtpd.local"]);
      assert.equal(replies[3], `451 ${EARLY}`);
      const pid = await filterPid(before, "192\\.0\\.2\\.4");
      assert.equal(await before.record(pid), undefined);
      assert.match(
        before.linesOf(pid)[0]!,
        / EARLY .* action=rblsmtpd memory=off bytes=24 data=-$/,
      );
    });

    await t.step("a quitter on a pipe never starts the next program", async () => {
      const client = await Client.connect(standalone.port, "127.0.0.6");
      const fixcrio = await standalone.pidOf(client.localPort);
      client.close();
      await standalone.endOf(fixcrio);
      const line = await standalone.waitLog(/^smtp-delay: info: CLOSED /);
      const pid = Number(/ pid=(\d+) /.exec(line)![1]);
      assert.equal(await standalone.record(pid), undefined);
    });
  } finally {
    await standalone.stop();
    await before.stop();
    await dns.stop();
  }
});
