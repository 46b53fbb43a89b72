/**
 * `smtp-delay serve --proxy`: connections from a load balancer start with a
 * PROXY protocol header (v1 or v2), and the client it names is the client
 * for everything: the child's variables, the log lines, -h's lookup, the
 * rules, the memory and --per-ip. A trusted connection without a valid
 * header is dropped with a PROXY line; a header from an address not listed
 * is early talk. The clients connect from 127.0.0.x, the load balancers.
 */
import assert from "node:assert/strict";
import {
  Client,
  E2E,
  FILTER,
  type Peer,
  run,
  ServeServer,
  startDns,
  TIMEOUT_MS,
} from "./harness.ts";

const EARLY = "451 You talked before my greeting; try again later (#4.5.0)\r\n";
const BUSY = "421 Too many connections waiting; try again later (#4.3.2)\r\n";
const BANNER = "220 recorder ESMTP\r\n";

const encoder = new TextEncoder();
const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** IPv6 text (full or short, no IPv4 tail) -> its 16 bytes. */
function v6Bytes(text: string): number[] {
  const [head, tail] = text.split("::") as [string, string | undefined];
  const groups = (s: string | undefined) => s ? s.split(":").map((g) => parseInt(g, 16)) : [];
  const h = groups(head);
  const t = groups(tail);
  const all = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

function port(n: number): number[] {
  return [n >> 8, n & 0xff];
}

/** A PROXY v2 header, PROXY command, TCP over IPv6, then `tlvs`. */
function v2Tcp6(src: number[], dst: number[], sport: number, dport: number, tlvs: number[] = []) {
  const body = [...src, ...dst, ...port(sport), ...port(dport), ...tlvs];
  return new Uint8Array([...SIGNATURE, 0x21, 0x21, ...port(body.length), ...body]);
}

/** A PROXY v2 header, PROXY command, TCP over IPv4. */
function v2Tcp4(src: string, dst: string, sport: number, dport: number) {
  const quad = (s: string) => s.split(".").map(Number);
  const body = [...quad(src), ...quad(dst), ...port(sport), ...port(dport)];
  return new Uint8Array([...SIGNATURE, 0x21, 0x11, ...port(body.length), ...body]);
}

/** `smtp-delay state --store STORE show IP`'s stdout. */
async function shown(store: string, ip: string): Promise<string> {
  const out = await run([...FILTER, "state", "--store", store, "show", ip], {
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
  });
  return out.stdout;
}

Deno.test("serve --proxy 127.0.0.0/8: the header's client is the client", E2E, async (t) => {
  const dns = await startDns();
  const dir = await Deno.makeTempDir({ prefix: "smtp-delay-serve-proxy-" });
  const store = `sqlite:${dir}/state.db`;
  // -h (serve's lookup) on, against dnsmasq: 192.0.2.2 is mail.example.net (ptr), 2001:db8::25
  // mx6.example.net; 192.0.2.3 a dynamic name. The load balancers' own addresses are denied by
  // the rules: a lookup by the socket's peer would refuse every client.
  const server = await ServeServer.start({
    args: ["--proxy", "127.0.0.0/8", "-l", "mx.local.test", "-S", "-d", "0.05"]
      .concat(["-D", "0.4", "-P", "0.4", "--store", store]),
    rules: [
      '192.0.2.2:allow,RULE="for 192.0.2.2"',
      "127.0.0.:deny",
    ],
    env: { SMTPDELAY_DNS: dns.address, SMTPDELAY_STORE: "" },
  });
  const clients: Peer[] = [];
  const connect = async (from = "127.0.0.2") => {
    const c = await Client.connect(server.port, from);
    clients.push(c);
    return c;
  };
  /** A session through the balancer: the header, then quiet until the banner, then QUIT. */
  const session = async (header: Uint8Array, sourcePort: number) => {
    const c = await connect();
    await c.send(header);
    await c.until(/^220 recorder ESMTP\r\n/);
    await c.send("QUIT\r\n");
    assert.equal(await c.untilEnd(), `${BANNER}221 bye\r\n`);
    const pid = await server.pidOf(sourcePort);
    assert.equal(await server.endOf(pid), 0);
    const record = (await server.record(pid))!;
    assert.equal(new TextDecoder().decode(record.input), "QUIT\r\n", "the header is not handed on");
    return { pid, env: record.env, line: server.linesOf(pid)[0]! };
  };
  try {
    await t.step("v1 TCP4: the child's variables, the rules, -h and the lines", async () => {
      const { pid, env, line } = await session(
        encoder.encode("PROXY TCP4 192.0.2.2 198.51.100.25 40001 2525\r\n"),
        40001,
      );
      assert.equal(env.TCPREMOTEIP, "192.0.2.2");
      assert.equal(env.TCPREMOTEPORT, "40001");
      assert.equal(env.TCPLOCALIP, "198.51.100.25");
      assert.equal(env.TCPLOCALPORT, "2525");
      assert.equal(env.TCPREMOTEHOST, "mail.example.net");
      assert.equal(env.TCPLOCALHOST, "mx.local.test");
      assert.equal(env.PROTO, "TCP");
      assert.equal(env.RULE, "for 192.0.2.2");
      assert.match(
        line,
        /^smtp-delay: info: PASS pid=\d+ ip=192\.0\.2\.2 tier=ptr ptr=mail\.example\.net /,
      );
      assert.ok(
        server.lines.includes(
          `tcpserver: ok ${pid} mx.local.test:198.51.100.25:2525 mail.example.net:192.0.2.2::40001`,
        ),
        server.lines.join("\n"),
      );
      assert.ok(server.lines.includes(`tcpserver: pid ${pid} from 192.0.2.2`));
    });

    await t.step("v2 TCP6 with TLVs: an IPv6 client", async () => {
      const tlvs = [0x04, 0, 2, 0, 0, 0x02, 0, 14, ...encoder.encode("mx.example.org")];
      const header = v2Tcp6(v6Bytes("2001:db8::25"), v6Bytes("2001:db8::1"), 40002, 25, tlvs);
      const { pid, env, line } = await session(header, 40002);
      assert.equal(env.TCPREMOTEIP, "2001:db8:0:0:0:0:0:25");
      assert.equal(env.TCPREMOTEPORT, "40002");
      assert.equal(env.TCPLOCALIP, "2001:db8:0:0:0:0:0:1");
      assert.equal(env.TCPLOCALPORT, "25");
      assert.equal(env.TCPREMOTEHOST, "mx6.example.net");
      assert.equal(env.PROTO, "TCP6");
      assert.match(line, / PASS pid=\d+ ip=2001:db8:0:0:0:0:0:25 tier=ptr ptr=mx6\.example\.net /);
      assert.ok(
        server.lines.includes(
          `tcpserver: ok ${pid} mx.local.test:2001:db8:0:0:0:0:0:1:25 ` +
            `mx6.example.net:2001:db8:0:0:0:0:0:25::40002`,
        ),
        server.lines.join("\n"),
      );
    });

    await t.step("v1 TCP6: an IPv6 client in the text header", async () => {
      const { env } = await session(
        encoder.encode("PROXY TCP6 2001:db8::25 2001:db8::1 40003 25\r\n"),
        40003,
      );
      assert.equal(env.TCPREMOTEIP, "2001:db8:0:0:0:0:0:25");
      assert.equal(env.TCPREMOTEHOST, "mx6.example.net");
      assert.equal(env.PROTO, "TCP6");
    });

    await t.step("v2 TCP6 from an IPv4-mapped address: the IPv4 client", async () => {
      const mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 2];
      const server4 = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 25];
      const { env, line } = await session(v2Tcp6(mapped, server4, 40004, 25), 40004);
      assert.equal(env.TCPREMOTEIP, "192.0.2.2");
      assert.equal(env.TCPLOCALIP, "198.51.100.25");
      assert.equal(env.PROTO, "TCP");
      assert.equal(env.RULE, "for 192.0.2.2");
      assert.match(line, / PASS pid=\d+ ip=192\.0\.2\.2 /);
    });

    await t.step("v2 LOCAL (a health check): the connection's own addresses", async () => {
      // The balancer itself is the client then, and the rules deny 127.0.0.x: closed, no child.
      const from = server.lines.length;
      const c = await connect();
      await c.send(new Uint8Array([...SIGNATURE, 0x20, 0x00, 0, 0]));
      assert.equal(await c.untilEnd(), "");
      assert.match(
        await server.waitLog(/^tcpserver: deny /, "deny", from),
        new RegExp(
          `^tcpserver: deny 0 mx\\.local\\.test:127\\.0\\.0\\.1:${server.port} ` +
            `[^:]*:127\\.0\\.0\\.2::${c.localPort}$`,
        ),
      );
    });

    await t.step(
      "the header and the client's early talk in one segment: 451, and its strike",
      async () => {
        const runs = await server.recorderRuns();
        const from = server.lines.length;
        const c = await connect();
        await c.send("PROXY TCP4 192.0.2.3 198.51.100.25 40005 25\r\nEHLO spammer\r\n");
        assert.equal(await c.untilEnd(), EARLY);
        assert.match(
          await server.waitLog(/ EARLY /, "EARLY", from),
          /^smtp-delay: info: EARLY pid=0 ip=192\.0\.2\.3 .* action=451 memory=- bytes=14 data=EHLO\?spammer\?\?$/,
        );
        assert.equal(await server.recorderRuns(), runs, "no child");
        // The memory is the header client's: a strike for 192.0.2.3, nothing for the balancer.
        assert.match(await shown(store, "192.0.2.3"), /^192\.0\.2\.3 .* strikes=1 /);
        assert.match(await shown(store, "127.0.0.2"), /nothing remembered/);
      },
    );

    const dropped = async (send: (c: Peer) => Promise<void>, why: string) => {
      const runs = await server.recorderRuns();
      const from = server.lines.length;
      const c = await connect("127.0.0.4");
      await send(c);
      assert.equal(await c.untilEnd(), "", "dropped without a word");
      const line = await server.waitLog(/ PROXY /, "PROXY", from);
      assert.equal(await server.recorderRuns(), runs, "no child");
      assert.ok(!server.lines.slice(from).some((l) => / (PASS|EARLY|CLOSED) /.test(l)));
      assert.match(line, new RegExp(`^smtp-delay: info: PROXY ip=127\\.0\\.0\\.4 why=${why} `));
      return { line, client: c };
    };

    await t.step(
      "no header from a trusted address, SMTP instead: dropped, why=signature",
      async () => {
        const { line } = await dropped((c) => c.send("EHLO x\r\n"), "signature");
        assert.match(line, / waited=0\.\d{3} action=drop bytes=8 data=EHLO\?x\?\?$/);
      },
    );

    await t.step("a v1 line with garbage after its ports: dropped, why=line", async () => {
      const { line } = await dropped(
        (c) => c.send("PROXY TCP4 192.0.2.2 198.51.100.25 1 25 EHLO x\r\n"),
        "line",
      );
      assert.match(line, / bytes=48 data=PROXY\?TCP4\?192\.0\.2\.2\?/);
    });

    await t.step("a v2 length of 65535: dropped at its 16 bytes, why=long", async () => {
      await dropped(
        (c) => c.send(new Uint8Array([...SIGNATURE, 0x21, 0x11, 0xff, 0xff, 1, 2, 3])),
        "long",
      );
    });

    await t.step("half a header, then a hang-up: dropped, why=closed", async () => {
      await dropped(async (c) => {
        await c.send(v2Tcp4("192.0.2.2", "198.51.100.25", 1, 25).subarray(0, 20));
        c.endOutput();
      }, "closed");
    });

    await t.step(
      "a header sent byte by byte, then silence: dropped at 5 s, why=timeout",
      async () => {
        const { line, client } = await dropped(async (c) => {
          for (const b of encoder.encode("PROXY TCP4 192.0.2.")) {
            await c.send(new Uint8Array([b]));
            await new Promise((r) => setTimeout(r, 20));
          }
        }, "timeout");
        const seconds = (client.endedAt! - client.connectedAt) / 1000;
        assert.ok(seconds >= 4.9 && seconds < 5 + TIMEOUT_MS / 1000, `dropped after ${seconds} s`);
        assert.match(line, / waited=5\.\d{3} action=drop bytes=19 data=PROXY\?TCP4\?192\.0\.2\.$/);
      },
    );
  } finally {
    for (const c of clients) c.close();
    await server.stop();
    await dns.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "serve --proxy 127.0.0.2 --per-ip 1: counts the header's client, not the balancer; " +
    "another address's header is early talk",
  E2E,
  async () => {
    // -t 0: no lookup; every client waits -P 3 s in the screening.
    const server = await ServeServer.start({
      args: ["-H", "-l", "mx.local.test", "--proxy", "127.0.0.2", "--per-ip", "1"]
        .concat(["--stress", "0", "-S", "-t", "0", "-P", "3"]),
    });
    const clients: Peer[] = [];
    const connect = async (from: string, header: string) => {
      const c = await Client.connect(server.port, from);
      clients.push(c);
      await c.send(header);
      return c;
    };
    try {
      // Two clients through one balancer: both held (the balancer is not one client of two).
      const first = await connect("127.0.0.2", "PROXY TCP4 192.0.2.50 198.51.100.25 1 25\r\n");
      const second = await connect("127.0.0.2", "PROXY TCP4 192.0.2.51 198.51.100.25 2 25\r\n");
      await server.holds(first.localPort);
      await server.holds(second.localPort);
      // The first one's client again: over --per-ip, told so through the balancer.
      const from = server.lines.length;
      const again = await connect("127.0.0.2", "PROXY TCP4 192.0.2.50 198.51.100.25 3 25\r\n");
      assert.equal(await again.untilEnd(), BUSY);
      const at = (again.endedAt! - again.connectedAt) / 1000;
      assert.ok(at < 2.5, `421 after ${at} s, want at once (the delay is 3 s)`);
      assert.equal(
        await server.waitLog(/ BUSY /, "BUSY", from),
        // Three waiting: the one refused was in the room while its header was read.
        "smtp-delay: info: BUSY ip=192.0.2.50 why=per-ip waiting=3 action=421",
      );
      assert.equal(first.ended || second.ended, false, "the two others still wait");

      // From 127.0.0.3, not a balancer: a PROXY line is the client's early talk.
      const spoof = await connect("127.0.0.3", "PROXY TCP4 192.0.2.77 198.51.100.25 4 25\r\n");
      assert.equal(await spoof.untilEnd(), EARLY);
      assert.match(
        await server.waitLog(/ EARLY /, "EARLY", from),
        /^smtp-delay: info: EARLY pid=0 ip=127\.0\.0\.3 .* bytes=42 data=PROXY\?TCP4\?192\.0\.2\.77\?/,
      );
      assert.ok(
        !server.lines.slice(from).some((l) => / ip=192\.0\.2\.77 /.test(l)),
        "the spoofed address is nobody's",
      );
    } finally {
      for (const c of clients) c.close();
      await server.stop();
    }
  },
);
