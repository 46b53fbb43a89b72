/**
 * The follower on a directory this test writes as multilog does: lines
 * appended to `current`, `current` renamed to `@TAI64N.s` and a new one
 * started. Each line must come once, in order, whatever the rotations
 * between two looks. (tests/e2e/metrics_test.ts runs a real multilog.)
 */
import assert from "node:assert/strict";
import { Follower, isRotated, Lines } from "../src/metrics/follow.ts";
import { decodeTai64n, encodeTai64n } from "../src/report/parse.ts";
import { withTempDir } from "./fixtures/temp_dir.ts";

/** A multilog directory written by hand: append to current, rotate. */
class FakeMultilog {
  private clockMs = Date.UTC(2026, 11, 5, 10, 0, 0);
  constructor(readonly dir: string) {}

  async append(...lines: string[]): Promise<void> {
    const text = lines.map((l) => l + "\n").join("");
    await Deno.writeTextFile(`${this.dir}/current`, text, { append: true });
  }

  /** Renames current to @TAI64N.s (a second later than the last) and starts an empty one. */
  async rotate(suffix = "s"): Promise<string> {
    this.clockMs += 1000;
    const name = `${encodeTai64n(this.clockMs)}.${suffix}`;
    await Deno.rename(`${this.dir}/current`, `${this.dir}/${name}`);
    await Deno.writeTextFile(`${this.dir}/current`, "");
    return name;
  }
}

/** A follower of `dir` that collects its lines (and its warnings). */
function follower(dir: string, sinceMs?: number) {
  const lines: string[] = [];
  const warnings: string[] = [];
  const f = new Follower({
    dir,
    sinceMs,
    decode: decodeTai64n,
    line: (l) => lines.push(l),
    warn: (w) => warnings.push(w),
  });
  return { f, lines, warnings };
}

Deno.test("isRotated() knows multilog's names of rotated files", async (t) => {
  const rows: [string, boolean][] = [
    ["@400000006579a1c20b2a1c34.s", true],
    ["@400000006579a1c20b2a1c34.u", true],
    ["current", false],
    ["state", false],
    ["lock", false],
    ["previous", false],
    ["@400000006579a1c20b2a1c34.s.tmp", false],
    ["@400000006579a1c2.s", false],
  ];
  for (const [name, want] of rows) await t.step(name, () => assert.equal(isRotated(name), want));
});

Deno.test("Lines splits bytes into lines across chunks, and keeps a last line at the end", () => {
  const got: string[] = [];
  const lines = new Lines((l) => got.push(l));
  const enc = new TextEncoder();
  lines.push(enc.encode("one\ntw"));
  lines.push(enc.encode("o\n"));
  lines.push(enc.encode("thr"));
  assert.deepEqual(got, ["one", "two"]);
  lines.end();
  assert.deepEqual(got, ["one", "two", "thr"]);
});

Deno.test("the follower reads the rotated files oldest first, then current", async () => {
  await withTempDir(async (dir) => {
    const m = new FakeMultilog(dir);
    await m.append("a1", "a2");
    await m.rotate();
    await m.append("b1");
    await m.rotate("u"); // one multilog did not finish: read too
    await m.append("c1");
    await Deno.writeTextFile(`${dir}/state`, "x\n"); // multilog's own files: not read
    await Deno.writeTextFile(`${dir}/lock`, "");
    const { f, lines } = follower(dir);
    await f.start();
    assert.deepEqual(lines, ["a1", "a2", "b1", "c1"]);
    f.stop();
    await f.run();
  });
});

Deno.test("the follower reads what is added to current, a partial line once it is whole", async () => {
  await withTempDir(async (dir) => {
    const m = new FakeMultilog(dir);
    await m.append("a1");
    const { f, lines } = follower(dir);
    await f.start();
    await m.append("a2");
    await Deno.writeTextFile(`${dir}/current`, "a3 half", { append: true });
    await f.look();
    assert.deepEqual(lines, ["a1", "a2"]);
    await Deno.writeTextFile(`${dir}/current`, " whole\n", { append: true });
    await f.look();
    assert.deepEqual(lines, ["a1", "a2", "a3 half whole"]);
    await f.look();
    assert.deepEqual(lines, ["a1", "a2", "a3 half whole"], "nothing twice");
    f.stop();
    await f.run();
  });
});

Deno.test("the follower goes on across a rotation: the old file to its end, then the new", async () => {
  await withTempDir(async (dir) => {
    const m = new FakeMultilog(dir);
    await m.append("a1");
    const { f, lines } = follower(dir);
    await f.start();
    await m.append("a2"); // written after the last look, before the rotation
    await m.rotate();
    await m.append("b1");
    await f.look();
    assert.deepEqual(lines, ["a1", "a2", "b1"]);
    f.stop();
    await f.run();
  });
});

Deno.test("the follower reads every file of several rotations between two looks, in order", async () => {
  await withTempDir(async (dir) => {
    const m = new FakeMultilog(dir);
    await m.append("a1");
    const { f, lines } = follower(dir);
    await f.start();
    await m.append("a2");
    await m.rotate();
    await m.append("b1", "b2");
    await m.rotate();
    await m.append("c1");
    await m.rotate();
    await m.append("d1");
    await f.look();
    assert.deepEqual(lines, ["a1", "a2", "b1", "b2", "c1", "d1"]);
    await m.append("d2");
    await m.rotate();
    await f.look();
    assert.deepEqual(lines, ["a1", "a2", "b1", "b2", "c1", "d1", "d2"]);
    f.stop();
    await f.run();
  });
});

Deno.test("the follower survives multilog removing the oldest file (its n)", async () => {
  await withTempDir(async (dir) => {
    const m = new FakeMultilog(dir);
    await m.append("a1");
    const first = await m.rotate();
    await m.append("b1");
    const { f, lines } = follower(dir);
    await f.start();
    await Deno.remove(`${dir}/${first}`);
    await m.append("b2");
    await m.rotate();
    await m.append("c1");
    await f.look();
    assert.deepEqual(lines, ["a1", "b1", "b2", "c1"]);
    f.stop();
    await f.run();
  });
});

Deno.test("--since: rotated files older than it are not read at all", async () => {
  await withTempDir(async (dir) => {
    const m = new FakeMultilog(dir);
    await m.append("old");
    const first = await m.rotate();
    await m.append("newer");
    await m.rotate();
    await m.append("now");
    // Just after the first file was rotated: it is skipped, the second is read.
    const { f, lines } = follower(dir, decodeTai64n(first.slice(0, 25))! + 1);
    await f.start();
    assert.deepEqual(lines, ["newer", "now"]);
    f.stop();
    await f.run();
  });
});

Deno.test("the follower waits for a current that is not there yet, in a directory that is", async () => {
  await withTempDir(async (dir) => {
    const { f, lines } = follower(dir);
    await f.start();
    assert.deepEqual(lines, []);
    await Deno.writeTextFile(`${dir}/current`, "first\n");
    await f.look();
    assert.deepEqual(lines, ["first"]);
    f.stop();
    await f.run();
  });
});

Deno.test("the follower's start fails when the directory is not there", async () => {
  await withTempDir(async (dir) => {
    const { f } = follower(`${dir}/nothing`);
    await assert.rejects(() => f.start(), Deno.errors.NotFound);
  });
});

Deno.test("run() looks every pollMs and ends at stop()", async () => {
  await withTempDir(async (dir) => {
    const m = new FakeMultilog(dir);
    await m.append("a1");
    const lines: string[] = [];
    const f = new Follower({
      dir,
      sinceMs: undefined,
      decode: decodeTai64n,
      line: (l) => lines.push(l),
      warn: () => {},
      pollMs: 20,
    });
    await f.start();
    const running = f.run();
    await m.append("a2");
    for (let i = 0; i < 100 && lines.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(lines, ["a1", "a2"]);
    f.stop();
    await running;
  });
});
