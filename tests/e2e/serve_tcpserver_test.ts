/**
 * `smtp-delay serve` as tcpserver: the child's environment (tcpserver's
 * variables, then the rules'), tcpserver's log lines with the child's pid,
 * a deny rule, -h / -H / -l, and -c (a client that passed waits for a free
 * slot, unanswered).
 */
import assert from "node:assert/strict";
import {
  Client,
  E2E,
  greeted,
  messageBody,
  patient,
  serverEnv,
  ServeServer,
  startDns,
} from "./harness.ts";

/** Waits for a child's end line and the status line after it; returns the exit code. */
async function ended(server: ServeServer, pid: number): Promise<number> {
  const code = await server.endOf(pid);
  const at = server.lines.findIndex((l) => l.startsWith(`tcpserver: end ${pid} `));
  await server.waitLog(/^tcpserver: status: /, "the status line after the end", at + 1);
  return code;
}

/** Ends a session with QUIT and waits for its child's end; returns the exit code. */
async function quit(server: ServeServer, client: Client, pid: number): Promise<number> {
  await client.send("QUIT\r\n");
  await client.untilEnd();
  return await ended(server, pid);
}

Deno.test("serve -H -l: tcpserver's environment and log lines", E2E, async (t) => {
  // Stale values in serve's own environment, which a child must not inherit.
  const stale = {
    TCPREMOTEHOST: "stale.example",
    TCPREMOTEINFO: "stale-ident",
    TCPLOCALHOST: "stale-local",
  };
  const server = await ServeServer.start({
    // -t 0: no PTR lookup, so the verdict does not depend on the DNS.
    args: ["-H", "-l", "mx.local.test", "-c", "3", "-S", "-t", "0", "-P", "0.05"],
    rules: [
      {
        from: "127.0.0.2",
        env: {
          TCPREMOTEIP: "192.0.2.2",
          TCPREMOTEPORT: "2525",
          TCPLOCALHOST: "rules.example",
          MARK: "from the rules",
        },
      },
      "127.0.0.9:deny",
    ],
    env: stale,
  });
  const local = `mx.local.test:127.0.0.1:${server.port}`;
  try {
    await t.step("status 0/3 is the first tcpserver line", () => {
      assert.equal(server.lines.find((l) => l.startsWith("tcpserver:")), "tcpserver: status: 0/3");
    });

    await t.step("a client without rules: tcpserver's variables, exact values", async () => {
      const from = server.lines.length;
      const { client, pid } = await greeted(server, "127.0.0.3");
      const port = client.localPort;
      assert.equal(await quit(server, client, pid), 0);
      const env = (await server.record(pid))!.env;
      assert.match(env.SMTPDELAY_WAITED ?? "", /^0\.[0-9]{3}$/);
      assert.deepEqual(
        env,
        serverEnv(server.dir, {
          PROTO: "TCP",
          TCPLOCALHOST: "mx.local.test",
          TCPLOCALIP: "127.0.0.1",
          TCPLOCALPORT: String(server.port),
          TCPREMOTEIP: "127.0.0.3",
          TCPREMOTEPORT: String(port),
          SMTPDELAY_TIER: "noptr",
          SMTPDELAY_PTR: "",
          SMTPDELAY_WAITED: env.SMTPDELAY_WAITED!,
        }),
      );
      await server.waitLog(/^tcpserver: status: 0\/3$/, "status 0/3 after the end", from + 1);
      const lines = server.lines.slice(from);
      assert.match(
        lines[0]!,
        new RegExp(
          `^smtp-delay: info: PASS pid=${pid} ip=127\\.0\\.0\\.3 tier=noptr ptr=- lookup=skipped ` +
            `delay=0\\.050 waited=0\\.[0-9]{3} action=exec memory=off$`,
        ),
      );
      assert.deepEqual(lines.slice(1), [
        "tcpserver: status: 1/3",
        `tcpserver: pid ${pid} from 127.0.0.3`,
        `tcpserver: ok ${pid} ${local} :127.0.0.3::${port}`,
        `tcpserver: end ${pid} status 0`,
        "tcpserver: status: 0/3",
      ]);
    });

    await t.step("the rules' variables are set, and override tcpserver's", async () => {
      const { client, pid } = await greeted(server, "127.0.0.2");
      const port = client.localPort;
      await quit(server, client, pid);
      const env = (await server.record(pid))!.env;
      assert.deepEqual(
        env,
        serverEnv(server.dir, {
          PROTO: "TCP",
          TCPLOCALHOST: "rules.example",
          TCPLOCALIP: "127.0.0.1",
          TCPLOCALPORT: String(server.port),
          TCPREMOTEIP: "192.0.2.2",
          TCPREMOTEPORT: "2525",
          MARK: "from the rules",
          SMTPDELAY_TIER: "noptr",
          SMTPDELAY_PTR: "",
          SMTPDELAY_WAITED: env.SMTPDELAY_WAITED!,
        }),
      );
      // The log says what the socket says; the outcome line, what the rules say.
      assert.ok(
        server.lines.includes(`tcpserver: ok ${pid} ${local} :127.0.0.2::${port}`),
      );
      assert.match(server.linesOf(pid)[0]!, /^smtp-delay: info: PASS pid=\d+ ip=192\.0\.2\.2 /);
    });

    await t.step("status counts go up and down with the running children", async () => {
      const from = server.lines.length;
      const { client: a, pid: pidA } = await greeted(server, "127.0.0.3");
      const { client: b, pid: pidB } = await greeted(server, "127.0.0.4");
      await server.waitLog(/^tcpserver: status: 2\/3$/, "status 2/3", from);
      await quit(server, a, pidA);
      await quit(server, b, pidB);
      await server.waitLog(/^tcpserver: status: 0\/3$/, "status 0/3", from);
      const statuses = server.lines.slice(from).filter((l) => l.startsWith("tcpserver: status"));
      assert.deepEqual(statuses, [1, 2, 1, 0].map((n) => `tcpserver: status: ${n}/3`));
    });

    await t.step("the end line carries the raw wait status (killed: the signal)", async () => {
      const { client, pid } = await greeted(server, "127.0.0.3");
      Deno.kill(pid, "SIGKILL");
      assert.equal(await ended(server, pid), -9);
      assert.ok(server.lines.includes(`tcpserver: end ${pid} status 9`));
      await client.untilEnd();
    });

    await t.step("a deny rule: deny 0, nothing written, no screening, no child", async () => {
      const from = server.lines.length;
      const runs = await server.recorderRuns();
      const client = await Client.connect(server.port, "127.0.0.9");
      const port = client.localPort;
      assert.equal(await client.untilEnd(), "", "nothing written to the client");
      const line = await server.waitLog(/^tcpserver: deny /, "deny", from);
      assert.equal(line, `tcpserver: deny 0 ${local} :127.0.0.9::${port}`);
      // A later client's lines come after: nothing else was logged for this one.
      const { client: later, pid } = await greeted(server, "127.0.0.3");
      await quit(server, later, pid);
      const between = server.lines.slice(from, server.lines.indexOf(line));
      assert.deepEqual(between, [], "nothing before the deny line");
      const after = server.lines.slice(server.lines.indexOf(line) + 1);
      assert.match(after[0]!, new RegExp(`^smtp-delay: info: PASS pid=${pid} ip=127\\.0\\.0\\.3 `));
      assert.equal(await server.recorderRuns(), runs + 1);
    });
  } finally {
    await server.stop();
  }
});

Deno.test("serve -h: TCPREMOTEHOST and TCPLOCALHOST from the DNS", E2E, async () => {
  const dns = await startDns();
  const server = await ServeServer.start({
    args: ["-S", "-d", "0.05", "-D", "0.05", "-P", "0.05"],
    env: { SMTPDELAY_DNS: dns.address },
  });
  /** What this DNS server says of a 127.0.0.x address, as serve gets it. */
  const names = async (ip: string): Promise<string[]> => {
    const [host, port] = dns.address.split(":");
    const rev = ip.split(".").reverse().join(".") + ".in-addr.arpa";
    try {
      const found = await Deno.resolveDns(rev, "PTR", {
        nameServer: { ipAddr: host!, port: Number(port) },
      });
      return found.map((n) => n.replace(/\.$/, "").toLowerCase());
    } catch {
      return [];
    }
  };
  try {
    const { client, pid } = await greeted(server, "127.0.0.3");
    const port = client.localPort;
    client.close();
    await server.endOf(pid);
    const env = (await server.record(pid))!.env;
    const remote = await names("127.0.0.3");
    const localNames = await names("127.0.0.1");
    if (remote.length === 0) assert.equal(env.TCPREMOTEHOST, undefined);
    else assert.ok(remote.includes(env.TCPREMOTEHOST!), `TCPREMOTEHOST=${env.TCPREMOTEHOST}`);
    if (localNames.length === 0) assert.equal(env.TCPLOCALHOST, undefined);
    else assert.ok(localNames.includes(env.TCPLOCALHOST!), `TCPLOCALHOST=${env.TCPLOCALHOST}`);
    assert.ok(
      server.lines.includes(
        `tcpserver: ok ${pid} ${env.TCPLOCALHOST ?? ""}:127.0.0.1:${server.port} ` +
          `${env.TCPREMOTEHOST ?? ""}:127.0.0.3::${port}`,
      ),
      server.lines.join("\n"),
    );
    if (env.TCPREMOTEHOST !== undefined) {
      // One lookup, serve's, shared with the screening.
      assert.match(
        server.linesOf(pid)[0]!,
        new RegExp(` ptr=${env.TCPREMOTEHOST.replaceAll(".", "\\.")} lookup=host `),
      );
    }
  } finally {
    await server.stop();
    await dns.stop();
  }
});

Deno.test("serve -c 1: a client that passed waits, unanswered, for a free slot", E2E, async () => {
  const server = await ServeServer.start({
    args: ["-H", "-c", "1", "-S", "-t", "0", "-P", "0.05"],
  });
  try {
    const { client: first, pid: pidA } = await greeted(server, "127.0.0.2");
    const second = await Client.connect(server.port, "127.0.0.3");
    await server.holds(second.localPort);
    // Probe until the second client is out of the screening: passed, queued.
    for (;;) {
      const { waiting, children } = await server.reload();
      assert.equal(children, 1);
      if (waiting === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await server.holds(second.localPort); // still serve's, not a child's
    assert.equal(second.text, "", "no banner while the first session runs");
    assert.ok(!server.lines.some((l) => l.endsWith(`::${second.localPort}`)));
    const sent = await patient(first, messageBody(100, 1));
    assert.equal(await server.endOf(pidA), 0);
    assert.deepEqual((await server.record(pidA))!.input, sent);
    await second.until(/^220 recorder/);
    const pidB = await server.pidOf(second.localPort);
    const endA = server.lines.indexOf(`tcpserver: end ${pidA} status 0`);
    const okB = server.lines.findIndex((l) => l.startsWith(`tcpserver: ok ${pidB} `));
    assert.ok(endA < okB, "the second child started after the first ended");
    assert.deepEqual(server.lines.slice(endA, endA + 5), [
      `tcpserver: end ${pidA} status 0`,
      "tcpserver: status: 0/1",
      server.linesOf(pidB)[0]!,
      "tcpserver: status: 1/1",
      `tcpserver: pid ${pidB} from 127.0.0.3`,
    ]);
    assert.equal(await quit(server, second, pidB), 0);
  } finally {
    await server.stop();
  }
});

Deno.test(
  "serve without -v writes no tcpserver lines; -R is taken and changes nothing",
  E2E,
  async () => {
    const server = await ServeServer.start({
      args: ["-R", "-H", "-S", "-t", "0", "-P", "0.05"],
      quiet: true,
    });
    try {
      const client = await Client.connect(server.port, "127.0.0.2");
      await client.until(/^220 recorder/);
      const line = await server.waitLog(/^smtp-delay: info: PASS /);
      const pid = Number(/ pid=(\d+) /.exec(line)![1]);
      await client.send("QUIT\r\n");
      await client.untilEnd();
      assert.equal((await server.record(pid))!.env.TCPREMOTEINFO, undefined, "no ident");
      assert.deepEqual(server.lines.filter((l) => l.startsWith("tcpserver")), []);
      assert.deepEqual(server.lines.filter((l) => l.includes(" PASS ")), [line]);
    } finally {
      await server.stop();
    }
    assert.equal((await server.exited).code, 0);
  },
);
