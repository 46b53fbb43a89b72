/**
 * `smtp-delay serve` at its limits: out of file descriptors (421, the server
 * lives on), and the per-IP memory on SQLite kept by the one server process
 * (passed, penalty, and --max-conns counting a session running in a child).
 */
import assert from "node:assert/strict";
import { banner, baselineFds, Client, type Rule, ServeServer, within } from "./harness.ts";

const E2E = { sanitizeOps: false, sanitizeResources: false };

const BUSY = "421 Too many connections waiting; try again later (#4.3.2)\r\n";

Deno.test(
  "serve out of file descriptors: 421 why=fds, and serves again once free",
  E2E,
  async () => {
    // An idle serve has about 28 fds open (Deno's own); 40 leaves room for a few clients.
    const server = await ServeServer.start({
      args: ["-H", "-l", "mx.local.test", "-S", "-t", "0", "-d", "5"],
      rules: [
        { from: "127.0.0.5", env: { TCPREMOTEHOST: "mx.example.org" } }, // ptr: waits 5 s
        { from: "127.0.0.6", env: { TCPREMOTEHOST: "mx.example.org", SMTPDELAYd: "0.05" } },
      ],
      wrap: ["prlimit", "--nofile=40:40"],
    });
    const clients: Client[] = [];
    try {
      const ports: number[] = [];
      for (let i = 0; i < 24; i++) {
        const c = await Client.connect(server.port, "127.0.0.5");
        clients.push(c);
        ports.push(c.localPort);
      }
      // Each client is either held in the screening or turned away.
      const refused = new Set<Client>();
      await within(
        10_000,
        `every client held or refused\n${server.lines.join("\n")}`,
        (async () => {
          for (;;) {
            let settled = 0;
            for (const [i, c] of clients.entries()) {
              if (c.closed) {
                refused.add(c);
                settled++;
              } else if (await server.isHolding(ports[i]!)) settled++;
            }
            if (settled === clients.length) return;
            await new Promise((r) => setTimeout(r, 20));
          }
        })(),
      );
      const held = clients.length - refused.size;
      assert.ok(refused.size > 0, "some were refused");
      assert.ok(held > 0, "some were taken");
      for (const c of refused) assert.equal(c.text, BUSY);
      for (const c of clients) if (!refused.has(c)) assert.equal(c.text, "");
      const busy = server.lines.filter((l) => l.includes(" BUSY "));
      assert.equal(busy.length, refused.size, server.lines.join("\n"));
      for (const line of busy) {
        assert.equal(
          line,
          `smtp-delay: info: BUSY ip=127.0.0.5 why=fds waiting=${held} action=421`,
        );
      }
      assert.ok(
        server.lines.includes(
          "smtp-delay: warning: unable to accept: out of file descriptors or memory (errno 24)",
        ),
        server.lines.join("\n"),
      );
      // The held ones leave; their fds come back; a new client passes.
      for (const c of clients) c.close();
      await within(
        5000,
        `a CLOSED line for each of the ${held} held clients\n${server.lines.join("\n")}`,
        (async () => {
          while (server.lines.filter((l) => l.includes(" CLOSED ")).length < held) {
            await new Promise((r) => setTimeout(r, 10));
          }
        })(),
      );
      const { seconds, pid } = await banner(server, "127.0.0.6");
      assert.ok(seconds < 3, `banner after ${seconds} s`);
      assert.match(server.linesOf(pid)[0]!, / PASS pid=\d+ ip=127\.0\.0\.6 .* action=exec /);
      assert.equal((await server.record(pid))!.info.exe?.endsWith("/recorder"), true);
    } finally {
      for (const c of clients) c.close();
      await server.stop();
    }
  },
);

const RULES: Rule[] = [
  // dynamic: waits -D; ptr: waits -d
  { from: "127.0.0.3", env: { TCPREMOTEIP: "192.0.2.3", TCPREMOTEHOST: "dsl-3.pool.example.net" } },
  { from: "127.0.0.5", env: { TCPREMOTEIP: "192.0.2.5", TCPREMOTEHOST: "mx.example.org" } },
  { from: "127.0.0.7", env: { TCPREMOTEIP: "192.0.2.7", TCPREMOTEHOST: "mx7.example.org" } },
];

Deno.test("serve's memory on SQLite", E2E, async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smtp-delay-serve-memory-" });
  const store = `sqlite:${dir}/state.db`;
  const server = await ServeServer.start({
    args: ["-H", "-S", "-d", "0.05", "-D", "0.6", "-P", "0.6", "--store", store]
      .concat(["--max-conns", "1"]),
    rules: RULES,
    env: { SMTPDELAY_STORE: "" }, // unset: --store says where
  });
  try {
    await t.step("a polite client's second connection gets the ptr delay", async () => {
      const first = await banner(server, "127.0.0.3");
      assert.ok(first.seconds >= 0.6, `first banner after ${first.seconds} s, want 0.6`);
      assert.match(
        server.linesOf(first.pid)[0]!,
        / PASS .* tier=dynamic .* delay=0\.600 .* action=exec memory=-$/,
      );
      assert.equal(
        (await server.record(first.pid))!.info.fds,
        await baselineFds(),
        "the state file is not handed to the child",
      );
      const second = await banner(server, "127.0.0.3");
      assert.ok(second.seconds < 0.6, `second banner after ${second.seconds} s, want 0.05`);
      assert.match(
        server.linesOf(second.pid)[0]!,
        / PASS .* tier=dynamic .* delay=0\.050 .* action=exec memory=passed$/,
      );
    });

    await t.step("an early talker's next connection gets the noptr delay", async () => {
      const from = server.lines.length;
      const early = await Client.connect(server.port, "127.0.0.5");
      await early.send("EHLO early.example.org\r\n");
      assert.match(await early.untilClosed(), /^451 /);
      assert.match(
        await server.waitLog(/ EARLY /, "EARLY", from),
        /^smtp-delay: info: EARLY pid=0 ip=192\.0\.2\.5 .* action=451 memory=- bytes=24 /,
      );
      const next = await banner(server, "127.0.0.5");
      assert.ok(next.seconds >= 0.6, `banner after ${next.seconds} s, want 0.6 (the penalty)`);
      assert.match(
        server.linesOf(next.pid)[0]!,
        / PASS .* tier=ptr .* delay=0\.600 .* memory=penalty$/,
      );
    });

    await t.step(
      "--max-conns 1: a second connection while the first session runs gets 421",
      async () => {
        const running = await Client.connect(server.port, "127.0.0.7");
        const port = running.localPort;
        await running.until(/^220 recorder/);
        const pid = await server.pidOf(port);
        const from = server.lines.length;
        const second = await Client.connect(server.port, "127.0.0.7");
        assert.equal(
          await second.untilClosed(),
          "421 Too many connections from your address; try again later (#4.7.0)\r\n",
        );
        assert.match(
          await server.waitLog(/ REFUSED /, "REFUSED", from),
          /^smtp-delay: info: REFUSED pid=0 ip=192\.0\.2\.7 .* action=421 memory=conns$/,
        );
        await running.send("QUIT\r\n");
        await running.untilClosed();
        assert.equal(await server.endOf(pid), 0);
        const after = await banner(server, "127.0.0.7");
        assert.match(server.linesOf(after.pid)[0]!, / PASS .* action=exec memory=(-|passed)$/);
      },
    );
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
