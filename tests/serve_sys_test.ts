/**
 * src/serve/sys.ts: the sockaddr codec (pure), then the Sys interface for real
 * through libc on loopback. Every wait is an epollWait or a read with a
 * deadline of a few seconds; every fd opened is closed.
 */
import assert from "node:assert/strict";
import { formatIp, type Ip, parseIp } from "../src/ip.ts";
import {
  type Address,
  EAGAIN,
  EPOLLIN,
  EPOLLONESHOT,
  parseSockaddr,
  sockaddr,
  sys,
  SysError,
} from "../src/serve/sys.ts";

const EPIPE = 32;
const ENOENT = 2;
/** The longest a single epollWait or read may take. */
const WAIT_MS = 3_000;

function ip(text: string): Ip {
  const parsed = parseIp(text);
  if (!parsed) throw new Error(`bad test address ${text}`);
  return parsed;
}

/** An Address as text, for messages and comparisons. */
function show(address: Address): string {
  return `${address.ip.family}/${formatIp(address.ip)}/${address.port}`;
}

const encode = (text: string) => new TextEncoder().encode(text);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing in ${WAIT_MS} ms`)), WAIT_MS);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Reads `conn` to its end, within the deadline. */
async function readAll(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await withDeadline(conn.read(buf), "the client's read");
    if (n === null) break;
    chunks.push(buf.slice(0, n));
  }
  const all = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return decode(all);
}

Deno.test("sockaddr() writes struct sockaddr_in and sockaddr_in6 as the kernel reads them", async (t) => {
  const rows: { name: string; ip: Ip; port: number; want: number[] }[] = [
    {
      name: "IPv4: AF_INET 2 little-endian, the port big-endian, the address, 8 zero bytes",
      ip: ip("192.0.2.7"),
      port: 25,
      want: [2, 0, 0, 25, 192, 0, 2, 7, 0, 0, 0, 0, 0, 0, 0, 0],
    },
    {
      name: "IPv6: AF_INET6 10, the port, flowinfo 0, the address, scope 0",
      ip: ip("2001:db8::1"),
      port: 0x1234,
      // deno-fmt-ignore
      want: [
        10, 0, 0x12, 0x34, 0, 0, 0, 0,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        0, 0, 0, 0,
      ],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.deepEqual([...sockaddr(row.ip, row.port)], row.want);
    });
  }
});

Deno.test("parseSockaddr() reads back what sockaddr() wrote", async (t) => {
  const rows: { name: string; ip: Ip; port: number }[] = [
    { name: "IPv4", ip: ip("192.0.2.7"), port: 25 },
    { name: "IPv4 any, port 0", ip: ip("0.0.0.0"), port: 0 },
    { name: "IPv4, port 65535", ip: ip("255.255.255.255"), port: 65535 },
    { name: "IPv6", ip: ip("2001:db8::1"), port: 587 },
    { name: "IPv6 any", ip: ip("::"), port: 2525 },
    { name: "IPv6 loopback, a high port", ip: ip("::1"), port: 40001 },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.equal(show(parseSockaddr(sockaddr(row.ip, row.port))), show(row));
    });
  }
});

Deno.test("parseSockaddr() reads an IPv4-mapped IPv6 address as IPv4", async (t) => {
  const mapped = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7]);
  const rows: { name: string; bytes: Uint8Array; want: string }[] = [
    { name: "::ffff:192.0.2.7", bytes: mapped, want: "4/192.0.2.7/25" },
    {
      name: "::fffe:192.0.2.7 is not mapped",
      bytes: mapped.map((b, i) => (i === 11 ? 0xfe : b)),
      want: "6/0:0:0:0:0:fffe:c000:207/25",
    },
    {
      name: "::192.0.2.7 (IPv4-compatible) is not mapped",
      bytes: mapped.map((b, i) => (i === 10 || i === 11 ? 0 : b)),
      want: "6/0:0:0:0:0:0:c000:207/25",
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const got = parseSockaddr(sockaddr({ family: 6, bytes: row.bytes }, 25));
      assert.equal(show(got), row.want);
    });
  }
});

Deno.test("parseSockaddr() reads a sockaddr inside a larger buffer, as accept() fills one", async (t) => {
  for (const address of [ip("198.51.100.1"), ip("2001:db8::25")]) {
    await t.step(formatIp(address), () => {
      const buf = new Uint8Array(8 + 128).fill(0xaa);
      buf.set(sockaddr(address, 2525), 8);
      const got = parseSockaddr(buf.subarray(8));
      assert.equal(show(got), show({ ip: address, port: 2525 }));
    });
  }
});

/**
 * The fds this process has without close-on-exec (given by whatever started
 * the test): every child inherits them, from tcpserver as from serve.
 */
function nonCloexecFds(): number[] {
  const O_CLOEXEC = 0o2000000;
  const fds: number[] = [];
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    const fd = Number(entry.name);
    if (fd <= 2) continue;
    try {
      const flags = /^flags:\s*([0-7]+)$/m.exec(Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`));
      if (flags && (parseInt(flags[1]!, 8) & O_CLOEXEC) === 0) fds.push(fd);
    } catch {
      // the directory's own fd, closed by now
    }
  }
  return fds;
}

Deno.test("Sys serves a loopback client: listen, epoll, accept, spawn on fd 0/1, pidfd, reap", async (t) => {
  const inherited = nonCloexecFds();
  const s = sys();
  const fds: number[] = [];
  const open = (fd: number) => {
    assert.ok(fd >= 0, `got fd ${fd}`);
    fds.push(fd);
    return fd;
  };
  const close = (fd: number) => {
    s.close(fd);
    fds.splice(fds.indexOf(fd), 1);
  };
  let client: Deno.TcpConn | undefined;
  try {
    const listener = open(s.listen(ip("127.0.0.1"), 0, 5));
    const local = s.localAddress(listener);
    await t.step("localAddress() gives the address and the port the kernel chose", () => {
      assert.equal(formatIp(local.ip), "127.0.0.1");
      assert.ok(local.port > 0 && local.port < 65536, `port ${local.port}`);
    });

    const ep = open(s.epollCreate());
    s.epollAdd(ep, listener, EPOLLIN);
    await t.step("with no client, accept() gives EAGAIN and epollWait() nothing", async () => {
      assert.deepEqual(s.accept(listener), { errno: EAGAIN });
      assert.deepEqual(await s.epollWait(ep, 8, 0), []);
    });

    client = await Deno.connect({ hostname: "127.0.0.1", port: local.port });
    await t.step("epollWait() reports the listener readable", async () => {
      const events = await s.epollWait(ep, 8, WAIT_MS);
      assert.equal(events.length, 1, JSON.stringify(events));
      assert.equal(events[0]![0], listener);
      assert.ok((events[0]![1] & EPOLLIN) !== 0, `events ${events[0]![1]}`);
    });

    const accepted = s.accept(listener);
    if (!("fd" in accepted)) assert.fail(`accept: errno ${accepted.errno}`);
    const conn = open(accepted.fd);
    await t.step("accept() gives the client's address and port", () => {
      assert.equal(show(accepted.remote), `4/127.0.0.1/${client!.localAddr.port}`);
      assert.equal(show(s.localAddress(conn)), show(local));
    });
    s.epollDelete(ep, listener);

    const pid = s.spawn(
      [
        "/bin/sh",
        "-c",
        'echo hi; echo "X=$X HOME=${HOME-unset}"; echo fds; ls /proc/$$/fd; echo signals; ' +
        'grep -E "^Sig(Ign|Blk):" /proc/self/status; echo end; cat; exit 3',
      ],
      ["X=1"],
      conn,
      conn,
    );
    close(conn); // the child has its copy
    const watch = open(s.pidfd(pid));
    s.epollAdd(ep, watch, EPOLLIN);
    await t.step(
      "while the child runs, reap() gives undefined and its pidfd is quiet",
      async () => {
        assert.equal(s.reap(pid), undefined);
        assert.deepEqual(await s.epollWait(ep, 8, 0), []);
      },
    );

    await client.write(encode("ping\n"));
    await client.closeWrite();
    const lines = (await readAll(client)).split("\n");
    const between = (from: string, to: string) =>
      lines.slice(lines.indexOf(from) + 1, lines.indexOf(to));
    await t.step("the child wrote on fd 1 and echoed fd 0 to the client", () => {
      assert.equal(lines[0], "hi");
      assert.deepEqual(lines.slice(lines.indexOf("end") + 1), ["ping", ""]);
    });
    await t.step("the child's environment is exactly the one given", () => {
      assert.equal(lines[1], "X=1 HOME=unset");
    });
    await t.step("the child has fd 0, 1 and 2, and none of the fds Sys made", () => {
      const got = between("fds", "signals").map(Number).sort((x, y) => x - y);
      const want = [0, 1, 2, ...inherited].sort((x, y) => x - y);
      assert.deepEqual(got, want, `sys made ${fds.join(" ")}`);
    });
    await t.step("the child has every signal at its default and none blocked", () => {
      const mask = (name: string) => {
        const line = between("signals", "end").find((l) => l.startsWith(`${name}:`));
        return BigInt(`0x${line?.split(/\s+/)[1] ?? "missing"}`);
      };
      // Signals 1 to 31; glibc's posix_spawn leaves its own 32 and 33 ignored.
      assert.equal(mask("SigIgn") & 0x7fffffffn, 0n, "a signal is ignored (SIGPIPE: Deno's)");
      assert.equal(mask("SigBlk"), 0n, "a signal is blocked");
    });

    await t.step("the pidfd becomes readable when the child ends", async () => {
      const events = await s.epollWait(ep, 8, WAIT_MS);
      assert.deepEqual(events.map(([fd]) => fd), [watch]);
      assert.ok((events[0]![1] & EPOLLIN) !== 0, `events ${events[0]![1]}`);
    });
    await t.step("reap() gives the wait status once: exit 3 is 768", () => {
      assert.equal(s.reap(pid), 768);
      assert.equal(s.reap(pid), undefined);
    });
  } finally {
    client?.close();
    for (const fd of [...fds].reverse()) s.close(fd);
  }
});

Deno.test("Sys.listen() on :: takes IPv4 clients too, their address read as IPv4", async () => {
  const s = sys();
  const listener = s.listen(ip("::"), 0, 5);
  let client: Deno.TcpConn | undefined;
  let accepted: number | undefined;
  try {
    const local = s.localAddress(listener);
    assert.equal(local.ip.family, 6);
    client = await Deno.connect({ hostname: "127.0.0.1", port: local.port });
    const ep = s.epollCreate();
    try {
      s.epollAdd(ep, listener, EPOLLIN);
      assert.equal((await s.epollWait(ep, 1, WAIT_MS)).length, 1, "no client came");
    } finally {
      s.close(ep);
    }
    const got = s.accept(listener);
    if (!("fd" in got)) assert.fail(`accept: errno ${got.errno}`);
    accepted = got.fd;
    assert.equal(show(got.remote), `4/127.0.0.1/${client.localAddr.port}`);
  } finally {
    client?.close();
    if (accepted !== undefined) s.close(accepted);
    s.close(listener);
  }
});

Deno.test("Sys.listen() refuses an address in use with SysError", () => {
  const s = sys();
  const first = s.listen(ip("127.0.0.1"), 0, 5);
  try {
    const { port } = s.localAddress(first);
    assert.throws(
      () => s.listen(ip("127.0.0.1"), port, 5),
      (e: unknown) => e instanceof SysError && e.errno === 98 && e.message.includes("bind"),
    );
  } finally {
    s.close(first);
  }
});

Deno.test("Sys socket pairs: read, write and shutdownWrite on non-blocking fds", async (t) => {
  const s = sys();
  const [a, b] = s.socketPair();
  const [c, d] = s.socketPair();
  const buf = new Uint8Array(16);
  for (const fd of [a, b, c]) s.setNonBlocking(fd);
  try {
    await t.step("read() on an empty socket gives -EAGAIN", () => {
      assert.equal(s.read(b, buf), -11);
      assert.equal(EAGAIN, 11);
    });
    await t.step("write() gives the bytes written; read() gives them", () => {
      assert.equal(s.write(a, encode("abc")), 3);
      const n = s.read(b, buf);
      assert.equal(decode(buf.subarray(0, n)), "abc");
    });
    await t.step("read() takes no more than the buffer holds", () => {
      assert.equal(s.write(b, encode("0123456789abcdefXYZ")), 19);
      assert.equal(s.read(a, buf), 16);
      assert.equal(s.read(a, buf), 3);
      assert.equal(decode(buf.subarray(0, 3)), "XYZ");
    });
    await t.step("after shutdownWrite(), the peer reads 0; the other way still works", () => {
      s.shutdownWrite(a);
      assert.equal(s.read(b, buf), 0);
      assert.equal(s.write(b, encode("z")), 1);
      assert.equal(s.read(a, buf), 1);
      assert.equal(s.write(a, encode("late")), -EPIPE);
    });
    await t.step("write() to a closed peer gives -EPIPE, no SIGPIPE", () => {
      s.close(d);
      assert.equal(s.write(c, encode("x")), -EPIPE);
    });
  } finally {
    for (const fd of [a, b, c]) s.close(fd);
  }
});

Deno.test("Sys.epollAdd() with EPOLLONESHOT reports once until it is modified", async () => {
  const s = sys();
  const [a, b] = s.socketPair();
  const ep = s.epollCreate();
  try {
    s.epollAdd(ep, b, EPOLLIN | EPOLLONESHOT);
    assert.deepEqual(await s.epollWait(ep, 8, 0), []);
    assert.equal(s.write(a, encode("x")), 1);
    const first = await s.epollWait(ep, 8, WAIT_MS);
    assert.deepEqual(first.map(([fd]) => fd), [b]);
    assert.deepEqual(await s.epollWait(ep, 8, 0), [], "reported twice");
    s.epollAdd(ep, b, EPOLLIN | EPOLLONESHOT, true);
    const again = await s.epollWait(ep, 8, WAIT_MS);
    assert.deepEqual(again.map(([fd]) => fd), [b]);
    s.epollDelete(ep, b);
    s.epollAdd(ep, b, EPOLLIN);
    s.epollDelete(ep, b);
    assert.deepEqual(await s.epollWait(ep, 8, 0), [], "reported after epollDelete()");
  } finally {
    s.close(ep);
    s.close(a);
    s.close(b);
  }
});

Deno.test("Sys.spawn() throws SysError for a program it cannot start", async (t) => {
  const s = sys();
  const [a, b] = s.socketPair();
  try {
    const rows: [string, string[]][] = [
      ["a missing path", ["/nonexistent/smtp-delay-test"]],
      ["a name not in PATH", ["smtp-delay-no-such-program"]],
    ];
    for (const [name, argv] of rows) {
      await t.step(name, () => {
        assert.throws(
          () => s.spawn(argv, [], a, a),
          (e: unknown) => e instanceof SysError && e.errno === ENOENT,
        );
      });
    }
  } finally {
    s.close(a);
    s.close(b);
  }
});

Deno.test("Sys.spareFd() opens a file descriptor and fileLimit() reads the soft limit", () => {
  const s = sys();
  const fd = s.spareFd();
  try {
    assert.ok(fd > 2, `spare fd ${fd}`);
  } finally {
    s.close(fd);
  }
  const limit = s.fileLimit();
  const soft = Deno.readTextFileSync("/proc/self/limits").match(
    /^Max open files\s+(\d+|unlimited)/m,
  )?.[1];
  assert.equal(
    String(limit),
    soft === "unlimited" ? "1000000" : String(Math.min(Number(soft), 1_000_000)),
  );
});
