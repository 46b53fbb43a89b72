/**
 * The report's input: files, multilog directories and stdin, line by line,
 * in time order, with a progress line for big inputs.
 *
 * A directory is read as multilog leaves it: the rotated files (`@` +
 * TAI64N label + `.s`, or `.u` for one cut short), in the order of their
 * names, which is the order of time, then `current`. A rotated file's name
 * is when it was closed, so with a period the files wholly before it, or
 * wholly after it, are not read. A file that starts as gzip does (multilog's
 * processor may compress) is decompressed. `-`, or no argument, is stdin.
 */
import { reason } from "../log.ts";
import { decodeTai64n } from "./parse.ts";
import type { Period } from "./stats.ts";

/** One input to read: a file, or stdin (size undefined). */
export interface Source {
  /** The path, or `-` for stdin. */
  readonly path: string;
  readonly size: number | undefined;
}

/** An input that cannot be read: the path and the system's reason. */
export class InputError extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(`unable to read ${path}: ${reason}`);
  }
}

const ROTATED = /^@[0-9a-fA-F]{24}\.[su]$/;

/**
 * The multilog files of `dir` to read for `period`, oldest first: those
 * rotated files whose lines may fall in it, and `current`.
 */
export function multilogFiles(
  names: readonly string[],
  period: Period,
): string[] {
  const rotated = names.filter((n) => ROTATED.test(n)).sort();
  const out: string[] = [];
  let previousMs = -Infinity; // the lines of a file come after the previous file's close
  for (const name of rotated) {
    const closedMs = decodeTai64n(name.slice(0, 25)) ?? Infinity;
    const before = period.sinceMs !== undefined && closedMs < period.sinceMs;
    const after = period.untilMs !== undefined && previousMs >= period.untilMs;
    if (!before && !after) out.push(name);
    previousMs = Math.max(previousMs, closedMs);
  }
  const after = period.untilMs !== undefined && previousMs >= period.untilMs;
  if (names.includes("current") && !after) out.push("current");
  return out;
}

/** The arguments -> the files to read, in order (directories expanded). */
export async function sources(args: readonly string[], period: Period): Promise<Source[]> {
  if (args.length === 0) return [{ path: "-", size: undefined }];
  const out: Source[] = [];
  for (const arg of args) {
    if (arg === "-") {
      out.push({ path: "-", size: undefined });
      continue;
    }
    const info = await stat(arg);
    if (!info.isDirectory) {
      out.push({ path: arg, size: info.size });
      continue;
    }
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(arg)) if (e.isFile) names.push(e.name);
    } catch (e) {
      throw new InputError(arg, reason(e));
    }
    if (!names.includes("current") && !names.some((n) => ROTATED.test(n))) {
      throw new InputError(arg, "no current and no @...s file: not a multilog directory");
    }
    for (const name of multilogFiles(names, period)) {
      const path = `${arg.replace(/\/+$/, "")}/${name}`;
      out.push({ path, size: (await stat(path)).size });
    }
  }
  return out;
}

async function stat(path: string): Promise<Deno.FileInfo> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    throw new InputError(path, reason(e));
  }
}

/** Inputs bigger than this (together) get progress lines. */
export const PROGRESS_FROM_BYTES = 8 * 1024 * 1024;
/** stdin, whose size is unknown: a progress line every this many bytes. */
const STDIN_PROGRESS_BYTES = 256 * 1024 * 1024;

/** What the progress line is told: bytes read so far, of how many (undefined for stdin). */
export type Progress = (readBytes: number, totalBytes: number | undefined) => void;

const CHUNK = 1 << 20;
const GZIP = [0x1f, 0x8b];

/** The least time between two progress lines. */
const PROGRESS_EVERY_MS = 1000;

/**
 * Reads every source in order and calls `line` with each line (without its
 * newline; a last line without one too). `progress` is called when the
 * input is big, after every tenth of the total (or every 256 MB of stdin)
 * and a second or more after its last call: at most ten times for files.
 */
export async function readLines(
  list: readonly Source[],
  line: (text: string) => void,
  progress?: Progress,
  nowMs: () => number = () => performance.now(),
): Promise<void> {
  const known = list.every((s) => s.size !== undefined);
  const total = known ? list.reduce((n, s) => n + s.size!, 0) : undefined;
  const report = progress && (total === undefined || total > PROGRESS_FROM_BYTES);
  const step = total === undefined ? STDIN_PROGRESS_BYTES : total / 10;
  let done = 0;
  let nextAt = step;
  let lastMs = nowMs();
  const counted = (n: number) => {
    done += n;
    if (!report || done < nextAt) return;
    while (nextAt <= done) nextAt += step;
    if (nowMs() - lastMs < PROGRESS_EVERY_MS) return;
    lastMs = nowMs();
    progress(done, total);
  };
  for (const source of list) {
    try {
      await readOne(source, line, counted);
    } catch (e) {
      if (e instanceof InputError) throw e;
      throw new InputError(source.path, reason(e));
    }
  }
}

async function readOne(
  source: Source,
  line: (text: string) => void,
  counted: (bytes: number) => void,
): Promise<void> {
  const file = source.path === "-" ? Deno.stdin : await Deno.open(source.path);
  try {
    const buffer = new Uint8Array(CHUNK);
    const first = await file.read(buffer);
    if (first === null) return;
    counted(first);
    const head = buffer.slice(0, first);
    const splitter = new LineSplitter(line);
    if (head[0] === GZIP[0] && head[1] === GZIP[1]) {
      await gunzip(file, head, splitter, counted);
      return;
    }
    splitter.push(head);
    for (;;) {
      const n = await file.read(buffer);
      if (n === null) break;
      counted(n);
      splitter.push(buffer.subarray(0, n));
    }
    splitter.end();
  } finally {
    if (file !== Deno.stdin) file.close();
  }
}

async function gunzip(
  file: Deno.FsFile | typeof Deno.stdin,
  head: Uint8Array<ArrayBuffer>,
  splitter: LineSplitter,
  counted: (bytes: number) => void,
): Promise<void> {
  const input = new ReadableStream<BufferSource>({
    start(c) {
      c.enqueue(head);
    },
    async pull(c) {
      const buffer = new Uint8Array(CHUNK);
      const n = await file.read(buffer);
      if (n === null) c.close();
      else {
        counted(n);
        c.enqueue(buffer.subarray(0, n));
      }
    },
  });
  try {
    for await (const chunk of input.pipeThrough(new DecompressionStream("gzip"))) {
      splitter.push(chunk);
    }
  } catch (e) {
    throw new Error(`not gzip after all: ${e instanceof Error ? e.message : e}`);
  }
  splitter.end();
}

/** Bytes in, lines out: UTF-8 decoded across chunks, split at LF. */
class LineSplitter {
  private readonly decoder = new TextDecoder();
  private rest = "";

  constructor(private readonly line: (text: string) => void) {}

  push(bytes: Uint8Array): void {
    const text = this.rest + this.decoder.decode(bytes, { stream: true });
    let from = 0;
    for (;;) {
      const nl = text.indexOf("\n", from);
      if (nl < 0) break;
      this.line(text.slice(from, nl));
      from = nl + 1;
    }
    this.rest = text.slice(from);
  }

  end(): void {
    const text = this.rest + this.decoder.decode();
    this.rest = "";
    if (text !== "") this.line(text);
  }
}
