/**
 * The HTTP endpoint: `GET /metrics` on the address the admin named, and
 * nothing else. It shares serve's thread with the screening, so what a
 * scraper can make it do is bounded, whatever the scraper does:
 *
 * - connections: at most MAX_CONNECTIONS at once; beyond, the next ones
 *   wait in the kernel's listen queue (they cost serve no fd, no work);
 * - new connections: at most ACCEPTS_PER_SECOND (a token bucket), so that
 *   one that connects and hangs up in a loop cannot keep the thread busy;
 * - the request: at most MAX_REQUEST_BYTES up to its blank line, read at
 *   most once per READ_PAUSE_MS (a request sent a byte at a time costs a
 *   read per pause, not a read per byte); a longer one gets 431;
 * - time: every connection is closed DEADLINE_MS after it was accepted,
 *   answered or not, read by its client or not.
 *
 * One answer per connection (`Connection: close`): GET or HEAD of
 * /metrics gets 200, another path 404, another method 405, anything that is
 * not an HTTP/1 request line 400.
 */

/** The endpoint's bounds (tests shorten them). */
export interface Limits {
  readonly maxConnections: number;
  readonly acceptsPerSecond: number;
  readonly maxRequestBytes: number;
  readonly readPauseMs: number;
  readonly deadlineMs: number;
}

export const LIMITS: Limits = Object.freeze({
  maxConnections: 4,
  acceptsPerSecond: 200,
  maxRequestBytes: 4096,
  readPauseMs: 20,
  deadlineMs: 5000,
});

/** How long accepting pauses after a failed accept (out of fds): no spinning on it. */
const ACCEPT_FAILED_PAUSE_MS = 100;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The answer to a request's head: status, and the body for 200. */
export function answerFor(head: string): { status: number; reason: string; metrics: boolean } {
  const line = head.slice(0, head.indexOf("\r\n") < 0 ? head.length : head.indexOf("\r\n"));
  const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(line);
  if (!m) return { status: 400, reason: "Bad Request", metrics: false };
  const [, method, target] = m;
  const path = target!.replace(/\?.*$/, "");
  if (path !== "/metrics") return { status: 404, reason: "Not Found", metrics: false };
  if (method !== "GET" && method !== "HEAD") {
    return { status: 405, reason: "Method Not Allowed", metrics: false };
  }
  return { status: 200, reason: "OK", metrics: true };
}

/** A whole HTTP/1.1 answer, with Connection: close; the body left out for HEAD. */
export function response(
  status: number,
  reason: string,
  contentType: string,
  body: string,
  head = false,
): Uint8Array {
  const bytes = encoder.encode(body);
  const lines = [
    `HTTP/1.1 ${status} ${reason}`,
    `Content-Type: ${contentType}`,
    `Content-Length: ${bytes.length}`,
    "Connection: close",
    ...(status === 405 ? ["Allow: GET, HEAD"] : []),
    "",
    "",
  ];
  const top = encoder.encode(lines.join("\r\n"));
  if (head) return top;
  const out = new Uint8Array(top.length + bytes.length);
  out.set(top);
  out.set(bytes, top.length);
  return out;
}

/** Where the request's head ends (after its blank line), or -1. */
function headEnd(bytes: Uint8Array, length: number): number {
  for (let i = 3; i < length; i++) {
    if (bytes[i] === 10 && bytes[i - 1] === 13 && bytes[i - 2] === 10 && bytes[i - 3] === 13) {
      return i + 1;
    }
  }
  return -1;
}

/** What the endpoint answers with: the body of the metrics, made at each scrape. */
export interface Page {
  readonly contentType: string;
  body(): string;
}

export class Endpoint {
  /** Reads and connections so far: what scrapers cost (tests and bench/ look). */
  reads = 0;
  accepted = 0;
  private readonly open = new Set<Deno.Conn>();
  private slotFreed: (() => void) | undefined;
  private tokens: number;
  private refilledAt = performance.now();
  private closed = false;
  private readonly accepting: Promise<void>;
  private readonly handling = new Set<Promise<void>>();

  private constructor(
    private readonly listener: Deno.Listener,
    private readonly page: Page,
    private readonly limits: Limits,
  ) {
    this.tokens = limits.acceptsPerSecond;
    this.accepting = this.acceptLoop();
  }

  /** Listens on `hostname`:`port` (throws Deno's error when it cannot). */
  static listen(hostname: string, port: number, page: Page, limits: Limits = LIMITS): Endpoint {
    const listener = Deno.listen({ hostname, port, transport: "tcp" });
    return new Endpoint(listener, page, limits);
  }

  /** The port it listens on. */
  get port(): number {
    return (this.listener.addr as Deno.NetAddr).port;
  }

  /** Stops listening, closes every connection, waits for their handlers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listener.close();
    for (const conn of this.open) closeQuietly(conn);
    this.slotFreed?.();
    await this.accepting;
    await Promise.all(this.handling);
  }

  private async acceptLoop(): Promise<void> {
    while (!this.closed) {
      if (this.open.size >= this.limits.maxConnections) {
        await new Promise<void>((resolve) => this.slotFreed = resolve);
        this.slotFreed = undefined;
        continue;
      }
      const waitMs = this.takeToken();
      if (waitMs > 0) {
        await sleep(waitMs);
        continue;
      }
      let conn: Deno.Conn;
      try {
        conn = await this.listener.accept();
      } catch {
        if (this.closed) return;
        await sleep(ACCEPT_FAILED_PAUSE_MS); // out of fds, most likely: the screening has them first
        continue;
      }
      if (this.closed) {
        closeQuietly(conn);
        return;
      }
      this.accepted++;
      this.open.add(conn);
      const handled = this.handle(conn).finally(() => {
        this.open.delete(conn);
        this.handling.delete(handled);
        this.slotFreed?.();
      });
      this.handling.add(handled);
    }
  }

  /** Takes a token of the accept rate; or says how long to wait for one. */
  private takeToken(): number {
    const now = performance.now();
    const rate = this.limits.acceptsPerSecond;
    this.tokens = Math.min(rate, this.tokens + ((now - this.refilledAt) * rate) / 1000);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * 1000) / rate);
  }

  /** One connection: its request's head, one answer, closed; all within the deadline. */
  private async handle(conn: Deno.Conn): Promise<void> {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      closeQuietly(conn); // a pending read or write fails, and the handler ends
    }, this.limits.deadlineMs);
    try {
      const buffer = new Uint8Array(this.limits.maxRequestBytes);
      let length = 0;
      let end = -1;
      while (end < 0) {
        if (length === buffer.length) {
          await writeAll(conn, response(431, "Request Header Fields Too Large", "text/plain", ""));
          return;
        }
        const n = await conn.read(buffer.subarray(length));
        this.reads++;
        if (n === null) return; // hung up before a whole request
        length += n;
        end = headEnd(buffer, length);
        if (end < 0 && !done) await sleep(this.limits.readPauseMs);
        if (done) return;
      }
      const head = decoder.decode(buffer.subarray(0, end));
      const { status, reason, metrics } = answerFor(head);
      const body = metrics ? this.page.body() : `${reason}\n`;
      const type = metrics ? this.page.contentType : "text/plain; charset=utf-8";
      await writeAll(conn, response(status, reason, type, body, head.startsWith("HEAD ")));
    } catch {
      // closed by the deadline, reset by the client: nothing to answer
    } finally {
      clearTimeout(timer);
      if (!done) closeQuietly(conn);
    }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
}

function closeQuietly(conn: Deno.Conn | Deno.Listener): void {
  try {
    conn.close();
  } catch {
    // closed already
  }
}
