import assert from "node:assert/strict";
import { type Libc, POLLERR, POLLHUP, POLLIN, POLLNVAL } from "../src/libc.ts";
import { interpret, watch, type Watched } from "../src/watch.ts";

Deno.test("interpret() reads poll's revents and FIONREAD's count", async (t) => {
  const rows: [string, number, number, Watched][] = [
    ["nothing happened: quiet", 0, 0, { kind: "quiet" }],
    ["nothing happened, whatever the count: quiet", 0, 7, { kind: "quiet" }],
    ["POLLIN with bytes waiting: early", POLLIN, 6, { kind: "early", bytes: 6, afterMs: 40 }],
    ["POLLIN with nothing waiting: closed", POLLIN, 0, { kind: "closed", afterMs: 40 }],
    ["POLLHUP with nothing waiting: closed", POLLHUP, 0, { kind: "closed", afterMs: 40 }],
    ["POLLIN|POLLHUP with nothing waiting: closed", POLLIN | POLLHUP, 0, {
      kind: "closed",
      afterMs: 40,
    }],
    ["POLLHUP with bytes left: early (talked, then hung up)", POLLHUP, 5, {
      kind: "early",
      bytes: 5,
      afterMs: 40,
    }],
    ["POLLIN|POLLHUP with bytes left: early", POLLIN | POLLHUP, 5, {
      kind: "early",
      bytes: 5,
      afterMs: 40,
    }],
    ["POLLERR with nothing waiting: closed", POLLERR, 0, { kind: "closed", afterMs: 40 }],
    ["POLLNVAL: closed", POLLNVAL, 0, { kind: "closed", afterMs: 40 }],
    ["POLLNVAL, whatever the count: closed", POLLNVAL, -1, { kind: "closed", afterMs: 40 }],
    ["POLLIN on an fd that cannot count: early with -1", POLLIN, -1, {
      kind: "early",
      bytes: -1,
      afterMs: 40,
    }],
  ];
  for (const [name, revents, waiting, want] of rows) {
    await t.step(name, () => {
      assert.deepEqual(interpret(revents, waiting, 40), want);
    });
  }
});

/** A Libc with no FFI: the test says what poll, FIONREAD and the non-waiting poll report. */
class FakeLibc implements Libc {
  /** Resolvers of the pending waitReadable calls, oldest first. */
  pending: ((revents: number) => void)[] = [];
  waitCalls: [number, number][] = [];
  readableNowCalls = 0;
  bytesWaitingCalls: number[] = [];
  /** What readableNow and bytesWaiting answer. */
  reventsNow = 0;
  waiting = 0;

  waitReadable(fd: number, timeoutMs: number): Promise<number> {
    this.waitCalls.push([fd, timeoutMs]);
    return new Promise((resolve) => this.pending.push(resolve));
  }
  /** Makes the oldest pending waitReadable resolve with `revents`. */
  fire(revents: number): void {
    const resolve = this.pending.shift();
    if (!resolve) throw new Error("no waitReadable call is pending");
    resolve(revents);
  }
  readableNow(_fd: number): number {
    this.readableNowCalls++;
    return this.reventsNow;
  }
  bytesWaiting(fd: number): number {
    this.bytesWaitingCalls.push(fd);
    return this.waiting;
  }
  peek(): Uint8Array | undefined {
    throw new Error("watch() must not peek");
  }
  readWaiting(): Uint8Array {
    throw new Error("watch() must not read");
  }
  writeAll(): boolean {
    throw new Error("watch() must not write");
  }
  shutdownWrite(): void {
    throw new Error("watch() must not shut down");
  }
  exec(): string {
    throw new Error("watch() must not exec");
  }
}

/** A clock that returns the given times in turn, then stays at the last one. */
function clock(...times: number[]): () => number {
  let i = 0;
  return () => times[Math.min(i++, times.length - 1)]!;
}

/** "settled" with the value if `promise` has settled once every queued callback ran, else "pending". */
async function state<T>(promise: Promise<T>): Promise<["settled", T] | ["pending"]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const later = new Promise<["pending"]>((resolve) => {
    timer = setTimeout(() => resolve(["pending"]), 0);
  });
  try {
    return await Promise.race([promise.then((v): ["settled", T] => ["settled", v]), later]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("watch() starts one endless poll on the given fd at once", () => {
  const libc = new FakeLibc();
  watch(libc, 3, clock(0));
  assert.deepEqual(libc.waitCalls, [[3, -1]]);
  assert.equal(libc.readableNowCalls, 0);
  assert.deepEqual(libc.bytesWaitingCalls, []);
});

Deno.test("watch().event stays pending while the client is quiet", async () => {
  const libc = new FakeLibc();
  const w = watch(libc, 0, clock(0));
  assert.deepEqual(await state(w.event), ["pending"]);
});

Deno.test("watch().event settles with what poll and FIONREAD report", async (t) => {
  const rows: [string, number, number, Watched][] = [
    ["bytes waiting: early", POLLIN, 6, { kind: "early", bytes: 6, afterMs: 250 }],
    ["end of stream: closed", POLLIN, 0, { kind: "closed", afterMs: 250 }],
    ["hang-up: closed", POLLHUP, 0, { kind: "closed", afterMs: 250 }],
    ["talked then hung up: early", POLLIN | POLLHUP, 12, {
      kind: "early",
      bytes: 12,
      afterMs: 250,
    }],
  ];
  for (const [name, revents, waiting, want] of rows) {
    await t.step(name, async () => {
      const libc = new FakeLibc();
      libc.waiting = waiting;
      const w = watch(libc, 0, clock(1000, 1250));
      libc.fire(revents);
      assert.deepEqual(await w.event, want);
      assert.deepEqual(libc.bytesWaitingCalls, [0], "FIONREAD asked once, on fd 0");
    });
  }
});

Deno.test("watch().current() checks without waiting while the client is quiet", async () => {
  const libc = new FakeLibc();
  const w = watch(libc, 0, clock(0, 10, 20));
  assert.deepEqual(w.current(), { kind: "quiet" });
  assert.deepEqual(w.current(), { kind: "quiet" });
  assert.equal(libc.readableNowCalls, 2);
  assert.deepEqual(libc.bytesWaitingCalls, [], "no FIONREAD when poll saw nothing");
  assert.deepEqual(await state(w.event), ["pending"]);
});

Deno.test("watch().current() catches bytes the endless poll has not reported yet", async () => {
  const libc = new FakeLibc();
  const w = watch(libc, 0, clock(500, 530));
  libc.reventsNow = POLLIN;
  libc.waiting = 4;
  const want: Watched = { kind: "early", bytes: 4, afterMs: 30 };
  assert.deepEqual(w.current(), want);
  // The event, when poll reports later, tells the same story, not a newer one.
  libc.waiting = 0;
  libc.fire(POLLHUP);
  assert.deepEqual(await w.event, want);
});

Deno.test("watch() settles once: a later hang-up does not turn early into closed", async () => {
  const libc = new FakeLibc();
  libc.waiting = 9;
  const w = watch(libc, 0, clock(0, 100, 200, 300));
  libc.fire(POLLIN);
  const want: Watched = { kind: "early", bytes: 9, afterMs: 100 };
  assert.deepEqual(await w.event, want);
  libc.reventsNow = POLLHUP;
  libc.waiting = 0;
  assert.deepEqual(w.current(), want);
  assert.deepEqual(w.current(), want);
  assert.equal(libc.readableNowCalls, 0, "no more polling once settled");
  assert.deepEqual(libc.bytesWaitingCalls, [0]);
});

Deno.test("watch() settles once: closed stays closed", async () => {
  const libc = new FakeLibc();
  const w = watch(libc, 0, clock(0, 40));
  libc.fire(POLLHUP);
  assert.deepEqual(await w.event, { kind: "closed", afterMs: 40 });
  libc.reventsNow = POLLIN;
  libc.waiting = 3;
  assert.deepEqual(w.current(), { kind: "closed", afterMs: 40 });
});

Deno.test("watch() counts afterMs from its own start on the injected clock", async () => {
  const libc = new FakeLibc();
  libc.waiting = 1;
  const w = watch(libc, 0, clock(10_000.5, 10_026.25));
  libc.fire(POLLIN);
  assert.deepEqual(await w.event, { kind: "early", bytes: 1, afterMs: 25.75 });
});

// Once a bug: poll() returning without an event (EINTR) settled `event` as
// "quiet", which ended the lookup and the delay at once in main.ts.
Deno.test({
  name: "watch().event does not settle as quiet when poll returns without an event",
  async fn() {
    const libc = new FakeLibc();
    const w = watch(libc, 0, clock(0));
    libc.fire(0);
    assert.deepEqual(await state(w.event), ["pending"]);
  },
});
