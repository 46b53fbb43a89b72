/**
 * `smtp-delay serve` at its limits: out of file descriptors (421, the server
 * lives on). Its per-IP memory is in memory_test.ts, with the filter's.
 */
import assert from "node:assert/strict";
import { banner, Client, E2E, poll, ServeServer } from "./harness.ts";

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
      await poll(() => `every client held or refused\n${server.lines.join("\n")}`, async () => {
        let settled = 0;
        for (const [i, c] of clients.entries()) {
          if (c.ended) {
            refused.add(c);
            settled++;
          } else if (await server.isHolding(ports[i]!)) settled++;
        }
        return settled === clients.length || undefined;
      }, 20);
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
      await poll(
        () => `a CLOSED line for each of the ${held} held clients\n${server.lines.join("\n")}`,
        () => server.lines.filter((l) => l.includes(" CLOSED ")).length >= held || undefined,
        10,
        5000,
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

Deno.test(
  "serve warns at start when the descriptors cannot hold --waiting: twice as many with lists",
  E2E,
  async (t) => {
    const rows: [string, string[], boolean][] = [
      ["without lists, 200 + 64 fit in 300: no word", [], false],
      ["with lists, 2 x 200 + 64 do not: a warning", ["--dnsbl", "bl.test"], true],
    ];
    for (const [name, args, warns] of rows) {
      await t.step(name, async () => {
        const server = await ServeServer.start({
          args: ["--waiting", "200", ...args],
          wrap: ["prlimit", "--nofile=300:300"],
        });
        try {
          const warning = "smtp-delay: warning: only 300 file descriptors for --waiting 200: " +
            "clients beyond get 421 (raise ulimit -n)";
          assert.equal(server.lines.includes(warning), warns, server.lines.join("\n"));
        } finally {
          await server.stop();
        }
      });
    }
  },
);
