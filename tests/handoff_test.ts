import assert from "node:assert/strict";
import { answer, handOn } from "../src/handoff.ts";

/** A Libc with no FFI that records, in order, what it was asked. */
class FakeLibc {
  calls: string[] = [];
  /** What bytesWaiting answers, in turn; the last one repeats. */
  waiting: number[] = [0];
  /** Bytes on "fd 0", consumed by readWaiting. */
  input = new Uint8Array();
  written = "";
  execReason = "No such file or directory";
  envAtExec: Record<string, string | undefined> = {};
  watchEnv: string[] = [];

  waitReadable(): Promise<number> {
    throw new Error("not expected");
  }
  readable(): number {
    throw new Error("not expected");
  }
  readProcFile(): string | undefined {
    throw new Error("not expected");
  }
  sleep(): Promise<void> {
    throw new Error("not expected");
  }
  bytesWaiting(fd: number): number {
    const n = this.waiting.length > 1 ? this.waiting.shift()! : this.waiting[0]!;
    this.calls.push(`bytesWaiting(${fd})=${n}`);
    return n;
  }
  peek(): Uint8Array | undefined {
    throw new Error("not expected");
  }
  readWaiting(fd: number, max: number): Uint8Array {
    const got = this.input.slice(0, max);
    this.input = this.input.slice(got.length);
    this.calls.push(`readWaiting(${fd}, ${max})`);
    return got;
  }
  writeAll(fd: number, bytes: Uint8Array): boolean {
    this.calls.push(`writeAll(${fd})`);
    this.written += new TextDecoder().decode(bytes);
    return true;
  }
  shutdownWrite(fd: number): void {
    this.calls.push(`shutdownWrite(${fd})`);
  }
  alarm(seconds: number): void {
    this.calls.push(`alarm(${seconds})`);
  }
  exec(argv: readonly string[]): string {
    this.calls.push(`exec(${argv.join(" ")})`);
    for (const name of this.watchEnv) this.envAtExec[name] = Deno.env.get(name);
    return this.execReason;
  }
}

const REPLY = "451 You talked before my greeting; try again later (#4.5.0)\r\n";

Deno.test("answer() reads what the client sent, writes the reply, then sends FIN", () => {
  const libc = new FakeLibc();
  libc.input = new TextEncoder().encode("EHLO x\r\n");
  libc.waiting = [8, 0];
  const sent = answer(libc, REPLY);
  assert.equal(new TextDecoder().decode(sent), "EHLO x\r\n");
  assert.equal(libc.written, REPLY);
  assert.deepEqual(libc.calls, [
    "bytesWaiting(0)=8",
    "readWaiting(0, 8)",
    "writeAll(1)",
    "shutdownWrite(1)",
    "bytesWaiting(0)=0",
  ]);
});

Deno.test("answer() drains what arrives after the reply too", () => {
  const libc = new FakeLibc();
  libc.input = new TextEncoder().encode("EHLO x\r\nQUIT\r\n");
  libc.waiting = [8, 6];
  const sent = answer(libc, REPLY);
  assert.equal(
    new TextDecoder().decode(sent),
    "EHLO x\r\n",
    "only the bytes sent before the reply",
  );
  assert.deepEqual(libc.calls.slice(-2), ["bytesWaiting(0)=6", "readWaiting(0, 6)"]);
  assert.equal(libc.input.length, 0);
});

Deno.test("answer() reads nothing when nothing is waiting or the fd cannot count", async (t) => {
  for (const waiting of [0, -1]) {
    await t.step(`bytesWaiting ${waiting}`, () => {
      const libc = new FakeLibc();
      libc.waiting = [waiting];
      const sent = answer(libc, REPLY);
      assert.equal(sent.length, 0);
      assert.ok(!libc.calls.some((c) => c.startsWith("readWaiting")), libc.calls.join(", "));
      assert.equal(libc.written, REPLY);
    });
  }
});

Deno.test("answer() reads at most 64 KiB at a time", () => {
  const libc = new FakeLibc();
  libc.input = new Uint8Array(100_000);
  libc.waiting = [100_000, 0];
  const sent = answer(libc, REPLY);
  assert.equal(sent.length, 65_536);
  assert.equal(libc.calls[1], "readWaiting(0, 65536)");
});

Deno.test("handOn() sets the exported variables, then execs the program with its arguments", () => {
  const names = ["SMTPDELAY_TIER", "SMTPDELAY_PTR", "RBLSMTPD"];
  const saved = names.map((n) => [n, Deno.env.get(n)] as const);
  try {
    for (const n of names) Deno.env.delete(n);
    const libc = new FakeLibc();
    libc.watchEnv = names;
    const why = handOn(libc, ["rblsmtpd", "-r", "x", "qmail-smtpd"], {
      SMTPDELAY_TIER: "ptr",
      SMTPDELAY_PTR: "mail.example.com",
      RBLSMTPD: "",
    });
    assert.deepEqual(libc.calls, ["alarm(0)", "exec(rblsmtpd -r x qmail-smtpd)", "alarm(0)"]);
    assert.deepEqual(libc.envAtExec, {
      SMTPDELAY_TIER: "ptr",
      SMTPDELAY_PTR: "mail.example.com",
      RBLSMTPD: "",
    });
    assert.equal(why, "No such file or directory", "the reason exec returned");
  } finally {
    for (const [n, v] of saved) v === undefined ? Deno.env.delete(n) : Deno.env.set(n, v);
  }
});

Deno.test("handOn() sets the session cap's alarm before exec, and cancels it when exec fails", () => {
  const libc = new FakeLibc();
  handOn(libc, ["qmail-smtpd"], {}, 900);
  assert.deepEqual(libc.calls, ["alarm(900)", "exec(qmail-smtpd)", "alarm(0)"]);
});
