/**
 * Follows a multilog directory: each line, once, in the order it was
 * written. At start, the rotated files (`@TAI64N.s`, and `.u` for one
 * multilog did not finish), oldest first, then `current`; then what is
 * added to `current`, looked for every POLL_MS. When multilog rotates
 * `current` (renames it to `@TAI64N.s` and starts an empty one), the old
 * file is read to its end through the descriptor already open, then any
 * other file rotated since (more than one rotation between two looks), then
 * the new `current` from its start. Nothing is written to the directory.
 */
import { reason } from "../log.ts";

/** How often `current` is looked at. */
export const POLL_MS = 500;

/** Longest line kept; the rest of a longer one is dropped (smtp-delay's are under 1 KB). */
const MAX_LINE = 64 * 1024;

const CHUNK = 64 * 1024;

/** A rotated file's name: `@` and 24 hex digits, `.s` or `.u`. */
export function isRotated(name: string): boolean {
  return /^@[0-9a-f]{24}\.[su]$/.test(name);
}

/** Bytes in, whole lines out (without their newline); a line cut at MAX_LINE. */
export class Lines {
  private rest = "";
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });

  constructor(private readonly line: (text: string) => void) {}

  push(bytes: Uint8Array): void {
    const parts = (this.rest + this.decoder.decode(bytes, { stream: true })).split("\n");
    this.rest = parts.pop()!;
    if (this.rest.length > MAX_LINE) this.rest = this.rest.slice(0, MAX_LINE);
    for (const part of parts) this.line(part.length > MAX_LINE ? part.slice(0, MAX_LINE) : part);
  }

  /** The end of a file: a last line without its newline counts too. */
  end(): void {
    const last = this.rest + this.decoder.decode();
    this.rest = "";
    if (last !== "") this.line(last);
  }
}

/** What a Follower is told to do. */
export interface FollowOptions {
  readonly dir: string;
  /** Rotated files whose name (the time of their last line) is older are not read. */
  readonly sinceMs: number | undefined;
  /** Each line, without its newline. */
  readonly line: (text: string) => void;
  /** Something went wrong with a file (said once per kind of trouble). */
  readonly warn: (message: string) => void;
  /** A TAI64N label -> ms (src/report/parse.ts's decodeTai64n). */
  readonly decode: (label: string) => number | undefined;
  readonly pollMs?: number;
}

interface Current {
  readonly file: Deno.FsFile;
  readonly ino: number | null;
  readonly lines: Lines;
}

export class Follower {
  private current: Current | undefined;
  /** The newest rotated file read, by name (names sort by time). */
  private newest = "";
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private wake: (() => void) | undefined;
  private lastWarning = "";
  private readonly buffer = new Uint8Array(CHUNK);

  constructor(private readonly options: FollowOptions) {}

  /**
   * Reads what the directory holds now: `current` opened first, so that a
   * rotation meanwhile is seen, then the rotated files, then `current`.
   * Throws when the directory cannot be read.
   */
  async start(): Promise<void> {
    await this.openCurrent();
    await this.readRotated(this.current?.ino ?? null);
    if (this.current) await this.readOn(this.current);
  }

  /** Follows until stop(): looks at `current` every pollMs. */
  async run(): Promise<void> {
    while (!this.stopped) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, this.options.pollMs ?? POLL_MS);
      });
      if (this.stopped) break;
      try {
        await this.look();
      } catch (e) {
        this.warnOnce(`unable to read ${this.options.dir}: ${reason(e)}`);
      }
    }
    this.current?.file.close();
    this.current = undefined;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.wake?.();
  }

  /** One look: what was added to `current`, and whether it was rotated. */
  async look(): Promise<void> {
    if (!this.current) {
      await this.openCurrent();
      if (this.current) await this.readOn(this.current);
      return;
    }
    await this.readOn(this.current);
    let ino: number | null;
    try {
      ino = (await Deno.stat(this.path("current"))).ino;
    } catch {
      return; // between multilog's rename and its new current: the next look sees it
    }
    if (ino === this.current.ino) return;
    // Rotated: what multilog wrote before the rename is in the old file, which we still hold.
    const old = this.current;
    await this.readOn(old);
    old.lines.end();
    old.file.close();
    this.current = undefined;
    await this.readRotated(old.ino);
    await this.openCurrent();
    if (this.current) await this.readOn(this.current);
  }

  private path(name: string): string {
    return `${this.options.dir}/${name}`;
  }

  private async openCurrent(): Promise<void> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.path("current"));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        await Deno.stat(this.options.dir); // the directory itself must be there
        return; // multilog has not started yet
      }
      throw e;
    }
    const ino = (await file.stat()).ino;
    this.current = { file, ino, lines: new Lines(this.options.line) };
  }

  /** Reads `current` on from where it stood, to its end for now. */
  private async readOn(current: Current): Promise<void> {
    for (;;) {
      const n = await current.file.read(this.buffer);
      if (n === null || n === 0) return;
      current.lines.push(this.buffer.subarray(0, n));
    }
  }

  /**
   * The rotated files newer than the newest read, oldest first, but the one
   * with inode `skip` (the old `current`, read through its descriptor).
   */
  private async readRotated(skip: number | null): Promise<void> {
    const names: string[] = [];
    for await (const entry of Deno.readDir(this.options.dir)) {
      if (entry.isFile && isRotated(entry.name) && entry.name > this.newest) names.push(entry.name);
    }
    names.sort();
    const { sinceMs, decode } = this.options;
    for (const name of names) {
      this.newest = name;
      // Its name is the time it was rotated, after its last line: older than --since, all is.
      if (sinceMs !== undefined && (decode(name.slice(0, 25)) ?? Infinity) < sinceMs) continue;
      let file: Deno.FsFile;
      try {
        file = await Deno.open(this.path(name));
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue; // removed by multilog meanwhile (n)
        throw e;
      }
      try {
        if (skip !== null && (await file.stat()).ino === skip) continue;
        const lines = new Lines(this.options.line);
        await this.readOn({ file, ino: null, lines });
        lines.end();
      } finally {
        file.close();
      }
    }
  }

  private warnOnce(message: string): void {
    if (message === this.lastWarning) return;
    this.lastWarning = message;
    this.options.warn(message);
  }
}
