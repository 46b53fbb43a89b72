import assert from "node:assert/strict";
import { POLLERR, POLLHUP, POLLIN, POLLNVAL } from "../src/libc.ts";
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

/**
 * A Libc with no FFI, on a fake clock: each poll (sync or async) takes the
 * next scripted result, and moves the clock by its `tookMs` (the whole
 * timeout when it reports nothing, unless told otherwise).
 */
class FakeLibc {
  /** What the next polls report, in turn: revents and how long each took. */
  script: { revents: number; tookMs?: number }[] = [];
  /** Every poll: sync or async, and the timeout it was given. */
  polls: string[] = [];
  bytesWaitingCalls = 0;
  waiting = 0;
  time = 1000;
  readonly now = () => this.time;

  private next(timeoutMs: number): number {
    const step = this.script.shift() ?? { revents: 0 };
    this.time += step.tookMs ?? (step.revents === 0 ? timeoutMs : 0);
    return step.revents;
  }
  waitReadable(fd: number, timeoutMs: number): Promise<number> {
    this.polls.push(`async fd ${fd} ${timeoutMs}`);
    return Promise.resolve(this.next(timeoutMs));
  }
  readable(fd: number, timeoutMs: number): number {
    this.polls.push(`sync fd ${fd} ${timeoutMs}`);
    return this.next(timeoutMs);
  }
  readProcFile(): string | undefined {
    throw new Error("not expected");
  }
  sleep(): Promise<void> {
    throw new Error("not expected");
  }
  bytesWaiting(): number {
    this.bytesWaitingCalls++;
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
  alarm(): void {
    throw new Error("watch() must not set an alarm");
  }
  exec(): string {
    throw new Error("watch() must not exec");
  }
}

Deno.test("watch() does nothing until asked", () => {
  const libc = new FakeLibc();
  watch(libc, 0, libc.now);
  assert.deepEqual(libc.polls, []);
});

Deno.test("watch().waitSync(0) looks once without waiting", () => {
  const libc = new FakeLibc();
  const w = watch(libc, 0, libc.now);
  assert.deepEqual(w.waitSync(0), { kind: "quiet" });
  assert.deepEqual(libc.polls, ["sync fd 0 0"]);
  assert.equal(libc.bytesWaitingCalls, 0, "FIONREAD only after poll saw something");
});

Deno.test("watch() waits out the time on one poll of fd 3 when the client is quiet", async (t) => {
  await t.step("waitSync", () => {
    const libc = new FakeLibc();
    const w = watch(libc, 3, libc.now);
    assert.deepEqual(w.waitSync(250), { kind: "quiet" });
    assert.deepEqual(libc.polls, ["sync fd 3 250"]);
    assert.equal(libc.time, 1250);
  });
  await t.step("waitAsync", async () => {
    const libc = new FakeLibc();
    const w = watch(libc, 3, libc.now);
    assert.deepEqual(await w.waitAsync(250), { kind: "quiet" });
    assert.deepEqual(libc.polls, ["async fd 3 250"]);
  });
});

Deno.test("watch() polls again for the time left when poll returns early with nothing", async (t) => {
  // EINTR, or a timeout rounded short: nothing happened, the time is not up.
  await t.step("waitSync", () => {
    const libc = new FakeLibc();
    libc.script = [{ revents: 0, tookMs: 100 }, { revents: 0, tookMs: 60 }];
    const w = watch(libc, 0, libc.now);
    assert.deepEqual(w.waitSync(250), { kind: "quiet" });
    assert.deepEqual(libc.polls, ["sync fd 0 250", "sync fd 0 150", "sync fd 0 90"]);
  });
  await t.step("waitAsync", async () => {
    const libc = new FakeLibc();
    libc.script = [{ revents: 0, tookMs: 100 }];
    const w = watch(libc, 0, libc.now);
    assert.deepEqual(await w.waitAsync(250), { kind: "quiet" });
    assert.deepEqual(libc.polls, ["async fd 0 250", "async fd 0 150"]);
  });
});

Deno.test("watch() reports what poll and FIONREAD say, with the time since its start", async (t) => {
  const rows: [string, number, number, Watched][] = [
    ["bytes waiting: early", POLLIN, 6, { kind: "early", bytes: 6, afterMs: 40 }],
    ["end of stream: closed", POLLIN, 0, { kind: "closed", afterMs: 40 }],
    ["hang-up: closed", POLLHUP, 0, { kind: "closed", afterMs: 40 }],
    ["talked then hung up: early", POLLIN | POLLHUP, 12, {
      kind: "early",
      bytes: 12,
      afterMs: 40,
    }],
    ["invalid fd: closed", POLLNVAL, 0, { kind: "closed", afterMs: 40 }],
  ];
  for (const [name, revents, waiting, want] of rows) {
    await t.step(`waitSync: ${name}`, () => {
      const libc = new FakeLibc();
      libc.script = [{ revents, tookMs: 40 }];
      libc.waiting = waiting;
      const w = watch(libc, 0, libc.now);
      assert.deepEqual(w.waitSync(5000), want);
      assert.equal(libc.polls.length, 1, "no more polling once the client acted");
    });
    await t.step(`waitAsync: ${name}`, async () => {
      const libc = new FakeLibc();
      libc.script = [{ revents, tookMs: 40 }];
      libc.waiting = waiting;
      const w = watch(libc, 0, libc.now);
      assert.deepEqual(await w.waitAsync(5000), want);
    });
  }
});

Deno.test("watch() keeps the first thing the client did, without polling again", async () => {
  const libc = new FakeLibc();
  libc.script = [{ revents: POLLIN, tookMs: 30 }];
  libc.waiting = 4;
  const w = watch(libc, 0, libc.now);
  const want: Watched = { kind: "early", bytes: 4, afterMs: 30 };
  assert.deepEqual(await w.waitAsync(1000), want);
  libc.waiting = 0; // it hung up since: still early
  assert.deepEqual(w.waitSync(0), want);
  assert.deepEqual(w.waitSync(1000), want);
  assert.equal(libc.polls.length, 1, "no polling once the client acted");
  assert.equal(libc.bytesWaitingCalls, 1, "FIONREAD read once");
});
