/**
 * The relay between a client and a child, over real socket pairs and the
 * real event loop: order, half-closes, resets and the three caps.
 */
import assert from "node:assert/strict";
import type { Caps } from "../src/config.ts";
import { EventLoop } from "../src/loop.ts";
import { relay, relayed, type RelayEnd } from "../src/relay.ts";
import { EAGAIN, type Libc, libc } from "../src/libc.ts";
import "./fixtures/bind_libc.ts";

const s = libc();

const now = () => performance.now();
const NO_CAPS: Caps = { maxSessionMs: 0, maxIdleMs: 0, maxBytesPerSecond: 0 };

/**
 * A relay between two socket pairs; the test holds the far ends. The relay
 * reads `clock` (performance.now() unless the test gives its own) and its
 * session began at `startMs` by that clock.
 */
class Rig {
  readonly client: number; // the test's client end
  readonly child: number; // the test's child end
  private readonly ends: number[];
  readonly loop = new EventLoop(s);
  readonly done: Promise<RelayEnd>;
  private over = false;
  readonly running: Promise<void>;

  constructor(caps: Caps, clock: () => number = now, readonly startMs = clock()) {
    const [client, clientSide] = s.socketPair();
    const [child, childSide] = s.socketPair();
    this.client = client;
    this.child = child;
    this.ends = [client, clientSide, child, childSide];
    s.setNonBlocking(client);
    s.setNonBlocking(child);
    this.done = relay(
      this.loop,
      s,
      { clientIn: clientSide, clientOut: clientSide, child: childSide },
      { caps, now: clock, startMs },
    ).finally(() => {
      this.over = true;
      this.loop.wake();
    });
    this.running = this.loop.run(() => !this.over);
  }

  /** Writes all of `bytes` to `fd`, waiting while the socket is full (and the relay reads). */
  async write(fd: number, bytes: Uint8Array): Promise<void> {
    let rest = bytes;
    const deadline = now() + 10_000;
    while (rest.length > 0) {
      const n = s.write(fd, rest);
      if (n === -EAGAIN) {
        if (this.over) throw new Error("write: full, and the relay is over");
        if (now() > deadline) throw new Error("write timed out");
        await new Promise((r) => setTimeout(r, 2));
        continue;
      }
      if (n < 0) throw new Error(`write: errno ${-n}`);
      rest = rest.subarray(n);
    }
  }

  /**
   * Reads from `fd` until `want` bytes or the end; returns them and whether
   * the end came. Once the relay is over, what it wrote is all there is: a
   * read returns what it has instead of waiting for more.
   */
  async read(fd: number, want: number): Promise<{ bytes: Uint8Array; end: boolean }> {
    const out: number[] = [];
    const buf = new Uint8Array(65536);
    const deadline = now() + 10_000;
    while (out.length < want) {
      const n = s.read(fd, buf);
      if (n === 0) return { bytes: new Uint8Array(out), end: true };
      if (n === -EAGAIN) {
        if (this.over) return { bytes: new Uint8Array(out), end: false };
        if (now() > deadline) throw new Error(`read timed out after ${out.length} bytes`);
        await new Promise((r) => setTimeout(r, 2));
        continue;
      }
      if (n < 0) throw new Error(`read: errno ${-n}`);
      out.push(...buf.subarray(0, n));
    }
    return { bytes: new Uint8Array(out), end: false };
  }

  async close(): Promise<void> {
    await this.done;
    await this.running;
    for (const fd of this.ends) s.close(fd);
  }
}

/** Polls `test` until it holds, for at most 10 s. */
async function until(test: () => boolean, what: string): Promise<void> {
  const deadline = now() + 10_000;
  while (!test()) {
    if (now() > deadline) throw new Error(`${what}: not after 10 s`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function pattern(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out[i] = x >> 16;
  }
  return out;
}

Deno.test("relay() copies both ways in order, then ends when the child's output ends", async () => {
  const rig = new Rig(NO_CAPS);
  const up = pattern(300_000, 1);
  const down = pattern(200_000, 2);
  await Promise.all([rig.write(rig.client, up), rig.write(rig.child, down)]);
  const [atChild, atClient] = await Promise.all([
    rig.read(rig.child, up.length),
    rig.read(rig.client, down.length),
  ]);
  assert.deepEqual(atChild.bytes, up, "the child got the client's bytes in order");
  assert.deepEqual(atClient.bytes, down, "the client got the child's bytes in order");
  s.shutdownWrite(rig.child); // the child is done talking
  const end = await rig.done;
  assert.deepEqual(end, { why: "eof", fromClient: up.length, fromChild: down.length });
  assert.equal((await rig.read(rig.client, 1)).end, true, "the client got FIN");
  await rig.close();
});

Deno.test("relay() passes the client's half-close on, and the child may still answer", async () => {
  const rig = new Rig(NO_CAPS);
  await rig.write(rig.client, new TextEncoder().encode("QUIT\r\n"));
  s.shutdownWrite(rig.client);
  const atChild = await rig.read(rig.child, 100);
  assert.equal(new TextDecoder().decode(atChild.bytes), "QUIT\r\n");
  assert.equal(atChild.end, true, "the child saw the end of its input");
  await rig.write(rig.child, new TextEncoder().encode("221 bye\r\n"));
  s.shutdownWrite(rig.child);
  const atClient = await rig.read(rig.client, 100);
  assert.equal(new TextDecoder().decode(atClient.bytes), "221 bye\r\n");
  assert.equal(atClient.end, true);
  assert.equal((await rig.done).why, "eof");
  await rig.close();
});

Deno.test("relay() ends with reset when the client resets", async () => {
  const rig = new Rig(NO_CAPS);
  // A Unix socket closed with unread input resets its peer.
  const hello = new TextEncoder().encode("220 hello\r\n");
  await rig.write(rig.child, hello);
  const unread = () => libc().bytesWaiting(rig.client) === hello.length;
  await until(unread, "the banner in the client's buffer");
  s.close(rig.client);
  const end = await rig.done;
  assert.equal(end.why, "reset", `got ${end.why}`);
  await rig.running;
});

// The caps: the relay reads the test's clock, so a lower bound is exact (a
// cap may not end a session before it is due); a loaded machine runs timers
// late, so upper bounds are loose.

Deno.test("relay() ends an idle session after --max-idle", async () => {
  const rig = new Rig({ ...NO_CAPS, maxIdleMs: 150 });
  const t0 = now(); // the relay's last byte comes after this
  await rig.write(rig.client, new TextEncoder().encode("x"));
  await rig.read(rig.child, 1);
  const end = await rig.done;
  const ms = now() - t0;
  assert.equal(end.why, "idle");
  assert.ok(ms >= 150 && ms < 2_000, `ended after ${ms.toFixed(0)} ms, want about 150`);
  await rig.close();
});

Deno.test("relay() ends a session after --max-session however busy it is", async () => {
  const rig = new Rig({ ...NO_CAPS, maxSessionMs: 200, maxIdleMs: 10_000 });
  let busy = true;
  let rounds = 0;
  const chatter = (async () => {
    while (busy) {
      await rig.write(rig.client, new Uint8Array(10));
      await rig.read(rig.child, 10); // short if the session ended before it was relayed
      rounds++;
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const end = await rig.done;
  const ms = now() - rig.startMs;
  busy = false;
  await chatter;
  assert.equal(end.why, "session");
  assert.ok(ms >= 200 && ms < 2_000, `ended after ${ms.toFixed(0)} ms, want about 200`);
  assert.ok(rounds > 0, "the session was busy");
  await rig.close();
});

Deno.test("relay() ends a session no sooner than a cap by its clock, however early its timers fire", async (t) => {
  const rows: Array<{ why: RelayEnd["why"]; caps: Caps }> = [
    { why: "session", caps: { ...NO_CAPS, maxSessionMs: 1 } },
    { why: "idle", caps: { ...NO_CAPS, maxIdleMs: 1 } },
  ];
  for (const { why, caps } of rows) {
    await t.step(`${why}: due at 1 ms, the clock stands at 0.5 ms`, async () => {
      // setTimeout drops a delay's fraction and keeps its own clock: the timer
      // for what is left (0.5 ms, or 1 ms from the start) fires while the
      // relay's clock still reads 0.5. Each firing reads the clock.
      let clockMs = 0;
      let reads = 0;
      const rig = new Rig(caps, () => {
        reads++;
        return clockMs;
      });
      clockMs = 0.5;
      reads = 0;
      let over = false;
      void rig.done.then(() => {
        over = true;
      });
      await until(() => over || reads >= 3, "three timers fired");
      assert.equal(over, false, `ended with the clock at ${clockMs} ms, before the 1 ms cap`);
      clockMs = 1;
      assert.equal((await rig.done).why, why);
      await rig.close();
    });
  }
});

Deno.test("relay() reads at most --max-bytes-per-second from the client", async () => {
  const rate = 20_000;
  const rig = new Rig({ ...NO_CAPS, maxBytesPerSecond: rate });
  const data = pattern(rate * 2, 3); // one second's bucket at once, then one more second
  await rig.write(rig.client, data);
  const got = await rig.read(rig.child, data.length);
  const ms = now() - rig.startMs; // the bucket was full at the start, not later
  assert.deepEqual(got.bytes, data, "every byte, in order");
  assert.ok(ms >= 1_000 && ms < 2_500, `took ${ms.toFixed(0)} ms, want about 1000`);
  s.shutdownWrite(rig.child);
  assert.equal((await rig.done).fromClient, data.length);
  await rig.close();
});

Deno.test("relay() ends with eof when the child is gone, though the client still sends", async () => {
  const rig = new Rig(NO_CAPS);
  s.close(rig.child); // the child is gone: writes to it fail
  await rig.write(rig.client, new TextEncoder().encode("more\r\n"));
  const end = await rig.done; // its output ended too: eof
  assert.equal(end.why, "eof");
  await rig.running;
});

/**
 * The real libc, where fds 0 and 1 (the per-connection filter's client) are
 * `inFd` and `outFd`, counting its epoll waits.
 */
function asStdio(inFd: number, outFd: number): { sys: Libc; waits: () => number } {
  const real = (fd: number) => fd === 0 ? inFd : fd === 1 ? outFd : fd;
  const ours = (fd: number) => fd === inFd ? 0 : fd === outFd ? 1 : fd;
  let waits = 0;
  const wrapped: Libc = {
    ...s,
    setNonBlocking: (fd) => s.setNonBlocking(real(fd)),
    read: (fd, buf) => s.read(real(fd), buf),
    write: (fd, bytes) => s.write(real(fd), bytes),
    endWrite: (fd) => s.endWrite(real(fd)),
    epollAdd: (ep, fd, ...rest) => s.epollAdd(ep, real(fd), ...rest),
    epollDelete: (ep, fd) => s.epollDelete(ep, real(fd)),
    epollWait: async (ep, max, timeoutMs) => {
      waits++;
      const events = await s.epollWait(ep, max, timeoutMs);
      return events.map(([fd, revents, tag]) => [ours(fd), revents, tag]);
    },
  };
  return { sys: wrapped, waits: () => waits };
}

Deno.test("relayed() stops watching its child once reaped, while what it left holds the socket", async () => {
  // The next program exits at once; the sleep it leaves behind holds the
  // relay's socket for 0.5 s more. The ended child's pidfd stays readable:
  // still watched, it would wake the loop again and again for that time.
  const [client, clientIn] = s.socketPair();
  const [reader, clientOut] = s.socketPair();
  const stdio = asStdio(clientIn, clientOut);
  const t0 = now();
  const { end, status } = await relayed(
    stdio.sys,
    { program: ["/bin/sh", "-c", "sleep 0.5 & exit 0"], env: ["PATH=/usr/bin:/bin"] },
    { caps: NO_CAPS, now, startMs: t0 },
  );
  const ms = now() - t0;
  assert.equal(status, 0, "the child exited 0");
  assert.equal(end.why, "eof", "the relay ended when the socket's last holder let go");
  assert.ok(ms >= 500, `ended after ${ms.toFixed(0)} ms, before the sleep let go`);
  assert.ok(stdio.waits() < 50, `${stdio.waits()} epoll waits in ${ms.toFixed(0)} ms`);
  for (const fd of [client, clientIn, reader, clientOut]) s.close(fd);
});
