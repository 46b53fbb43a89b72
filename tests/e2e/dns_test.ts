/**
 * The lookup's failures: a dead resolver never holds a client past the noptr
 * delay, and is logged as a failure, not as "no PTR". Also the pattern file
 * and an exec that fails.
 */
import assert from "node:assert/strict";
import {
  banner,
  blackHole,
  Client,
  E2E,
  FILTER,
  type Logged,
  type Mode,
  type Rule,
  Server,
  startDns,
  startServer,
} from "./harness.ts";

const RULES: Rule[] = [
  { from: "127.0.0.2", env: { TCPREMOTEIP: "192.0.2.2" } },
  { from: "127.0.0.4", env: { TCPREMOTEIP: "192.0.2.4" } },
  { from: "127.0.0.7", env: { TCPREMOTEIP: "192.0.2.7", TCPREMOTEHOST: "mx.example.org" } },
];

/** A server of `mode` whose resolver never answers: -P 0.6, a lookup deadline of 5 s, -N 100. */
async function deadDns(mode: Mode) {
  const dead = await blackHole();
  const server = await startServer(mode, {
    args: ["-S", "-d", "0.05", "-P", "0.6", "-t", "5", "-N", "100"],
    rules: RULES,
    env: { SMTPDELAY_DNS: dead.address },
  });
  return {
    server,
    async stop() {
      await server.stop();
      await dead.stop();
    },
  };
}

/** A client with no PTR gets the banner after the noptr delay; the failure is a warning. */
async function passesAfterNoptrDelay(server: Logged): Promise<void> {
  const { seconds, pid } = await banner(server, "127.0.0.4");
  assert.ok(seconds >= 0.6 && seconds < 3, `banner after ${seconds} s, want 0.6`);
  const env = (await server.record(pid))!.env;
  assert.equal(env.SMTPDELAY_TIER, "noptr");
  assert.match(
    server.linesOf(pid)[0]!,
    / PASS pid=\d+ ip=192\.0\.2\.4 tier=noptr ptr=- lookup=timeout delay=0\.600 .* action=exec/,
  );
  assert.ok(
    server.lines.includes(
      "smtp-delay: warning: unable to look up the PTR of 192.0.2.4: timed out",
    ),
    `the failure is logged as a warning\n${server.lines.join("\n")}`,
  );
}

Deno.test("a dead DNS server", E2E, async (t) => {
  const { server, stop } = await deadDns("filter");
  try {
    await t.step("passes the client after the noptr delay, not the lookup deadline", async () => {
      await passesAfterNoptrDelay(server);
    });

    await t.step("-N does not refuse a client whose lookup failed", async () => {
      const { pid } = await banner(server, "127.0.0.4");
      assert.match(server.linesOf(pid)[0]!, / PASS /);
    });

    await t.step("an early talker is answered at once, while the lookup still hangs", async () => {
      const client = await Client.connect(server.port, "127.0.0.4");
      await client.send("EHLO early\r\n");
      await client.untilEnd();
      const seconds = (client.firstByteAt! - client.connectedAt) / 1000;
      assert.match(client.text, /^451 /);
      assert.ok(seconds < 0.6, `451 after ${seconds} s, before the delay`);
      const pid = await server.pidOf(client.localPort);
      await server.endOf(pid);
      assert.match(server.linesOf(pid)[0]!, / EARLY .* tier=- ptr=- lookup=pending delay=- /);
    });

    await t.step("TCPREMOTEHOST spares the lookup", async () => {
      const { seconds, pid } = await banner(server, "127.0.0.7");
      assert.ok(seconds < 0.6, `banner after ${seconds} s`);
      assert.match(
        server.linesOf(pid)[0]!,
        / tier=ptr ptr=mx\.example\.org lookup=host delay=0\.050 /,
      );
    });
  } finally {
    await stop();
  }
});

Deno.test("serve with a dead DNS server passes the client after the noptr delay", E2E, async () => {
  const { server, stop } = await deadDns("serve");
  try {
    await passesAfterNoptrDelay(server);
  } finally {
    await stop();
  }
});

Deno.test("-t bounds the lookup, then the noptr delay runs out", E2E, async () => {
  const dead = await blackHole();
  const server = await Server.start({
    chain: [...FILTER, "-S", "-P", "0.5", "-t", "0.2"],
    rules: RULES,
    env: { SMTPDELAY_DNS: dead.address },
  });
  try {
    const { seconds, pid } = await banner(server, "127.0.0.4");
    assert.ok(seconds >= 0.5 && seconds < 2.5, `banner after ${seconds} s`);
    assert.match(server.linesOf(pid)[0]!, / lookup=timeout delay=0\.500 /);
  } finally {
    await server.stop();
    await dead.stop();
  }
});

Deno.test("a pattern file replaces the built-in dynamic patterns", E2E, async () => {
  const dns = await startDns();
  const file = await Deno.makeTempFile();
  await Deno.writeTextFile(file, "# our own\n^mail$\n");
  const server = await Server.start({
    chain: [...FILTER, "-S", "-d", "0.05", "-D", "0.3", "-f", file],
    rules: RULES,
    env: { SMTPDELAY_DNS: dns.address },
  });
  try {
    const { seconds, pid } = await banner(server, "127.0.0.2");
    assert.ok(seconds >= 0.3, `banner after ${seconds} s`);
    assert.match(server.linesOf(pid)[0]!, / tier=dynamic ptr=mail\.example\.net /);
  } finally {
    await server.stop();
    await dns.stop();
    await Deno.remove(file);
  }
});

Deno.test("a next program that cannot run: fatal line, exit 111", E2E, async () => {
  const server = await Server.start({
    chain: [...FILTER, "-S", "-d", "0"],
    last: ["/nonexistent/qmail-smtpd"],
    rules: RULES,
    env: { SMTPDELAY_DNS: "127.0.0.1:9" },
  });
  try {
    const client = await Client.connect(server.port, "127.0.0.7");
    const pid = await server.pidOf(client.localPort);
    assert.equal(await server.endOf(pid), 111);
    assert.equal(await client.untilEnd(), "");
    assert.ok(
      server.lines.includes(
        "smtp-delay: fatal: unable to run /nonexistent/qmail-smtpd: No such file or directory",
      ),
      server.lines.join("\n"),
    );
  } finally {
    await server.stop();
  }
});
