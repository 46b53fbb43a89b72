/**
 * src/libc.ts for real, through FFI: the screening's calls in a child
 * process whose fd 0 is a pipe this test writes to
 * (tests/fixtures/libc_child.ts); then the sockaddr codec (pure), and the
 * server's calls on loopback. No sleeps: every wait has a deadline, every
 * fd opened is closed.
 */
import assert from "node:assert/strict";
import { formatIp, type Ip, parseIp } from "../src/ip.ts";
import {
  type Address,
  EAGAIN,
  EPOLLIN,
  EPOLLONESHOT,
  libc,
  parseSockaddr,
  POLLHUP,
  POLLIN,
  sockaddr,
  SysError,
} from "../src/libc.ts";
import "./fixtures/bind_libc.ts";

const FIXTURE = new URL("./fixtures/libc_child.ts", import.meta.url).pathname;
/** The permission flags, from the one file the Makefile reads them from too. */
const PERMISSIONS = Deno.readTextFileSync(new URL("../permissions", import.meta.url))
  .trim()
  .split(/\s+/);

/** The longest any single step may take before the test gives up. */
const DEADLINE_MS = 15_000;

/** SIGPIPE (13) is bit 12 of the SigIgn mask in /proc/PID/status. */
function ignoresSigpipe(sigIgnHex: string): boolean {
  return ((BigInt(`0x${sigIgnHex}`) >> 12n) & 1n) === 1n;
}

/** The SigIgn mask of a live process, as hex. */
function sigIgnOf(pid: number): string {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const mask = /^SigIgn:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (!mask) throw new Error(`no SigIgn in /proc/${pid}/status`);
  return mask;
}

function withDeadline<T>(promise: Promise<T>, what: string, ms = DEADLINE_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The fixture running in `deno run` with the project's permission flags. */
class Child {
  readonly process: Deno.ChildProcess;
  readonly stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #stdout: ReadableStreamDefaultReader<Uint8Array>;
  readonly #stderr: Promise<string>;
  #buffer = "";
  #stdinOpen = true;
  #eof = false;

  constructor(args: string[]) {
    this.process = new Deno.Command(Deno.execPath(), {
      args: ["run", ...PERMISSIONS, FIXTURE, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    }).spawn();
    this.stdin = this.process.stdin.getWriter();
    this.#stdout = this.process.stdout.getReader();
    this.#stderr = new Response(this.process.stderr).text();
  }

  async #fill(what: string): Promise<void> {
    const { value, done } = await withDeadline(this.#stdout.read(), what);
    if (done) this.#eof = true;
    else this.#buffer += new TextDecoder().decode(value);
  }

  /** The next line of stdout, without its newline. */
  async line(what: string): Promise<string> {
    while (!this.#buffer.includes("\n")) {
      if (this.#eof) throw new Error(`${what}: stdout ended; stderr: ${await this.#stderr}`);
      await this.#fill(what);
    }
    const end = this.#buffer.indexOf("\n");
    const line = this.#buffer.slice(0, end);
    this.#buffer = this.#buffer.slice(end + 1);
    return line;
  }

  /** The next line of stdout, parsed as JSON. */
  async json(what: string): Promise<Record<string, unknown>> {
    const line = await this.line(what);
    try {
      return JSON.parse(line);
    } catch {
      throw new Error(`${what}: not JSON: ${JSON.stringify(line)}; stderr: ${await this.#stderr}`);
    }
  }

  /** Everything left on stdout, up to its end. */
  async rest(what: string): Promise<string> {
    while (!this.#eof) await this.#fill(what);
    const rest = this.#buffer;
    this.#buffer = "";
    return rest;
  }

  async write(text: string): Promise<void> {
    await this.stdin.write(new TextEncoder().encode(text));
  }

  async closeStdin(): Promise<void> {
    if (!this.#stdinOpen) return;
    this.#stdinOpen = false;
    await this.stdin.close().catch(() => {});
  }

  /** Closes our end of its stdin, waits for its exit (killing it past the deadline), drains its output. */
  async finish(): Promise<{ code: number; stderr: string }> {
    await this.closeStdin();
    let status: Deno.CommandStatus;
    try {
      status = await withDeadline(this.process.status, "child exit");
    } catch (e) {
      this.process.kill("SIGKILL");
      await this.process.status;
      throw e;
    } finally {
      if (!this.#eof) await this.rest("child stdout").catch(() => this.#stdout.cancel());
    }
    return { code: status.code, stderr: await this.#stderr };
  }
}

/** Runs `body` with a fresh child and always reaps it, so that no process outlives the test. */
async function withChild(
  args: string[],
  body: (child: Child) => Promise<void>,
): Promise<{ code: number; stderr: string }> {
  const child = new Child(args);
  try {
    await body(child);
  } catch (e) {
    await child.finish().catch(() => {});
    throw e;
  }
  return await child.finish();
}

Deno.test("libc on an empty pipe: nothing readable, no bytes, no peek", async () => {
  await withChild(["probe"], async (child) => {
    const empty = await child.json("empty step");
    assert.deepEqual(empty, { step: "empty", readable: 0, bytesWaiting: 0, peek: null });
    await child.write("x");
    await child.json("readable step");
    await child.json("read step");
  });
});

Deno.test("libc waitReadable() wakes when bytes arrive, and nothing reads them", async () => {
  const { code, stderr } = await withChild(["probe"], async (child) => {
    await child.json("empty step");
    await child.write("EHLO x\r\n");
    const readable = await child.json("readable step");
    assert.equal(readable.step, "readable");
    assert.equal(readable.revents, POLLIN, `revents: got ${readable.revents}, want POLLIN`);
    assert.equal(readable.bytesWaiting, 8, `bytesWaiting: got ${readable.bytesWaiting}, want 8`);
    assert.equal(readable.readable, POLLIN, "readable sees the same bytes");
    assert.equal(readable.peek, null, "peek() on a pipe (not a socket) gives undefined");
    assert.equal(readable.bytesWaitingAgain, 8, "the probes left the 8 bytes unread");
    const read = await child.json("read step");
    assert.deepEqual(read, { step: "read", text: "EHLO x\r\n", bytesWaiting: 0 });
    await child.closeStdin();
    const hangup = await child.json("hangup step");
    assert.equal(hangup.bytesWaiting, 0);
    assert.ok(
      (hangup.revents as number) & POLLHUP,
      `revents after the writer closed: got ${hangup.revents}, want POLLHUP set`,
    );
  });
  assert.equal(code, 0, `child exit status; stderr: ${stderr}`);
});

Deno.test("libc waitReadable() resolves 0 when its timeout passes on a quiet pipe", async () => {
  await withChild(["timeout", "100"], async (child) => {
    const got = await child.json("timeout");
    assert.equal(got.revents, 0);
    const elapsedMs = got.elapsedMs as number;
    assert.ok(elapsedMs >= 90, `returned after ${elapsedMs} ms, before its 100 ms timeout`);
  });
});

Deno.test("libc exec() replaces the process: the next program has the same pid", async () => {
  const { code, stderr } = await withChild(["exec", "sh", "-c", "echo $$"], async (child) => {
    const before = await child.json("pid before exec");
    const after = await child.rest("output of sh");
    assert.equal(
      after,
      `${before.pid}\n`,
      `sh's pid: got ${JSON.stringify(after)}, want ${before.pid}`,
    );
  });
  assert.equal(code, 0, `exit status of sh; stderr: ${stderr}`);
});

Deno.test("libc exec() gives the next program SIGPIPE at its default", async () => {
  await withChild(["exec", "--wait", "cat", "/proc/self/status"], async (child) => {
    const before = await child.json("before exec");
    const deno = sigIgnOf(before.pid as number);
    assert.ok(
      ignoresSigpipe(deno),
      `Deno itself should ignore SIGPIPE (SigIgn ${deno}), else this test proves nothing`,
    );
    await child.write("go");
    await child.json("after the wait");
    const status = await child.rest("status of cat");
    const pid = /^Pid:\s*(\d+)$/m.exec(status)?.[1];
    const sigIgn = /^SigIgn:\s*([0-9a-f]+)$/m.exec(status)?.[1];
    assert.equal(Number(pid), before.pid, "cat runs in the same process");
    assert.ok(sigIgn, `no SigIgn line in ${JSON.stringify(status)}`);
    assert.equal(ignoresSigpipe(sigIgn), false, `SigIgn of the exec'd program: ${sigIgn}`);
  });
});

Deno.test("libc exec() passes the environment as Deno.env left it", async () => {
  await withChild(["exec", "sh", "-c", 'printf "%s\\n" "$SMTPDELAY_FIXTURE"'], async (child) => {
    await child.json("before exec");
    assert.equal(await child.rest("output of sh"), "set by Deno.env\n");
  });
});

Deno.test("libc exec() hands fd 0 on unread and in blocking mode", async () => {
  const argv = ["exec", "--wait", "cat", "/proc/self/fdinfo/0", "-"];
  await withChild(argv, async (child) => {
    await child.json("before exec");
    const sent = "EHLO x\r\nMAIL FROM:<a@example.com>\r\n"; // 35 bytes
    await child.write(sent);
    await child.closeStdin();
    const seen = await child.json("after the wait");
    assert.equal(seen.bytesWaiting, 35, `bytesWaiting: got ${seen.bytesWaiting}, want 35`);
    const out = await child.rest("output of cat");
    const flags = /^flags:\s*([0-7]+)$/m.exec(out)?.[1];
    assert.ok(flags, `no flags line in ${JSON.stringify(out)}`);
    assert.equal(parseInt(flags, 8) & 0o4000, 0, `fd 0 is O_NONBLOCK (flags ${flags})`);
    assert.ok(
      out.endsWith(`\n${sent}`),
      `cat did not get every byte: ${JSON.stringify(out)}`,
    );
  });
});

Deno.test("libc exec() of a program that cannot run returns the reason", async (t) => {
  const rows: [string, string, string][] = [
    ["a name not in PATH", "smtp-delay-test-no-such-program", "No such file or directory"],
    ["a missing path", "/nonexistent/dir/prog", "No such file or directory"],
    ["a file that is not executable", FIXTURE, "Permission denied"],
  ];
  for (const [name, program, reason] of rows) {
    await t.step(name, async () => {
      const { code, stderr } = await withChild(["exec", program], async (child) => {
        const before = await child.json("before exec");
        const after = await child.json("after the failed exec");
        assert.equal(after.failed, reason);
        const sigIgn = sigIgnOf(before.pid as number);
        assert.ok(ignoresSigpipe(sigIgn), `SIGPIPE not ignored again (SigIgn ${sigIgn})`);
      });
      assert.equal(code, 0, `the process carried on after the failed exec; stderr: ${stderr}`);
    });
  }
});

Deno.test("libc sleep() resolves after about its time, without a timer", async () => {
  const start = performance.now();
  await libc().sleep(120);
  const ms = performance.now() - start;
  assert.ok(ms >= 115 && ms < 2000, `slept ${ms} ms, want 120`);
});

Deno.test("libc readProcFile() reads /proc, which Deno's file API refuses without --allow-all", async () => {
  const stat = libc().readProcFile("/proc/self/stat");
  assert.ok(stat?.startsWith(`${Deno.pid} (`), `got ${stat?.slice(0, 40)}`);
  assert.equal(libc().readProcFile("/proc/no-such-file"), undefined);
  const hostname = libc().readProcFile("/proc/sys/kernel/hostname");
  assert.equal(hostname?.trim(), (await Deno.readTextFile("/proc/sys/kernel/hostname")).trim());
});

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

/** Reads `conn` to its end, within the deadline. */
async function readAll(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await withDeadline(conn.read(buf), "the client's read", WAIT_MS);
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

Deno.test("libc serves a loopback client: listen, epoll, accept, spawn on fd 0/1, pidfd, reap", async (t) => {
  const inherited = nonCloexecFds();
  const s = libc();
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

Deno.test("libc listen() on :: takes IPv4 clients too, their address read as IPv4", async () => {
  const s = libc();
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

Deno.test("libc listen() refuses an address in use with SysError", () => {
  const s = libc();
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
  const s = libc();
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

Deno.test("libc epollAdd() with EPOLLONESHOT reports once until it is modified", async () => {
  const s = libc();
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

Deno.test("libc spawn() throws SysError for a program it cannot start", async (t) => {
  const s = libc();
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

Deno.test("libc spareFd() opens a file descriptor, raiseFileLimit() gives the soft limit the hard one", () => {
  const s = libc();
  const fd = s.spareFd();
  try {
    assert.ok(fd > 2, `spare fd ${fd}`);
  } finally {
    s.close(fd);
  }
  const limit = s.raiseFileLimit();
  const [soft, hard] = Deno.readTextFileSync("/proc/self/limits").match(
    /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m,
  )!.slice(1);
  assert.equal(soft, hard, "the soft limit is the hard one now");
  assert.equal(
    String(limit),
    hard === "unlimited" ? "1000000" : String(Math.min(Number(hard), 1_000_000)),
  );
});
