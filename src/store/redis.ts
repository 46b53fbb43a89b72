/**
 * The Redis store, for a cluster of MX hosts sharing one memory: a RESP2
 * client of its own over Deno.connect (no npm client: every connection would
 * pay for loading it), one TCP connection per store, one command batch at a
 * time.
 *
 * A record is a JSON string under `smtp-delay:KEY` with an absolute expiry
 * (`SET ... PXAT`), so Redis expires records by itself. `update` is atomic
 * across processes and hosts by optimistic locking: WATCH and GET, run the
 * change, then MULTI, SET or DEL, EXEC; EXEC answers nil when another client
 * changed the key in between, and the update starts over after a short
 * random pause.
 *
 * Every operation, connecting included, ends within `timeoutMs` or fails with
 * a StoreError that says why; the deadline is the caller's (libc().sleep on
 * the per-connection path: no timer). A connection that timed out or failed is
 * closed, and the next operation opens a new one; one that the server closed
 * while it was idle is replaced on the spot. An update that timed out while
 * its EXEC was on the way may or may not have been applied.
 */
import { type Change, type ClientRecord, parseRecord, type Store, StoreError } from "./store.ts";
import type { RedisTarget } from "./url.ts";

/** The prefix of every key this store writes. */
export const KEY_PREFIX = "smtp-delay:";
/** How many times `update` starts over after a conflict before it gives up. */
const MAX_ATTEMPTS = 64;
/** The longest random pause between two attempts of a conflicting update. */
const MAX_PAUSE_MS = 32;
/** Keys asked per SCAN and per MGET in `list`. */
const BATCH = 1000;

// ---------------------------------------------------------------------------
// RESP2, pure: commands out, replies in.

/** One RESP2 reply. `bulk` and `array` are null for the null bulk string and the null array. */
export type Reply =
  | { readonly type: "simple"; readonly value: string }
  | { readonly type: "error"; readonly value: string }
  | { readonly type: "integer"; readonly value: number }
  | { readonly type: "bulk"; readonly value: string | null }
  | { readonly type: "array"; readonly value: readonly Reply[] | null };

/** Bytes that are not a RESP2 reply. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
}

const CR = 0x0d;
const LF = 0x0a;
/** The longest header or simple line accepted before the bytes are taken for garbage. */
const MAX_LINE_BYTES = 64 * 1024;
/** Redis's own proto-max-bulk-len. */
const MAX_BULK_BYTES = 512 * 1024 * 1024;
const MAX_ARRAY_ITEMS = 16 * 1024 * 1024;
/** Replies nest arrays one or two deep; deeper is garbage (and would exhaust the stack). */
const MAX_DEPTH = 8;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A command as a RESP2 array of bulk strings: `*N\r\n$LEN\r\nARG\r\n...`. */
export function encodeCommand(args: readonly string[]): Uint8Array {
  const parts = args.map((arg) => encoder.encode(arg));
  const head = (text: string) => encoder.encode(text);
  const chunks = [head(`*${parts.length}\r\n`)];
  for (const part of parts) chunks.push(head(`$${part.length}\r\n`), part, head("\r\n"));
  return concat(chunks);
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/**
 * Reads replies from a byte stream fed in chunks of any size: `push` what was
 * read, then take each complete reply with `next` until it returns undefined
 * (more bytes needed). Throws ProtocolError on bytes that are not RESP2.
 */
export class ReplyParser {
  #buffer = new Uint8Array(0);
  #start = 0;

  /** Appends `chunk` (copied: the caller may reuse it). */
  push(chunk: Uint8Array): void {
    const rest = this.#buffer.subarray(this.#start);
    const joined = new Uint8Array(rest.length + chunk.length);
    joined.set(rest);
    joined.set(chunk, rest.length);
    this.#buffer = joined;
    this.#start = 0;
  }

  /** The next complete reply, or undefined until more bytes are pushed. */
  next(): Reply | undefined {
    const parsed = parseReply(this.#buffer, this.#start, 0);
    if (parsed === undefined) return undefined;
    this.#start = parsed.end;
    return parsed.reply;
  }

  /** How many bytes wait, pushed but not yet part of a reply. */
  get pending(): number {
    return this.#buffer.length - this.#start;
  }
}

/** The reply starting at `at` and where it ends, or undefined if `bytes` ends first. */
function parseReply(
  bytes: Uint8Array,
  at: number,
  depth: number,
): { reply: Reply; end: number } | undefined {
  if (at >= bytes.length) return undefined;
  const eol = lineEnd(bytes, at);
  if (eol < 0) return undefined;
  const line = decoder.decode(bytes.subarray(at + 1, eol));
  const after = eol + 2;
  const type = bytes[at]!;
  switch (type) {
    case 0x2b: // +
      return { reply: { type: "simple", value: line }, end: after };
    case 0x2d: // -
      return { reply: { type: "error", value: line }, end: after };
    case 0x3a: // :
      if (!/^-?[0-9]{1,19}$/.test(line)) throw new ProtocolError(`bad integer "${clip(line)}"`);
      return { reply: { type: "integer", value: Number(line) }, end: after };
    case 0x24: { // $
      const n = length(line, MAX_BULK_BYTES);
      if (n < 0) return { reply: { type: "bulk", value: null }, end: after };
      if (bytes.length < after + n + 2) return undefined;
      if (bytes[after + n] !== CR || bytes[after + n + 1] !== LF) {
        throw new ProtocolError(`bulk string of ${n} bytes not followed by CRLF`);
      }
      const value = decoder.decode(bytes.subarray(after, after + n));
      return { reply: { type: "bulk", value }, end: after + n + 2 };
    }
    case 0x2a: { // *
      const n = length(line, MAX_ARRAY_ITEMS);
      if (n < 0) return { reply: { type: "array", value: null }, end: after };
      if (depth >= MAX_DEPTH) throw new ProtocolError(`arrays nested deeper than ${MAX_DEPTH}`);
      const items: Reply[] = [];
      let end = after;
      for (let i = 0; i < n; i++) {
        const item = parseReply(bytes, end, depth + 1);
        if (item === undefined) return undefined;
        items.push(item.reply);
        end = item.end;
      }
      return { reply: { type: "array", value: items }, end };
    }
    default:
      throw new ProtocolError(`unexpected byte ${type} at the start of a reply`);
  }
}

/** Where the CRLF ending the line at `at` starts; -1 if not there yet. */
function lineEnd(bytes: Uint8Array, at: number): number {
  const stop = Math.min(bytes.length, at + MAX_LINE_BYTES);
  for (let i = at; i < stop; i++) {
    const b = bytes[i]!;
    if (b === LF) throw new ProtocolError("LF without CR");
    if (b !== CR) continue;
    if (i + 1 === bytes.length) return -1;
    if (bytes[i + 1] !== LF) throw new ProtocolError("CR without LF");
    return i;
  }
  if (stop - at === MAX_LINE_BYTES) {
    throw new ProtocolError(`no line end in ${MAX_LINE_BYTES} bytes`);
  }
  return -1;
}

/** A bulk or array length: -1 (null) or 0..max. */
function length(line: string, max: number): number {
  if (line === "-1") return -1;
  if (!/^(0|[1-9][0-9]{0,9})$/.test(line) || Number(line) > max) {
    throw new ProtocolError(`bad length "${clip(line)}"`);
  }
  return Number(line);
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}

// ---------------------------------------------------------------------------
// One TCP connection.

/** Says why a Deno I/O error happened, in a few words. */
function ioFailure(e: unknown): string {
  if (e instanceof Deno.errors.ConnectionRefused) return "connection refused";
  if (e instanceof Deno.errors.ConnectionReset) return "connection reset by the server";
  if (e instanceof Deno.errors.ConnectionAborted) return "connection aborted";
  if (e instanceof Deno.errors.BrokenPipe) return "connection closed by the server";
  if (e instanceof Deno.errors.NotConnected) return "not connected";
  if (e instanceof Deno.errors.TimedOut) return "connection timed out";
  if (e instanceof Deno.errors.AddrNotAvailable) return "address not available";
  const text = e instanceof Error ? e.message : String(e);
  return text.split("\n")[0]!.slice(0, 200);
}

/** A connection that sends command batches and reads their replies, one batch at a time. */
class Link {
  readonly #conn: Deno.TcpConn;
  readonly #fail: (why: string) => StoreError;
  readonly #parser = new ReplyParser();
  readonly #chunk = new Uint8Array(16 * 1024);
  #closed: string | undefined;
  #replies = 0;
  #hungUp = false;

  constructor(conn: Deno.TcpConn, fail: (why: string) => StoreError) {
    this.#conn = conn;
    this.#fail = fail;
  }

  /** How many replies this connection has read. */
  get replies(): number {
    return this.#replies;
  }

  /** Whether the server hung up (end of stream, reset) between two replies. */
  get hungUp(): boolean {
    return this.#hungUp;
  }

  /** Sends `commands` in one write and returns their replies, in order. */
  async call(commands: readonly (readonly string[])[]): Promise<Reply[]> {
    if (this.#closed !== undefined) throw this.#fail(this.#closed);
    try {
      let rest = concat(commands.map(encodeCommand));
      while (rest.length > 0) rest = rest.subarray(await this.#conn.write(rest));
      const replies: Reply[] = [];
      while (replies.length < commands.length) {
        const reply = this.#parser.next();
        if (reply !== undefined) {
          replies.push(reply);
          this.#replies++;
          continue;
        }
        const n = await this.#conn.read(this.#chunk);
        if (n === null) {
          this.#hungUp = this.#parser.pending === 0;
          throw this.#fail(
            this.#parser.pending > 0
              ? "connection closed by the server in the middle of a reply"
              : "connection closed by the server",
          );
        }
        this.#parser.push(this.#chunk.subarray(0, n));
      }
      if (this.#parser.pending > 0) throw this.#fail("more bytes than replies");
      return replies;
    } catch (e) {
      if (e instanceof StoreError) throw e;
      if (this.#closed !== undefined) throw this.#fail(this.#closed);
      if (e instanceof ProtocolError) throw this.#fail(`unparsable reply: ${e.message}`);
      this.#hungUp = e instanceof Deno.errors.ConnectionReset ||
        e instanceof Deno.errors.BrokenPipe || e instanceof Deno.errors.ConnectionAborted;
      throw this.#fail(ioFailure(e));
    }
  }

  /** Closes the connection; a call in progress or to come fails with `why`. */
  close(why: string): void {
    if (this.#closed !== undefined) return;
    this.#closed = why;
    try {
      this.#conn.close();
    } catch {
      // already gone
    }
  }
}

// ---------------------------------------------------------------------------
// The store.

const TIMEOUT = Symbol("timeout");

/**
 * Connects to the Redis server of `target` (parseStoreUrl's: AUTH and SELECT
 * when it has a password and a database) and returns the store. Every operation, this
 * connection included, ends within `timeoutMs` as measured by `deadline`
 * (libc().sleep on the per-connection path) or fails with a StoreError.
 * `deadline` also times the pauses between the attempts of a conflicting
 * update. Operations on one store run one after the other, each with its own
 * deadline from when its turn comes.
 */
export async function openRedis(
  target: RedisTarget,
  deadline: (ms: number) => Promise<void>,
  timeoutMs: number,
): Promise<Store> {
  const store = new RedisStore(target, deadline, timeoutMs);
  await store.connect();
  return store;
}

class RedisStore implements Store {
  readonly #target: RedisTarget;
  readonly #deadline: (ms: number) => Promise<void>;
  readonly #timeoutMs: number;
  #link: Link | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(target: RedisTarget, deadline: (ms: number) => Promise<void>, timeoutMs: number) {
    this.#target = target;
    this.#deadline = deadline;
    this.#timeoutMs = timeoutMs;
  }

  #error(why: string): StoreError {
    return new StoreError(`redis ${this.#target.name}: ${why}`);
  }

  /** Opens the connection now (operations open it when they need it). */
  connect(): Promise<void> {
    return this.#run(async () => {});
  }

  update(key: string, change: Change): Promise<ClientRecord | undefined> {
    const redisKey = KEY_PREFIX + key;
    return this.#run(async (link) => {
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        const [watched, got] = await link.call([["WATCH", redisKey], ["GET", redisKey]]);
        this.#expectOk(watched!);
        const next = change(this.#recordOf(got!));
        const write = next === undefined
          ? ["DEL", redisKey]
          : ["SET", redisKey, JSON.stringify(next.record), "PXAT", this.#expiry(next.expiresAt)];
        const [multi, queued, exec] = await link.call([["MULTI"], write, ["EXEC"]]);
        this.#expectOk(multi!);
        if (queued!.type === "error") throw this.#error(queued!.value);
        if (exec!.type !== "array") throw this.#unexpected(exec!);
        if (exec!.value === null) {
          // The key changed after WATCH: start over, after a random pause that
          // grows with each conflict, or two writers in step starve a third.
          await this.#deadline(Math.random() * Math.min(2 ** attempt, MAX_PAUSE_MS));
          continue;
        }
        const done = exec!.value[0];
        if (done?.type === "error") throw this.#error(done.value);
        return next?.record;
      }
      throw this.#error(`update of "${key}" conflicted ${MAX_ATTEMPTS} times`);
    });
  }

  get(key: string): Promise<ClientRecord | undefined> {
    return this.#run(async (link) => {
      const [got] = await link.call([["GET", KEY_PREFIX + key]]);
      return this.#recordOf(got!);
    });
  }

  list(): Promise<Array<[string, ClientRecord]>> {
    return this.#run(async (link) => {
      const keys = new Set<string>(); // SCAN may return a key twice
      let cursor = "0";
      do {
        const [page] = await link.call([
          ["SCAN", cursor, "MATCH", `${KEY_PREFIX}*`, "COUNT", String(BATCH)],
        ]);
        const [next, found] = page!.type === "array" && page!.value !== null ? page!.value : [];
        if (next?.type !== "bulk" || next.value === null || found?.type !== "array") {
          throw this.#unexpected(page!);
        }
        for (const item of found.value ?? []) {
          if (item.type === "bulk" && item.value !== null) keys.add(item.value);
        }
        cursor = next.value;
      } while (cursor !== "0");
      const sorted = [...keys].sort();
      const out: Array<[string, ClientRecord]> = [];
      for (let i = 0; i < sorted.length; i += BATCH) {
        const batch = sorted.slice(i, i + BATCH);
        const [values] = await link.call([["MGET", ...batch]]);
        if (values!.type !== "array" || values!.value?.length !== batch.length) {
          throw this.#unexpected(values!);
        }
        values!.value.forEach((value, j) => {
          const record = this.#recordOf(value);
          if (record !== undefined) out.push([batch[j]!.slice(KEY_PREFIX.length), record]);
        });
      }
      return out;
    });
  }

  delete(key: string): Promise<boolean> {
    return this.#run(async (link) => {
      const [deleted] = await link.call([["DEL", KEY_PREFIX + key]]);
      if (deleted!.type !== "integer") throw this.#unexpected(deleted!);
      return deleted!.value > 0;
    });
  }

  /** Redis expires keys by itself (PXAT): nothing is left to delete. */
  expire(_now: number): Promise<number> {
    return Promise.resolve(0);
  }

  close(): void {
    this.#closed = true;
    this.#link?.close("store closed");
    this.#link = undefined;
  }

  /**
   * Runs `work` after the operations before it, on the open connection (or a
   * new one), within the deadline. On any failure the connection is closed:
   * after a timeout it may still owe replies, after a failed update it may
   * still WATCH a key. A StoreError is thrown as is; any other error came
   * from the caller's `change` and is thrown as is too.
   */
  #run<T>(work: (link: Link) => Promise<T>): Promise<T> {
    const result = this.#queue.then(() => this.#bounded(work));
    this.#queue = result.catch(() => {});
    return result;
  }

  async #bounded<T>(work: (link: Link) => Promise<T>): Promise<T> {
    if (this.#closed) throw this.#error("store closed");
    const abort = new AbortController();
    let link = this.#link;
    const attempt = (async () => {
      const kept = link;
      if (kept !== undefined) {
        const before = kept.replies;
        try {
          return await work(kept);
        } catch (e) {
          // The server closed the kept connection while it was idle (its
          // idle timeout, a restart) and answered nothing, so nothing was
          // done: once, start over on a new connection.
          if (!kept.hungUp || kept.replies !== before || abort.signal.aborted) throw e;
          kept.close("connection closed by the server");
          if (this.#link === kept) this.#link = undefined;
          link = undefined;
        }
      }
      link = await this.#open(abort.signal, (opened) => link = opened);
      return await work(link);
    })();
    const late = this.#deadline(this.#timeoutMs).then(() => TIMEOUT);
    try {
      const result = await Promise.race([attempt, late]);
      if (result !== TIMEOUT) return result as T;
      abort.abort();
      throw this.#error(`timed out after ${this.#timeoutMs} ms`);
    } catch (e) {
      if (link !== undefined) {
        link.close("connection closed after a failure");
        if (this.#link === link) this.#link = undefined;
      }
      throw e;
    }
  }

  /**
   * A new connection, authenticated and on its database, kept for the next
   * operations. `opened` learns of it as soon as it exists, so that a timeout
   * during AUTH or SELECT closes it (and close() too).
   */
  async #open(signal: AbortSignal, opened: (link: Link) => void): Promise<Link> {
    const { host, port, username, password, db } = this.#target;
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: host, port, signal });
    } catch (e) {
      throw this.#error(signal.aborted ? "connection abandoned" : ioFailure(e));
    }
    const link = new Link(conn, (why) => this.#error(why));
    opened(link);
    if (signal.aborted || this.#closed) {
      const why = this.#closed ? "store closed" : "connection abandoned";
      link.close(why);
      throw this.#error(why);
    }
    this.#link = link;
    try {
      conn.setNoDelay(true);
    } catch {
      // not fatal
    }
    const hello: string[][] = [];
    if (password !== undefined) {
      hello.push(username === undefined ? ["AUTH", password] : ["AUTH", username, password]);
    }
    if (db !== 0) hello.push(["SELECT", String(db)]);
    if (hello.length > 0) { for (const reply of await link.call(hello)) this.#expectOk(reply); }
    return link;
  }

  #expectOk(reply: Reply): void {
    if (reply.type === "error") throw this.#error(reply.value);
    if (reply.type !== "simple" || reply.value !== "OK") throw this.#unexpected(reply);
  }

  #unexpected(reply: Reply): StoreError {
    if (reply.type === "error") return this.#error(reply.value);
    return this.#error(`unexpected reply ${clip(JSON.stringify(reply))}`);
  }

  /** A stored value's record: none for nil, for a value that is not a record, or a key of another type. */
  #recordOf(reply: Reply): ClientRecord | undefined {
    if (reply.type === "error" && reply.value.startsWith("WRONGTYPE")) return undefined;
    if (reply.type !== "bulk") throw this.#unexpected(reply);
    return reply.value === null ? undefined : parseRecord(reply.value);
  }

  #expiry(expiresAt: number): string {
    if (!Number.isFinite(expiresAt)) throw this.#error(`invalid expiry ${expiresAt}`);
    return String(Math.max(1, Math.ceil(expiresAt)));
  }
}
