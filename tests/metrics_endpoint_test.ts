/**
 * The endpoint on 127.0.0.1, in this process, with its bounds shortened:
 * what it answers, and what a scraper that misbehaves can make it do.
 */
import assert from "node:assert/strict";
import { answerFor, Endpoint, LIMITS, type Limits, type Page } from "../src/metrics/endpoint.ts";

const PAGE: Page = { contentType: "text/plain; version=0.0.4; charset=utf-8", body: () => "x 1\n" };

const FAST: Limits = {
  maxConnections: 2,
  acceptsPerSecond: 1000,
  maxRequestBytes: 512,
  readPauseMs: 50,
  deadlineMs: 400,
};

const GET = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n";

const decoder = new TextDecoder();

/** Runs `body` with an endpoint listening; closes it after. */
async function withEndpoint(
  limits: Limits,
  body: (e: Endpoint) => Promise<void>,
  page: Page = PAGE,
): Promise<void> {
  const endpoint = Endpoint.listen("127.0.0.1", 0, page, limits);
  try {
    await body(endpoint);
  } finally {
    await endpoint.close();
  }
}

/** A client: connects, sends `request` (all at once), reads to the end; the answer and ms. */
async function ask(port: number, request: string): Promise<{ text: string; ms: number }> {
  const t0 = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(request));
    return { text: await readAll(conn), ms: performance.now() - t0 };
  } finally {
    conn.close();
  }
}

async function readAll(conn: Deno.Conn): Promise<string> {
  const chunks: string[] = [];
  const buf = new Uint8Array(65536);
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch {
      break; // reset by the endpoint
    }
    if (n === null) break;
    chunks.push(decoder.decode(buf.subarray(0, n)));
  }
  return chunks.join("");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("answerFor() takes GET and HEAD of /metrics and nothing else", async (t) => {
  const rows: [string, string, number][] = [
    ["GET /metrics", "GET /metrics HTTP/1.1\r\n\r\n", 200],
    ["HTTP/1.0", "GET /metrics HTTP/1.0\r\n\r\n", 200],
    ["a query string", "GET /metrics?x=1 HTTP/1.1\r\n\r\n", 200],
    ["HEAD", "HEAD /metrics HTTP/1.1\r\n\r\n", 200],
    ["another path", "GET / HTTP/1.1\r\n\r\n", 404],
    ["a longer path", "GET /metrics/x HTTP/1.1\r\n\r\n", 404],
    ["POST", "POST /metrics HTTP/1.1\r\n\r\n", 405],
    ["HTTP/2's preface", "PRI * HTTP/2.0\r\n\r\n", 400],
    ["lowercase method", "get /metrics HTTP/1.1\r\n\r\n", 400],
    ["no version", "GET /metrics\r\n\r\n", 400],
    ["binary", "\x16\x03\x01\x00\r\n\r\n", 400],
  ];
  for (const [name, head, want] of rows) {
    await t.step(name, () => assert.equal(answerFor(head).status, want));
  }
});

Deno.test("the endpoint answers GET /metrics with the page, and closes", async () => {
  await withEndpoint(FAST, async (e) => {
    const { text } = await ask(e.port, GET);
    assert.equal(
      text,
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n" +
        "Content-Length: 4\r\nConnection: close\r\n\r\nx 1\n",
    );
  });
});

Deno.test("the endpoint answers HEAD without a body, other paths 404, other methods 405", async () => {
  await withEndpoint(FAST, async (e) => {
    const head = await ask(e.port, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert.match(head.text, /^HTTP\/1\.1 200 OK\r\n.*Content-Length: 4\r\n/s);
    assert.ok(head.text.endsWith("\r\n\r\n"), JSON.stringify(head.text));
    assert.match((await ask(e.port, "GET / HTTP/1.1\r\n\r\n")).text, /^HTTP\/1\.1 404 /);
    const post = (await ask(e.port, "POST /metrics HTTP/1.1\r\n\r\n")).text;
    assert.match(post, /^HTTP\/1\.1 405 .*\r\nAllow: GET, HEAD\r\n/s);
  });
});

Deno.test("a request longer than maxRequestBytes gets 431 and costs no more reads", async () => {
  await withEndpoint(FAST, async (e) => {
    // Exactly the limit, no blank line: nothing is left unread (which would reset the answer).
    const head = "GET /metrics HTTP/1.1\r\nX: ";
    const { text } = await ask(e.port, head + "a".repeat(FAST.maxRequestBytes - head.length));
    assert.match(text, /^HTTP\/1\.1 431 /);
    assert.ok(e.reads <= 3, `${e.reads} reads`);
  });
});

Deno.test("a client that sends nothing is closed at the deadline", async () => {
  await withEndpoint(FAST, async (e) => {
    const { text, ms } = await ask(e.port, "");
    assert.equal(text, "");
    assert.ok(ms >= FAST.deadlineMs - 20 && ms < FAST.deadlineMs + 1000, `${ms} ms`);
  });
});

Deno.test("a request sent a byte at a time costs a read per pause, not a read per byte", async () => {
  await withEndpoint(FAST, async (e) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: e.port });
    try {
      conn.setNoDelay(true);
      const bytes = new TextEncoder().encode(GET);
      const t0 = performance.now();
      for (const b of bytes) {
        await conn.write(Uint8Array.of(b));
        await sleep(2);
      }
      const text = await readAll(conn);
      const ms = performance.now() - t0;
      assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
      // One read per readPauseMs at most while the bytes come, plus the first.
      assert.ok(e.reads <= Math.ceil(ms / FAST.readPauseMs) + 2, `${e.reads} reads, ${ms} ms`);
      assert.ok(e.reads < bytes.length / 2, `${e.reads} reads for ${bytes.length} bytes`);
    } finally {
      conn.close();
    }
  });
});

Deno.test("a slow sender that never finishes is closed at the deadline", async () => {
  await withEndpoint(FAST, async (e) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: e.port });
    try {
      const t0 = performance.now();
      let closed = false;
      const reader = readAll(conn).then(() => closed = true);
      while (!closed && performance.now() - t0 < 3000) {
        try {
          await conn.write(new TextEncoder().encode("X"));
        } catch {
          break;
        }
        await sleep(10);
      }
      await reader;
      const ms = performance.now() - t0;
      assert.ok(ms < FAST.deadlineMs + 1000, `${ms} ms`);
      assert.ok(e.reads <= FAST.deadlineMs / FAST.readPauseMs + 2, `${e.reads} reads`);
    } finally {
      conn.close();
    }
  });
});

Deno.test("at most maxConnections at once: the next waits for a free one", async () => {
  // A deadline far beyond the wait: the third is answered only because a slot was freed.
  const deadlineMs = 5000;
  await withEndpoint({ ...FAST, deadlineMs }, async (e) => {
    const idle = await Promise.all(
      [1, 2].map(() => Deno.connect({ hostname: "127.0.0.1", port: e.port })),
    );
    try {
      for (let i = 0; i < 200 && e.accepted < 2; i++) await sleep(10); // both accepted
      assert.equal(e.accepted, 2);
      const t0 = performance.now();
      const third = ask(e.port, GET);
      await sleep(100);
      assert.equal(e.accepted, 2, "the third waits in the listen queue");
      idle[0]!.close();
      const { text, ms } = await third;
      assert.match(text, /^HTTP\/1\.1 200 /);
      assert.ok(ms < deadlineMs / 2, `answered ${ms} ms after it asked, long before a deadline`);
      assert.ok(performance.now() - t0 >= 100);
    } finally {
      for (const c of idle) {
        try {
          c.close();
        } catch {
          // closed above
        }
      }
    }
  });
});

Deno.test("a scraper that never reads holds its connection until the deadline, no longer", async () => {
  // A page larger than the socket buffers: the write cannot finish while nobody reads.
  const big: Page = { contentType: "text/plain", body: () => "x".repeat(32 * 1024 * 1024) };
  await withEndpoint({ ...FAST, maxConnections: 1 }, async (e) => {
    // Timed from before the stuck connection's accept: its deadline counts from there, and the
    // page's 32 MB, made on this thread, may delay the second connection by any amount.
    const t0 = performance.now();
    const stuck = await Deno.connect({ hostname: "127.0.0.1", port: e.port });
    try {
      await stuck.write(new TextEncoder().encode(GET));
      await sleep(50);
      const { text } = await ask(e.port, "HEAD /metrics HTTP/1.1\r\n\r\n");
      const ms = performance.now() - t0;
      assert.match(text, /^HTTP\/1\.1 200 /);
      assert.ok(ms >= FAST.deadlineMs - 10 && ms < FAST.deadlineMs + 1000, `${ms} ms`);
    } finally {
      stuck.close();
    }
  }, big);
});

Deno.test("new connections are taken at most acceptsPerSecond", async () => {
  const limits = { ...FAST, acceptsPerSecond: 10, maxConnections: 4 };
  await withEndpoint(limits, async (e) => {
    const t0 = performance.now();
    // 10 at once use the bucket; 5 more need half a second.
    const answers = await Promise.all(Array.from({ length: 15 }, () => ask(e.port, GET)));
    const ms = performance.now() - t0;
    for (const a of answers) assert.match(a.text, /^HTTP\/1\.1 200 /);
    assert.ok(ms >= 400, `15 answered in ${ms} ms`);
  });
});

Deno.test("the default limits", () => {
  assert.deepEqual(LIMITS, {
    maxConnections: 4,
    acceptsPerSecond: 200,
    maxRequestBytes: 4096,
    readPauseMs: 20,
    deadlineMs: 5000,
  });
});
