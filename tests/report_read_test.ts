/**
 * src/report/read.ts: multilog directories in time order (and the rotated
 * files a period leaves out), plain and gzipped files, lines across chunks,
 * the last line without a newline, progress for big inputs, and the errors.
 */
import assert from "node:assert/strict";
import { encodeTai64n } from "../src/report/parse.ts";
import {
  InputError,
  multilogFiles,
  PROGRESS_FROM_BYTES,
  readLines,
  sources,
} from "../src/report/read.ts";
import { withTempDir } from "./fixtures/temp_dir.ts";

const T0 = Date.UTC(2026, 11, 1);
const H = 3_600_000;
const label = (ms: number) => encodeTai64n(ms);

async function allLines(paths: string[]): Promise<string[]> {
  const lines: string[] = [];
  await readLines(await sources(paths, { sinceMs: undefined, untilMs: undefined }), (l) => {
    lines.push(l);
  });
  return lines;
}

Deno.test("multilogFiles(): rotated files by name (time), then current; the rest left out", () => {
  const names = [
    "current",
    `${label(T0 + 2 * H)}.s`,
    "lock",
    "state",
    `${label(T0)}.s`,
    `${label(T0 + H)}.u`,
    "processed",
    "@notalabel.s",
  ];
  const all = { sinceMs: undefined, untilMs: undefined };
  assert.deepEqual(multilogFiles(names, all), [
    `${label(T0)}.s`,
    `${label(T0 + H)}.u`,
    `${label(T0 + 2 * H)}.s`,
    "current",
  ]);
});

Deno.test("multilogFiles(): a period leaves out the files wholly before or after it", async (t) => {
  // Files closed at T0, T0+1h, T0+2h: lines of the second are in (T0, T0+1h].
  const names = [`${label(T0)}.s`, `${label(T0 + H)}.s`, `${label(T0 + 2 * H)}.s`, "current"];
  const rows: Array<[string, number | undefined, number | undefined, string[]]> = [
    ["since after the first close", T0 + 1, undefined, names.slice(1)],
    ["since after every close", T0 + 3 * H, undefined, ["current"]],
    ["until at the first close", undefined, T0, [names[0]!]],
    ["until within the second", undefined, T0 + H - 1, names.slice(0, 2)],
    ["an hour in the middle", T0 + H, T0 + 2 * H, names.slice(1, 3)],
  ];
  for (const [name, sinceMs, untilMs, want] of rows) {
    await t.step(name, () => assert.deepEqual(multilogFiles(names, { sinceMs, untilMs }), want));
  }
});

Deno.test("readLines() reads a multilog directory in order, files and stdin's '-' as given", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/log`);
    await Deno.writeTextFile(`${dir}/log/${label(T0 + H)}.s`, "b1\nb2\n");
    await Deno.writeTextFile(`${dir}/log/${label(T0)}.s`, "a1\na2\n");
    await Deno.writeTextFile(`${dir}/log/current`, "c1\nc2 no newline");
    await Deno.writeTextFile(`${dir}/log/state`, "not a log\n");
    await Deno.writeTextFile(`${dir}/plain`, "p1\r\np2\n\n");
    assert.deepEqual(await allLines([`${dir}/log/`, `${dir}/plain`]), [
      "a1",
      "a2",
      "b1",
      "b2",
      "c1",
      "c2 no newline",
      "p1\r", // the CR is parse.ts's to drop
      "p2",
      "",
    ]);
  });
});

Deno.test("readLines() decompresses a gzipped file (a multilog processor's), and splits across chunks", async () => {
  await withTempDir(async (dir) => {
    const lines = Array.from({ length: 30_000 }, (_, i) => `line ${i} ${"x".repeat(i % 97)} é`);
    const text = new TextEncoder().encode(lines.join("\n") + "\n");
    const gz = new Uint8Array(
      await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream("gzip")))
        .arrayBuffer(),
    );
    await Deno.writeFile(`${dir}/log.gz`, gz);
    await Deno.writeFile(`${dir}/log`, text); // over 1 MB: several chunks, é across a boundary
    assert.ok(text.length > 1 << 20);
    assert.deepEqual(await allLines([`${dir}/log.gz`]), lines);
    assert.deepEqual(await allLines([`${dir}/log`]), lines);
  });
});

Deno.test("readLines() reports progress for big inputs only, a tenth at a time, a second apart", async () => {
  await withTempDir(async (dir) => {
    const big = PROGRESS_FROM_BYTES + 1000;
    await Deno.writeFile(`${dir}/big`, new Uint8Array(big).fill(10));
    await Deno.writeTextFile(`${dir}/small`, "x\n");
    let clock = 0;
    const calls: Array<[number, number | undefined]> = [];
    const list = await sources([`${dir}/big`], { sinceMs: undefined, untilMs: undefined });
    await readLines(
      list,
      () => clock += 0.01,
      (done, total) => calls.push([done, total]),
      () => clock,
    );
    assert.ok(calls.length >= 5 && calls.length <= 10, `${calls.length} calls`);
    assert.ok(calls.every(([, total]) => total === big));
    assert.ok(calls.every(([done], i) => i === 0 || done > calls[i - 1]![0]));
    const few: unknown[] = [];
    const small = await sources([`${dir}/small`], { sinceMs: undefined, untilMs: undefined });
    await readLines(small, () => {}, (...a) => few.push(a), () => clock += 5000);
    assert.deepEqual(few, [], "no progress for a small input");
  });
});

Deno.test("sources() fails with InputError for a missing file and a directory that is no multilog's", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      sources([`${dir}/nothing`], { sinceMs: undefined, untilMs: undefined }),
      (e: unknown) =>
        e instanceof InputError &&
        e.message === `unable to read ${dir}/nothing: No such file or directory`,
    );
    await Deno.writeTextFile(`${dir}/other`, "x\n");
    await assert.rejects(
      sources([dir], { sinceMs: undefined, untilMs: undefined }),
      (e: unknown) => e instanceof InputError && /not a multilog directory/.test(e.message),
    );
  });
});
