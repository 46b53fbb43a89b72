/**
 * More of `smtp-delay serve` as tcpserver's replacement: --per-ip (the
 * clients of one address, waiting or in a session, at once; 0 is no cap),
 * IPv6 (on ::1, and :: taking IPv4 clients too), -u/-g (root dropped after
 * binding a privileged port), -b (the listen backlog) and -l (TCPLOCALHOST).
 */
import assert from "node:assert/strict";
import { Client, E2E, greeted, Peer, readRecord, run, ServeServer } from "./harness.ts";

const BUSY = "421 Too many connections waiting; try again later (#4.3.2)\r\n";
const BANNER = "220 recorder ESMTP\r\n";

/**
 * A `wrap` for ServeServer that makes serve listen on `host` `port` instead
 * of the harness's `127.0.0.1 0` (the first argument 127.0.0.1 and the one
 * after it are replaced).
 */
function listenOn(host: string, port = "0"): string[] {
  const script = "h=$1 p=$2; shift 2; n=0; for a; do shift; " +
    'if [ $n = 1 ]; then a=$p n=2; elif [ $n = 0 ] && [ "$a" = 127.0.0.1 ]; then a=$h n=1; fi; ' +
    'set -- "$@" "$a"; done; exec "$@"';
  return ["/bin/sh", "-c", script, "sh", host, port];
}

/** Whether this machine lets a socket listen on `host`. */
function canListen(host: string): boolean {
  try {
    Deno.listen({ hostname: host, port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

const V6_LOOPBACK = canListen("::1");
const V6_ANY = canListen("::");
const skipped = (ok: boolean, why: string) => ok ? "" : ` (SKIPPED: ${why} in this sandbox)`;

/** A free port below 1024 (only root can bind it). */
function privilegedPort(): number {
  for (let port = 700; port < 1024; port++) {
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch {
      // taken
    }
  }
  throw new Error("no free port from 700 to 1023");
}

/** serve's default backlog as the kernel keeps it: -b's 4096, or net.core.somaxconn if lower. */
const DEFAULT_BACKLOG = Math.min(
  4096,
  Number(Deno.readTextFileSync("/proc/sys/net/core/somaxconn").trim()),
);

/** The listening socket on `port` as ss(8) sees it: [local address, backlog]. */
async function listening(port: number): Promise<[string, number]> {
  const out = await run(["ss", "-ltnH", `sport = :${port}`]);
  const rows = out.stdout.trim().split("\n").filter((l) => l !== "");
  assert.equal(rows.length, 1, `ss: ${out.stdout}${out.stderr}`);
  const [state, , sendQ, local] = rows[0]!.trim().split(/\s+/);
  assert.equal(state, "LISTEN");
  return [local!, Number(sendQ)]; // Send-Q of a listening socket is its backlog
}

/** The whitespace-separated values of `field:` in /proc/PID/status. */
async function procStatus(pid: number, field: string): Promise<string[]> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const line = status.split("\n").find((l) => l.startsWith(`${field}:`));
  assert.ok(line !== undefined, `no ${field} in /proc/${pid}/status`);
  return line.slice(field.length + 1).trim().split(/\s+/);
}

Deno.test(
  "serve --per-ip 2: an address's waiting clients and sessions count; the next gets 421 at once",
  E2E,
  async () => {
    // -t 0 -P 1: no lookup; every client waits 1 s in the screening.
    const server = await ServeServer.start({
      args: ["-H", "-l", "mx.local.test", "--per-ip", "2", "--stress", "0"]
        .concat(["-S", "-t", "0", "-P", "1"]),
    });
    const clients: Client[] = [];
    const connect = async (from: string) => {
      const c = await Client.connect(server.port, from);
      clients.push(c);
      return c;
    };
    const busy = () => server.lines.filter((l) => l.includes(" BUSY "));
    try {
      // Two of 127.0.0.2 wait in the screening; the third is refused before its screening.
      const first = await connect("127.0.0.2");
      const second = await connect("127.0.0.2");
      const firstPort = first.localPort;
      const secondPort = second.localPort;
      const third = await connect("127.0.0.2");
      const thirdPort = third.localPort;
      const other = await connect("127.0.0.3");
      const otherPort = other.localPort;
      assert.equal(await third.untilEnd(), BUSY);
      const at = (third.firstByteAt! - third.connectedAt) / 1000;
      assert.ok(at < 0.9, `421 after ${at} s, want at once (the delay is 1 s)`);
      assert.equal(
        await server.waitLog(/^smtp-delay: info: BUSY /),
        "smtp-delay: info: BUSY ip=127.0.0.2 why=per-ip waiting=2 action=421",
      );
      // Another address is served meanwhile.
      await other.until(/^220 recorder ESMTP\r\n/);
      const otherPid = await server.pidOf(otherPort);
      assert.equal((await server.record(otherPid))!.env.TCPREMOTEIP, "127.0.0.3");

      // Both become sessions: they still count.
      await first.until(/^220 recorder ESMTP\r\n/);
      await second.until(/^220 recorder ESMTP\r\n/);
      const firstPid = await server.pidOf(firstPort);
      await server.pidOf(secondPort);
      const from = server.lines.length;
      const fourth = await connect("127.0.0.2");
      const fourthPort = fourth.localPort;
      assert.equal(await fourth.untilEnd(), BUSY);
      assert.equal(
        await server.waitLog(/^smtp-delay: info: BUSY /, "the second BUSY", from),
        "smtp-delay: info: BUSY ip=127.0.0.2 why=per-ip waiting=0 action=421",
      );
      assert.equal(busy().length, 2, server.lines.join("\n"));
      for (const refused of [thirdPort, fourthPort]) {
        assert.ok(
          !server.lines.some((l) => l.endsWith(`::${refused}`)),
          "no child for a refused one",
        );
      }
      assert.deepEqual(await server.reload(), { waiting: 0, children: 3 });

      // One session ends: the address is served again.
      await first.send("QUIT\r\n");
      assert.equal(await first.untilEnd(), `${BANNER}221 bye\r\n`);
      assert.equal(await server.endOf(firstPid), 0);
      const fifth = await connect("127.0.0.2");
      const fifthPort = fifth.localPort;
      await fifth.until(/^220 recorder ESMTP\r\n/);
      const fifthPid = await server.pidOf(fifthPort);
      assert.equal((await server.record(fifthPid))!.env.TCPREMOTEPORT, String(fifthPort));
      assert.equal(busy().length, 2, server.lines.join("\n"));
    } finally {
      for (const c of clients) c.close();
      await server.stop();
    }
  },
);

Deno.test("serve --per-ip 0: no cap (60 clients of one address wait at once)", E2E, async () => {
  const server = await ServeServer.start({
    args: ["-H", "--per-ip", "0", "--stress", "0", "-S", "-t", "0", "-P", "10"],
  });
  const clients: Client[] = [];
  try {
    for (let i = 0; i < 60; i++) clients.push(await Client.connect(server.port, "127.0.0.2"));
    for (const c of clients) await server.holds(c.localPort);
    assert.deepEqual(await server.reload(), { waiting: 60, children: 0 });
    assert.ok(!server.lines.some((l) => l.includes(" BUSY ")), server.lines.join("\n"));
    assert.ok(clients.every((c) => !c.ended && c.text === ""));
  } finally {
    for (const c of clients) c.close();
    await server.stop();
  }
});

Deno.test({
  name: "serve on ::1: an IPv6 client, PROTO=TCP6, addresses in full; --per-ip counts the /64" +
    skipped(V6_LOOPBACK, "::1 does not listen"),
  ignore: !V6_LOOPBACK,
  ...E2E,
  fn: async () => {
    const server = await ServeServer.start({
      args: ["-H", "-l", "mx6.local.test", "--per-ip", "1", "-S", "-t", "0", "-P", "0"],
      wrap: listenOn("::1"),
    });
    const peers: Peer[] = [];
    try {
      assert.deepEqual(await listening(server.port), [`[::1]:${server.port}`, DEFAULT_BACKLOG]);
      const peer = await Peer.connect("::1", server.port);
      peers.push(peer);
      const port = peer.localPort;
      await peer.until(/^220 recorder ESMTP\r\n/);
      const pid = await server.pidOf(port);
      const full = "0:0:0:0:0:0:0:1";
      assert.ok(
        server.lines.includes(
          `tcpserver: ok ${pid} mx6.local.test:${full}:${server.port} :${full}::${port}`,
        ),
        server.lines.join("\n"),
      );
      assert.ok(server.lines.includes(`tcpserver: pid ${pid} from ${full}`));
      assert.match(
        server.lines.find((l) => l.includes(` PASS pid=${pid} `))!,
        /^smtp-delay: info: PASS pid=\d+ ip=0:0:0:0:0:0:0:1 tier=noptr ptr=- lookup=skipped /,
      );
      const env = (await server.record(pid))!.env;
      assert.deepEqual(
        {
          PROTO: env.PROTO,
          TCPLOCALIP: env.TCPLOCALIP,
          TCPLOCALPORT: env.TCPLOCALPORT,
          TCPLOCALHOST: env.TCPLOCALHOST,
          TCPREMOTEIP: env.TCPREMOTEIP,
          TCPREMOTEPORT: env.TCPREMOTEPORT,
        },
        {
          PROTO: "TCP6",
          TCPLOCALIP: full,
          TCPLOCALPORT: String(server.port),
          TCPLOCALHOST: "mx6.local.test",
          TCPREMOTEIP: full,
          TCPREMOTEPORT: String(port),
        },
      );
      // The same /64 while the session runs: 421, the address in full in the BUSY line.
      const second = await Peer.connect("::1", server.port);
      peers.push(second);
      assert.equal(await second.untilEnd(), BUSY);
      assert.equal(
        await server.waitLog(/^smtp-delay: info: BUSY /),
        `smtp-delay: info: BUSY ip=${full} why=per-ip waiting=0 action=421`,
      );
      await peer.send("QUIT\r\n");
      assert.equal(await peer.untilEnd(), `${BANNER}221 bye\r\n`);
      assert.equal(await server.endOf(pid), 0);
    } finally {
      for (const p of peers) p.close();
      await server.stop();
    }
  },
});

Deno.test({
  name: "serve on :: takes IPv4 clients (PROTO=TCP, dotted addresses) and IPv6 ones" +
    skipped(V6_ANY, ":: does not listen"),
  ignore: !V6_ANY,
  ...E2E,
  fn: async () => {
    const server = await ServeServer.start({
      args: ["-H", "-l", "mx.local.test", "-S", "-t", "0", "-P", "0"],
      wrap: listenOn("::"),
    });
    try {
      assert.deepEqual(await listening(server.port), [`*:${server.port}`, DEFAULT_BACKLOG]);
      const { client, pid } = await greeted(server, "127.0.0.2");
      const port = client.localPort;
      assert.ok(
        server.lines.includes(
          `tcpserver: ok ${pid} mx.local.test:127.0.0.1:${server.port} :127.0.0.2::${port}`,
        ),
        server.lines.join("\n"),
      );
      assert.match(
        server.lines.find((l) => l.includes(` PASS pid=${pid} `))!,
        /^smtp-delay: info: PASS pid=\d+ ip=127\.0\.0\.2 /,
      );
      const env = (await server.record(pid))!.env;
      assert.deepEqual(
        [env.PROTO, env.TCPLOCALIP, env.TCPREMOTEIP, env.TCPREMOTEPORT],
        ["TCP", "127.0.0.1", "127.0.0.2", String(port)],
      );
      client.close();
      await server.endOf(pid);
      if (V6_LOOPBACK) {
        const peer = await Peer.connect("::1", server.port);
        const port6 = peer.localPort;
        await peer.until(/^220 recorder ESMTP\r\n/);
        const pid6 = await server.pidOf(port6);
        const env6 = (await server.record(pid6))!.env;
        assert.deepEqual(
          [env6.PROTO, env6.TCPLOCALIP, env6.TCPREMOTEIP],
          ["TCP6", "0:0:0:0:0:0:0:1", "0:0:0:0:0:0:0:1"],
        );
        peer.close();
        await server.endOf(pid6);
      }
    } finally {
      await server.stop();
    }
  },
});

Deno.test({
  name: "serve -u 65534 -g 65534: binds a privileged port as root, then it and its children " +
    "run as 65534" + skipped(Deno.uid() === 0, "not root"),
  ignore: Deno.uid() !== 0,
  ...E2E,
  fn: async () => {
    // The records go where user 65534 can write; the harness's own directory is root's.
    const records = await Deno.makeTempDir({ prefix: "smtp-delay-records-" });
    await Deno.chmod(records, 0o777);
    const port = privilegedPort();
    const server = await ServeServer.start({
      args: ["-H", "-l", "mx.local.test", "-u", "65534", "-g", "65534"]
        .concat(["-S", "-t", "0", "-P", "0"]),
      noRules: true, // a rules file in the harness's directory would be unreadable after the drop
      env: { RECORD_DIR: records },
      wrap: listenOn("127.0.0.1", String(port)),
    });
    try {
      assert.equal(server.port, port, "serve listens on the privileged port");
      for (const field of ["Uid", "Gid"]) {
        assert.deepEqual(await procStatus(server.pid, field), ["65534", "65534", "65534", "65534"]);
      }
      assert.deepEqual(await procStatus(server.pid, "Groups"), ["65534"]);
      const { client, pid } = await greeted(server, "127.0.0.2");
      // The child, while it runs.
      assert.deepEqual(await procStatus(pid, "Uid"), ["65534", "65534", "65534", "65534"]);
      assert.deepEqual(await procStatus(pid, "Gid"), ["65534", "65534", "65534", "65534"]);
      assert.deepEqual(await procStatus(pid, "Groups"), ["65534"]);
      const handed = (await readRecord(records, pid))!;
      assert.equal(handed.info.ppid, String(server.pid));
      assert.equal((await Deno.stat(`${records}/${pid}.info`)).uid, 65534);
      assert.equal(handed.env.TCPREMOTEIP, "127.0.0.2");
      await client.send("QUIT\r\n");
      assert.equal(await client.untilEnd(), `${BANNER}221 bye\r\n`);
      assert.equal(await server.endOf(pid), 0);
      assert.ok(
        !server.lines.some((l) => / (warning|fatal): /.test(l)),
        server.lines.join("\n"),
      );
    } finally {
      await server.stop();
      await Deno.remove(records, { recursive: true });
    }
  },
});

Deno.test({
  name: "serve -u 65534 alone, as tcpserver's -u: the user drops, the groups stay" +
    skipped(Deno.uid() === 0, "not root"),
  ignore: Deno.uid() !== 0,
  ...E2E,
  fn: async () => {
    // Root with group 100 (not 0), so that a group set to 0 would show.
    const server = await ServeServer.start({
      args: ["-H", "-l", "mx.local.test", "-u", "65534", "-S", "-t", "0", "-P", "0"],
      noRules: true,
      wrap: ["setpriv", "--regid=100", "--groups=100"],
    });
    try {
      assert.deepEqual(await procStatus(server.pid, "Uid"), ["65534", "65534", "65534", "65534"]);
      assert.deepEqual(await procStatus(server.pid, "Gid"), ["100", "100", "100", "100"]);
      assert.deepEqual(await procStatus(server.pid, "Groups"), ["100"]);
    } finally {
      await server.stop();
    }
  },
});

Deno.test("serve -b 5 -l NAME: a backlog of 5, TCPLOCALHOST=NAME", E2E, async () => {
  const server = await ServeServer.start({
    args: ["-H", "-b", "5", "-l", "mx.backlog.test", "-S", "-t", "0", "-P", "0"],
  });
  try {
    assert.deepEqual(await listening(server.port), [`127.0.0.1:${server.port}`, 5]);
    const { client, pid } = await greeted(server, "127.0.0.2");
    const port = client.localPort;
    assert.ok(
      server.lines.includes(
        `tcpserver: ok ${pid} mx.backlog.test:127.0.0.1:${server.port} :127.0.0.2::${port}`,
      ),
      server.lines.join("\n"),
    );
    assert.equal((await server.record(pid))!.env.TCPLOCALHOST, "mx.backlog.test");
    await client.send("QUIT\r\n");
    assert.equal(await client.untilEnd(), `${BANNER}221 bye\r\n`);
    assert.equal(await server.endOf(pid), 0);
  } finally {
    await server.stop();
  }
});
