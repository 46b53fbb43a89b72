/**
 * The load generator: SMTP clients on 127.0.0.1 (Deno.connect), every wait
 * bounded.
 *
 * - patient: waits for the final `220 ` line, then EHLO, MAIL, RCPT, DATA, a
 *   message of `messageBytes` with a unique Message-Id, `.`, QUIT; wants 221.
 * - early: sends `EHLO early-N` right after connect and reads one reply:
 *   4xx/5xx = reject (caught), 220 = pass (let through), else error.
 * - quitter: closes after `quitAfterMs` without a word: quit (saw nothing),
 *   pass (got a 220 first), else error.
 *
 * Every byte a client sends is kept, to be checked against the recorder.
 */

export type Kind = "patient" | "early" | "quitter";
export type Outcome = "pass" | "reject" | "error" | "quit";

export interface ClientResult {
  readonly kind: Kind;
  readonly i: number;
  outcome: Outcome;
  /** Why an error or reject happened: "RCPT->451", "timeout", ... */
  why?: string;
  /** The reply code an early talker or quitter saw (0: closed without one). */
  code?: number;
  /** Connect to the final 220 line (patients). */
  bannerMs?: number;
  /** The code of the banner a patient saw (0: closed without one). */
  bannerCode?: number;
  /** Connect to 221 (patients). */
  sessionMs?: number;
  /** Connect to the reply (early talkers). */
  replyMs?: number;
  /** Every byte sent, in order. */
  sent: Uint8Array;
  /** The client's own port: finds its session in tcpserver's log ("ok PID ... ::PORT"). */
  port?: number;
  /** When the client started connecting and when it closed, in ms from the start of the load. */
  startMs?: number;
  closedMs?: number;
}

export interface LoadOptions {
  readonly port: number;
  readonly patient: number;
  readonly early: number;
  readonly quitters: number;
  /** Clients at once. */
  readonly concurrency: number;
  readonly messageBytes: number;
  /** When quitters hang up. */
  readonly quitAfterMs: number;
  /** Longest wait for one connect, read or write. */
  readonly ioTimeoutMs: number;
  /** Longest the whole load may take; clients still open then are cut off. */
  readonly maxMs: number;
  /** Tells this run's messages from another's. */
  readonly tag: string;
  readonly seed: number;
}

export interface LoadResult {
  readonly results: ClientResult[];
  readonly wallMs: number;
  /** Clients cut off by maxMs. */
  readonly unfinished: number;
}

class Timeout extends Error {
  override name = "Timeout";
}

const encoder = new TextEncoder();

/** Races `p` with a timer; on time-out calls `onTimeout` (which closes the socket) and throws. */
async function bounded<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let id: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    id = setTimeout(() => {
      onTimeout();
      reject(new Timeout(`no answer within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(id);
  }
}

/** One client connection: writes (recording every byte) and reads SMTP replies. */
class Client {
  private buf = new Uint8Array(0);
  private sentParts: Uint8Array[] = [];
  private closed = false;
  private constructor(private conn: Deno.TcpConn, private timeoutMs: number) {}

  static async open(port: number, timeoutMs: number, open: Set<Client>): Promise<Client> {
    const connecting = Deno.connect({ hostname: "127.0.0.1", port });
    const conn = await bounded(connecting, timeoutMs, () => {
      connecting.then((c) => c.close(), () => {});
    });
    const c = new Client(conn, timeoutMs);
    open.add(c);
    return c;
  }

  get port(): number {
    return this.conn.localAddr.port;
  }

  get sent(): Uint8Array {
    const out = new Uint8Array(this.sentParts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of this.sentParts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }

  async write(bytes: Uint8Array): Promise<void> {
    this.sentParts.push(bytes);
    let rest = bytes;
    while (rest.length > 0) {
      const n = await bounded(this.conn.write(rest), this.timeoutMs, () => this.close());
      rest = rest.subarray(n);
    }
  }

  /** One line with its CRLF, or "" when the server closed first. */
  async line(timeoutMs = this.timeoutMs): Promise<string> {
    for (;;) {
      const nl = this.buf.indexOf(10);
      if (nl >= 0) {
        const line = new TextDecoder().decode(this.buf.subarray(0, nl + 1));
        this.buf = this.buf.subarray(nl + 1);
        return line;
      }
      const chunk = new Uint8Array(65536);
      let n: number | null;
      try {
        n = await bounded(this.conn.read(chunk), timeoutMs, () => this.close());
      } catch (e) {
        if (e instanceof Timeout) throw e;
        n = null; // reset or closed: what was read before still counts
      }
      if (n === null) return "";
      const joined = new Uint8Array(this.buf.length + n);
      joined.set(this.buf);
      joined.set(chunk.subarray(0, n), this.buf.length);
      this.buf = joined;
    }
  }

  /** The code of the next (possibly multi-line) reply; 0 when closed, -1 when malformed. */
  async reply(timeoutMs = this.timeoutMs): Promise<number> {
    for (let i = 0; i < 100; i++) {
      const line = await this.line(timeoutMs);
      if (line === "") return 0;
      if (line[3] === "-") continue;
      return /^[0-9]{3}/.test(line) ? Number(line.slice(0, 3)) : -1;
    }
    return -1;
  }
}

const LINE = "the quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTUV";

/** A message of exactly `size` bytes (headers included, final dot not) with its own id. */
export function message(id: string, size: number): string {
  const head = `From: <${id}@example.com>\r\nTo: <rcpt@example.com>\r\n` +
    `Subject: bench ${id}\r\nMessage-Id: <${id}@bench>\r\n\r\n`;
  let rest = size - head.length;
  const lines: string[] = [];
  while (rest >= LINE.length + 2) {
    const tail = rest - (LINE.length + 2);
    // keep the last line at least 3 bytes long ("x\r\n")
    if (tail > 0 && tail < 3) break;
    lines.push(LINE + "\r\n");
    rest -= LINE.length + 2;
  }
  if (rest > 0) lines.push("x".repeat(Math.max(rest - 2, 1)) + "\r\n");
  return head + lines.join("");
}

const codeOutcome = (code: number): Outcome =>
  code === 220 ? "pass" : code >= 400 ? "reject" : "error";

async function patient(c: Client, r: ClientResult, o: LoadOptions, t0: number): Promise<void> {
  const banner = await c.reply();
  r.bannerMs = performance.now() - t0;
  r.bannerCode = banner;
  if (banner !== 220) {
    r.why = `banner->${banner}`;
    r.outcome = banner >= 400 ? "reject" : "error";
    return;
  }
  const id = `${o.tag}-${r.i}`;
  const steps: Array<[string, number]> = [
    [`EHLO bench-${r.i}\r\n`, 250],
    [`MAIL FROM:<${id}@example.com>\r\n`, 250],
    ["RCPT TO:<rcpt@example.com>\r\n", 250],
    ["DATA\r\n", 354],
    [message(id, o.messageBytes) + ".\r\n", 250],
    ["QUIT\r\n", 221],
  ];
  for (const [text, want] of steps) {
    await c.write(encoder.encode(text));
    const code = await c.reply();
    if (code !== want) {
      r.why = `${text.slice(0, 4)}->${code}`;
      r.outcome = code >= 400 ? "reject" : "error";
      return;
    }
  }
  r.sessionMs = performance.now() - t0;
  r.outcome = "pass";
}

async function early(c: Client, r: ClientResult, t0: number): Promise<void> {
  await c.write(encoder.encode(`EHLO early-${r.i}\r\n`));
  r.code = await c.reply();
  r.replyMs = performance.now() - t0;
  r.outcome = codeOutcome(r.code);
}

async function quitter(c: Client, r: ClientResult, o: LoadOptions): Promise<void> {
  try {
    r.code = await c.reply(o.quitAfterMs);
    r.outcome = codeOutcome(r.code);
  } catch (e) {
    if (!(e instanceof Timeout)) throw e;
    r.outcome = "quit";
  }
}

async function one(kind: Kind, i: number, o: LoadOptions, open: Set<Client>, loadT0: number) {
  const r: ClientResult = { kind, i, outcome: "error", sent: new Uint8Array(0) };
  const t0 = performance.now();
  r.startMs = Math.round(t0 - loadT0);
  let c: Client | undefined;
  try {
    c = await Client.open(o.port, o.ioTimeoutMs, open);
    r.port = c.port;
    if (kind === "patient") await patient(c, r, o, t0);
    else if (kind === "early") await early(c, r, t0);
    else await quitter(c, r, o);
  } catch (e) {
    r.outcome = "error";
    r.why = e instanceof Timeout ? "timeout" : e instanceof Error ? e.name : String(e);
  } finally {
    if (c) {
      r.sent = c.sent;
      c.close();
      r.closedMs = Math.round(performance.now() - loadT0);
      open.delete(c);
    }
  }
  return r;
}

/** A small seeded PRNG (mulberry32), so every run mixes the kinds the same way. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs every client, `concurrency` at once, in a seeded shuffled order. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const kinds: Kind[] = [
    ...Array<Kind>(o.patient).fill("patient"),
    ...Array<Kind>(o.early).fill("early"),
    ...Array<Kind>(o.quitters).fill("quitter"),
  ];
  const rand = random(o.seed);
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  const open = new Set<Client>();
  const results: ClientResult[] = [];
  let next = 0;
  let cutOff = false;
  const t0 = performance.now();
  const worker = async () => {
    while (!cutOff && next < kinds.length) {
      const i = next++;
      const r = await one(kinds[i]!, i, o, open, t0);
      if (cutOff) Object.assign(r, { outcome: "error", why: "cut off" });
      results.push(r);
    }
  };
  const workers = Promise.all(
    Array.from({ length: Math.min(o.concurrency, kinds.length) }, worker),
  );
  let id: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<void>((resolve) => {
    id = setTimeout(resolve, o.maxMs);
  });
  await Promise.race([workers, limit]);
  clearTimeout(id);
  let unfinished = 0;
  if (results.length < kinds.length) {
    cutOff = true;
    unfinished = kinds.length - results.length;
    open.forEach((c) => c.close()); // every pending read fails at once
    await workers;
  }
  const wallMs = performance.now() - t0;
  return { results: results.sort((a, b) => a.i - b.i), wallMs, unfinished };
}
