/**
 * `smtp-delay serve` under load and under control: --waiting (421 at once
 * beyond it), stress mode (short delays for newcomers), SIGTERM (stop
 * accepting, hand the waiting clients on, exit 0), SIGHUP (re-read pattern
 * files and allowlists), and the rules file replaced or broken while it runs.
 */
import assert from "node:assert/strict";
import { banner, Client, E2E, ruleLine, ServeServer, writeRules } from "./harness.ts";

const BUSY = "421 Too many connections waiting; try again later (#4.3.2)\r\n";

/** Connects and waits until serve has accepted the client (it is in the screening). */
async function held(server: ServeServer, from: string): Promise<Client> {
  const client = await Client.connect(server.port, from);
  await server.holds(client.localPort);
  return client;
}

Deno.test("serve --waiting 2: the third waiting client gets 421 at once", E2E, async () => {
  // -t 0 -P 5: no lookup; a quiet client waits 5 s in the screening.
  const server = await ServeServer.start({
    args: ["-H", "--waiting", "2", "--stress", "0", "-S", "-t", "0", "-P", "5"],
  });
  const clients: Client[] = [];
  try {
    const first = await held(server, "127.0.0.2");
    const second = await held(server, "127.0.0.3");
    clients.push(first, second);
    const third = await Client.connect(server.port, "127.0.0.4");
    assert.equal(await third.untilEnd(), BUSY);
    const seconds = (third.firstByteAt! - third.connectedAt) / 1000;
    assert.ok(seconds < 2.5, `421 after ${seconds} s, want at once`);
    assert.equal(
      await server.waitLog(/^smtp-delay: info: BUSY /),
      "smtp-delay: info: BUSY ip=127.0.0.4 why=waiting waiting=2 action=421",
    );
    assert.deepEqual(await server.reload(), { waiting: 2, children: 0 });
    // One leaves: room for one more, which is taken into the screening.
    first.close();
    await server.waitLog(/^smtp-delay: info: CLOSED pid=0 ip=127\.0\.0\.2 /);
    const fourth = await held(server, "127.0.0.5");
    clients.push(fourth);
    assert.deepEqual(await server.reload(), { waiting: 2, children: 0 });
    assert.equal(fourth.text, "");
    assert.equal(server.lines.filter((l) => l.includes(" BUSY ")).length, 1);
    second.close();
    fourth.close();
    await server.waitLog(/^smtp-delay: info: CLOSED pid=0 ip=127\.0\.0\.5 /);
  } finally {
    for (const c of clients) c.close();
    await server.stop();
  }
});

/** --waiting 4 --stress 50: stress from 2 waiting, off again below 75% of that (at 1). */
const STRESS_ARGS = ["-H", "--waiting", "4", "--stress", "50", "--stress-delay", "0.1"]
  .concat(["-S", "-t", "0", "-P", "5"]); // -t 0 -P 5: no lookup; a quiet client waits 5 s

Deno.test("serve stress mode: a newcomer's delay is capped while many wait", E2E, async () => {
  const server = await ServeServer.start({ args: STRESS_ARGS });
  const clients: Client[] = [];
  try {
    const first = await held(server, "127.0.0.2");
    clients.push(first);
    assert.ok(!server.lines.some((l) => l.includes(" STRESS ")), "not under stress at 1");
    clients.push(await held(server, "127.0.0.3"));
    assert.equal(
      await server.waitLog(/^smtp-delay: info: STRESS /),
      "smtp-delay: info: STRESS on waiting=2 limit=4",
    );
    const third = await Client.connect(server.port, "127.0.0.4");
    clients.push(third);
    const port = third.localPort;
    await third.until(/^220 recorder/);
    const seconds = (third.firstByteAt! - third.connectedAt) / 1000;
    assert.ok(seconds >= 0.1 && seconds < 2.5, `banner after ${seconds} s, want 0.1, not 5`);
    const pid = await server.pidOf(port);
    assert.match(
      server.linesOf(pid)[0]!,
      /^smtp-delay: info: PASS pid=\d+ ip=127\.0\.0\.4 tier=noptr ptr=- lookup=skipped delay=0\.100 /,
    );
    assert.equal(first.text, "", "the first client, in before the stress, still waits its 5 s");
    third.close();
    await server.endOf(pid);
    for (const c of clients) c.close();
    await server.waitLog(/^smtp-delay: info: CLOSED pid=0 ip=127\.0\.0\.2 /);
    await server.waitLog(/^smtp-delay: info: STRESS off/);
    const stress = server.lines.filter((l) => l.includes(" STRESS "));
    assert.ok(stress.length % 2 === 0, stress.join("\n"));
    stress.forEach((line, i) =>
      assert.equal(
        line,
        i % 2
          ? "smtp-delay: info: STRESS off waiting=1 limit=4"
          : "smtp-delay: info: STRESS on waiting=2 limit=4",
      )
    );
  } finally {
    for (const c of clients) c.close();
    await server.stop();
  }
});

Deno.test(
  "serve stress mode: the client whose arrival starts it keeps its own delay",
  E2E,
  async () => {
    const server = await ServeServer.start({ args: STRESS_ARGS });
    const clients: Client[] = [];
    try {
      clients.push(await held(server, "127.0.0.2"));
      const second = await held(server, "127.0.0.3");
      clients.push(second);
      await server.waitLog(/^smtp-delay: info: STRESS on /);
      const third = await Client.connect(server.port, "127.0.0.4");
      clients.push(third);
      await third.until(/^220 recorder/); // 0.1 s: had the second been capped, it would be out
      const log = `\n${server.lines.join("\n")}`;
      assert.equal(second.text, "", `the second client waits its 5 s${log}`);
      assert.deepEqual(await server.reload(), { waiting: 2, children: 1 }, log);
      assert.deepEqual(server.lines.filter((l) => l.includes(" STRESS ")), [
        "smtp-delay: info: STRESS on waiting=2 limit=4",
      ]);
    } finally {
      for (const c of clients) c.close();
      await server.stop();
    }
  },
);

Deno.test("serve SIGTERM: stops accepting, hands the waiting on, exits 0", E2E, async () => {
  const server = await ServeServer.start({
    args: ["-H", "-S", "-t", "0", "-d", "0.05", "-P", "0.6"],
    rules: [{ from: "127.0.0.2", env: { TCPREMOTEHOST: "mx.example.org" } }], // ptr: 0.05 s
  });
  try {
    const running = await Client.connect(server.port, "127.0.0.2");
    await running.until(/^220 recorder/);
    const waiting = await held(server, "127.0.0.3"); // noptr: 0.6 s
    const from = server.lines.length;
    server.kill("SIGTERM");
    assert.equal(
      await server.waitLog(/^smtp-delay: info: STOP /, "STOP", from),
      "smtp-delay: info: STOP waiting=1 children=1",
    );
    await assert.rejects(Client.connect(server.port, "127.0.0.4"), "no longer listening");
    const port = waiting.localPort;
    await waiting.until(/^220 recorder/);
    const seconds = (waiting.firstByteAt! - waiting.connectedAt) / 1000;
    assert.ok(seconds >= 0.6, `banner after ${seconds} s: the whole delay`);
    const status = await server.exited;
    assert.equal(status.code, 0);
    // Before it exited, serve screened the waiting client to its end and started its child.
    const after = server.lines.slice(from);
    const pid = Number(
      /^tcpserver: ok (\d+) /.exec(after.find((l) => l.endsWith(`::${port}`))!)![1],
    );
    assert.match(
      after.join("\n"),
      new RegExp(`^smtp-delay: info: PASS pid=${pid} ip=127\\.0\\.0\\.3 .* delay=0\\.600 `, "m"),
    );
    // Both sessions outlive serve.
    for (const client of [running, waiting]) {
      await client.send("QUIT\r\n");
      await client.until(/221 bye\r\n$/);
    }
  } finally {
    await server.stop();
  }
});

Deno.test("serve SIGHUP re-reads the pattern file and the allowlist", E2E, async () => {
  const dir = await Deno.makeTempDir({ prefix: "smtp-delay-hup-" });
  await Deno.writeTextFile(`${dir}/patterns`, "^nothing-matches$\n");
  await Deno.writeTextFile(`${dir}/allow`, "# nobody yet\n");
  const server = await ServeServer.start({
    args: ["-H", "-S", "-t", "0", "-d", "0.05", "-D", "0.4", "-P", "0.4"]
      .concat(["-f", `${dir}/patterns`, "--allow", `${dir}/allow`]),
    rules: [
      { from: "127.0.0.2", env: { TCPREMOTEIP: "192.0.2.2", TCPREMOTEHOST: "mail.example.net" } },
      { from: "127.0.0.5", env: { TCPREMOTEIP: "192.0.2.5" } },
    ],
  });
  /** The outcome line of a client that waits for its banner. */
  const outcome = async (from: string) => {
    const client = await Client.connect(server.port, from);
    const port = client.localPort;
    await client.until(/^220 recorder/);
    const pid = await server.pidOf(port);
    client.close();
    await server.endOf(pid);
    return server.linesOf(pid)[0]!;
  };
  try {
    assert.match(await outcome("127.0.0.2"), / tier=ptr ptr=mail\.example\.net .* memory=off$/);
    assert.match(await outcome("127.0.0.5"), / tier=noptr .* delay=0\.400 .* memory=off$/);
    await Deno.writeTextFile(`${dir}/patterns`, "^mail$\n"); // the host labels of the name
    await Deno.writeTextFile(`${dir}/allow`, "192.0.2.5\n");
    assert.deepEqual(await server.reload(), { waiting: 0, children: 0 });
    assert.match(
      await outcome("127.0.0.2"),
      / tier=dynamic ptr=mail\.example\.net lookup=host delay=0\.400 /,
    );
    assert.match(await outcome("127.0.0.5"), / PASS .* action=exec memory=exempt$/);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serve reads the rules file again when it changes", E2E, async (t) => {
  const rule = (mark: string) =>
    ruleLine({ from: "127.0.0.2", env: { TCPREMOTEHOST: "mx.example.org", MARK: mark } });
  const server = await ServeServer.start({
    args: ["-H", "-l", "mx.local.test", "-S", "-t", "0", "-d", "0.05"],
    rules: [rule("one")],
  });
  /** Connects from 127.0.0.2, waits for the banner; the MARK its child got. */
  const mark = async () => {
    const { pid } = await banner(server, "127.0.0.2");
    return (await server.record(pid))!.env.MARK;
  };
  try {
    await t.step("tcprules replaces the cdb: the next client gets the new rule", async () => {
      assert.equal(await mark(), "one");
      await writeRules(server.rulesFile, [rule("two"), ":allow"]);
      assert.equal(await mark(), "two");
      assert.ok(!server.lines.some((l) => l.includes(" RELOAD ")), "without SIGHUP");
    });

    await t.step("a rule that turns to deny", async () => {
      await writeRules(server.rulesFile, ["127.0.0.2:deny", ":allow"]);
      const client = await Client.connect(server.port, "127.0.0.2");
      const port = client.localPort;
      assert.equal(await client.untilEnd(), "");
      const local = `mx.local.test:127.0.0.1:${server.port}`;
      assert.equal(
        await server.waitLog(/^tcpserver: deny /),
        `tcpserver: deny 0 ${local} :127.0.0.2::${port}`,
      );
    });

    await t.step("a corrupt rules file: 421, a warning and a BUSY line; then fixed", async () => {
      const from = server.lines.length;
      await Deno.writeTextFile(server.rulesFile, "this is not a cdb\n");
      const client = await Client.connect(server.port, "127.0.0.2");
      assert.equal(await client.untilEnd(), BUSY);
      const warning = await server.waitLog(/^smtp-delay: warning: /, "warning", from);
      assert.ok(
        warning.startsWith(
          `smtp-delay: warning: unable to read ${server.rulesFile} (127.0.0.2 answered 421): `,
        ),
        warning,
      );
      assert.equal(
        await server.waitLog(/^smtp-delay: info: BUSY /, "BUSY", from),
        "smtp-delay: info: BUSY ip=127.0.0.2 why=rules waiting=1 action=421",
      );
      assert.ok(!server.lines.slice(from).some((l) => l.startsWith("tcpserver: ok ")));
      await writeRules(server.rulesFile, [rule("three"), ":allow"]);
      assert.equal(await mark(), "three");
    });

    await t.step("a rules file that is gone (no -X): 421 why=rules", async () => {
      const from = server.lines.length;
      await Deno.remove(server.rulesFile);
      const client = await Client.connect(server.port, "127.0.0.2");
      assert.equal(await client.untilEnd(), BUSY);
      assert.match(
        await server.waitLog(/^smtp-delay: warning: /, "warning", from),
        /^smtp-delay: warning: unable to read \S+rules\.cdb \(127\.0\.0\.2 answered 421\): No such file or directory$/,
      );
      assert.equal(
        await server.waitLog(/^smtp-delay: info: BUSY /, "BUSY", from),
        "smtp-delay: info: BUSY ip=127.0.0.2 why=rules waiting=1 action=421",
      );
    });
  } finally {
    await server.stop();
  }
});

Deno.test("serve -X: a rules file that does not exist means no rules", E2E, async () => {
  const dir = await Deno.makeTempDir({ prefix: "smtp-delay-X-" });
  const server = await ServeServer.start({
    args: ["-X", "-x", `${dir}/none.cdb`, "-H", "-S", "-t", "0", "-P", "0.05"],
    noRules: true,
  });
  try {
    const { pid } = await banner(server, "127.0.0.2");
    assert.equal((await server.record(pid))!.env.TCPREMOTEIP, "127.0.0.2");
    assert.ok(!server.lines.some((l) => l.includes("warning")), server.lines.join("\n"));
    // A file that appears is read.
    await writeRules(`${dir}/none.cdb`, ["127.0.0.2:deny", ":allow"]);
    const denied = await Client.connect(server.port, "127.0.0.2");
    assert.equal(await denied.untilEnd(), "");
    await server.waitLog(/^tcpserver: deny 0 /);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
