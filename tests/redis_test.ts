/**
 * src/store/redis.ts: the RESP2 encoder and parser as tables (no server),
 * then the store against a real redis-server that this test starts on a free
 * loopback port, and against fake servers (plain TCP listeners) that never
 * answer, answer garbage or hang up. Every wait has a deadline; nothing
 * sleeps to synchronise. redis-cli is the independent witness of what the
 * store wrote.
 */
import assert from "node:assert/strict";
import {
  encodeCommand,
  KEY_PREFIX,
  openRedis,
  ProtocolError,
  type Reply,
  ReplyParser,
} from "../src/store/redis.ts";
import {
  type Change,
  type ClientRecord,
  parseRecord,
  type Store,
  StoreError,
} from "../src/store/store.ts";
import { parseStoreUrl } from "../src/store/url.ts";

/** The longest any single step of the harness may take before the test gives up. */
const HARNESS_MS = 10_000;
/** How late past its timeout a failing operation may settle (timer and scheduling slack). */
const SLACK_MS = 150;

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytes = (s: string) => new TextEncoder().encode(s);

// ---------------------------------------------------------------------------
// RESP2, pure.

Deno.test("encodeCommand() writes a command as a RESP2 array of bulk strings", async (t) => {
  const rows: Array<[string[], string]> = [
    [["PING"], "*1\r\n$4\r\nPING\r\n"],
    [["SET", "k", "v"], "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"],
    [["GET", ""], "*2\r\n$3\r\nGET\r\n$0\r\n\r\n"],
    [[], "*0\r\n"],
    [["SET", "k", "a\r\nb"], "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n"],
    [["SET", "k", "é"], "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\né\r\n"], // length in bytes
  ];
  for (const [args, want] of rows) {
    await t.step(JSON.stringify(args), () => {
      assert.equal(text(encodeCommand(args)), want);
    });
  }
});

const simple = (value: string): Reply => ({ type: "simple", value });
const error = (value: string): Reply => ({ type: "error", value });
const integer = (value: number): Reply => ({ type: "integer", value });
const bulk = (value: string | null): Reply => ({ type: "bulk", value });
const array = (value: Reply[] | null): Reply => ({ type: "array", value });

/** Every reply type, and the bytes of each. */
const REPLIES: Array<[string, string, Reply]> = [
  ["simple string", "+OK\r\n", simple("OK")],
  ["empty simple string", "+\r\n", simple("")],
  ["error", "-ERR unknown command 'FOO'\r\n", error("ERR unknown command 'FOO'")],
  ["integer", ":1000\r\n", integer(1000)],
  ["zero", ":0\r\n", integer(0)],
  ["negative integer", ":-12\r\n", integer(-12)],
  ["bulk string", "$5\r\nhello\r\n", bulk("hello")],
  ["empty bulk string", "$0\r\n\r\n", bulk("")],
  ["bulk string with CRLF inside", "$4\r\na\r\nb\r\n", bulk("a\r\nb")],
  ["bulk string in UTF-8", "$2\r\né\r\n", bulk("é")],
  ["null bulk string", "$-1\r\n", bulk(null)],
  ["empty array", "*0\r\n", array([])],
  ["null array (EXEC after a conflict)", "*-1\r\n", array(null)],
  [
    "array of mixed replies",
    "*3\r\n$1\r\na\r\n:1\r\n$-1\r\n",
    array([bulk("a"), integer(1), bulk(null)]),
  ],
  [
    "nested arrays (SCAN)",
    "*2\r\n$1\r\n0\r\n*2\r\n$4\r\nk:10\r\n$3\r\nk:2\r\n",
    array([bulk("0"), array([bulk("k:10"), bulk("k:2")])]),
  ],
  [
    "array holding an error (EXEC)",
    "*2\r\n+OK\r\n-ERR bad\r\n",
    array([simple("OK"), error("ERR bad")]),
  ],
  ["array holding a null array", "*2\r\n*-1\r\n*0\r\n", array([array(null), array([])])],
];

/** All the replies `stream` holds, fed to one parser in `chunks`. */
function parseChunks(chunks: Uint8Array[]): Reply[] {
  const parser = new ReplyParser();
  const out: Reply[] = [];
  for (const chunk of chunks) {
    parser.push(chunk);
    for (let r = parser.next(); r !== undefined; r = parser.next()) out.push(r);
  }
  assert.equal(parser.pending, 0, "bytes left over");
  return out;
}

Deno.test("ReplyParser reads every RESP2 reply type", async (t) => {
  for (const [name, wire, want] of REPLIES) {
    await t.step(`${name}: ${JSON.stringify(wire)}`, () => {
      assert.deepEqual(parseChunks([bytes(wire)]), [want]);
    });
  }
  await t.step("several replies in one chunk (a pipeline)", () => {
    assert.deepEqual(parseChunks([bytes("+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n")]), [
      simple("OK"),
      simple("QUEUED"),
      array([simple("OK")]),
    ]);
  });
});

Deno.test("ReplyParser waits for the rest of a reply split at any byte", async (t) => {
  const stream = bytes(REPLIES.map(([, wire]) => wire).join(""));
  const want = REPLIES.map(([, , reply]) => reply);
  await t.step("split in two at every byte", () => {
    for (let i = 0; i <= stream.length; i++) {
      assert.deepEqual(parseChunks([stream.slice(0, i), stream.slice(i)]), want, `split at ${i}`);
    }
  });
  await t.step("one byte at a time", () => {
    assert.deepEqual(parseChunks([...stream].map((b) => Uint8Array.of(b))), want);
  });
  await t.step("an incomplete reply is not a reply yet", () => {
    const parser = new ReplyParser();
    parser.push(bytes("*2\r\n$5\r\nhel"));
    assert.equal(parser.next(), undefined);
    assert.equal(parser.pending, 11);
    parser.push(bytes("lo\r\n:7\r\n"));
    assert.deepEqual(parser.next(), array([bulk("hello"), integer(7)]));
    assert.equal(parser.next(), undefined);
  });
  await t.step("a reused read buffer does not change what was pushed", () => {
    const parser = new ReplyParser();
    const chunk = bytes("$3\r\nab");
    parser.push(chunk);
    chunk.fill(0x21);
    parser.push(bytes("c\r\n"));
    assert.deepEqual(parser.next(), bulk("abc"));
  });
});

Deno.test("ReplyParser rejects bytes that are not RESP2", async (t) => {
  const rows: Array<[string, string]> = [
    ["an HTTP reply", "HTTP/1.1 400 Bad Request\r\n"],
    ["an unknown type byte", "?1\r\n"],
    ["a RESP3 map", "%1\r\n+a\r\n+b\r\n"],
    ["a RESP3 null", "_\r\n"],
    ["a bad integer", ":12a\r\n"],
    ["an empty integer", ":\r\n"],
    ["a bulk length below -1", "$-2\r\n"],
    ["a bulk length that is not a number", "$x\r\n"],
    ["a bulk length with a leading zero", "$03\r\nabc\r\n"],
    ["a bulk string longer than its length", "$3\r\nabcd\r\n"],
    ["a bulk string longer than Redis allows", "$999999999\r\n"],
    ["an array length below -1", "*-5\r\n"],
    ["CR without LF", "+OK\rX"],
    ["LF without CR", "+O\nK\r\n"],
    ["arrays nested too deep", "*1\r\n".repeat(20)],
    ["a line with no end", "+" + "a".repeat(64 * 1024)],
  ];
  for (const [name, wire] of rows) {
    await t.step(name, () => {
      const parser = new ReplyParser();
      parser.push(bytes(wire));
      assert.throws(() => parser.next(), ProtocolError);
    });
  }
});

const RECORD: ClientRecord = { strikes: 2, boxes: 1, boxUntil: 5, arrivals: [1, 2], live: [] };

Deno.test("parseRecord() takes a stored value that is not a record for no record", async (t) => {
  const rows: Array<[string, ClientRecord | undefined]> = [
    [JSON.stringify(RECORD), RECORD],
    ["not json", undefined],
    ['{"strikes":1', undefined],
    ["42", undefined],
    ["null", undefined],
    ["[]", undefined],
    ["{}", undefined],
    ['{"strikes":"1","boxes":0,"arrivals":[],"live":[]}', undefined],
    ['{"strikes":1,"boxes":0,"arrivals":{},"live":[]}', undefined],
    // Every field is checked: what a damaged record would break later is no record now.
    ['{"strikes":1,"boxes":0,"arrivals":["1"],"live":[]}', undefined],
    ['{"strikes":1,"boxes":0,"arrivals":[],"live":[null]}', undefined],
    [
      '{"strikes":1,"boxes":0,"arrivals":[],"live":[{"host":"mx1","pid":"7","start":"1","at":1}]}',
      undefined,
    ],
    ['{"strikes":1,"boxes":0,"lastPassAt":"yesterday","arrivals":[],"live":[]}', undefined],
    ['{"strikes":1,"boxes":0,"boxUntil":null,"arrivals":[],"live":[]}', undefined],
    ['{"strikes":1e999,"boxes":0,"arrivals":[],"live":[]}', undefined],
    [
      '{"strikes":0,"boxes":0,"lastPassAt":9,"arrivals":[3],"live":[{"host":"mx1","pid":7,"start":"1","at":1}]}',
      {
        strikes: 0,
        boxes: 0,
        lastPassAt: 9,
        arrivals: [3],
        live: [{ host: "mx1", pid: 7, start: "1", at: 1 }],
      },
    ],
  ];
  for (const [json, want] of rows) {
    await t.step(json, () => {
      assert.deepEqual(parseRecord(json), want);
    });
  }
});

// ---------------------------------------------------------------------------
// The harness: deadlines, a real redis-server, fake servers.

/** Rejects if `promise` has not settled within `ms`. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The store's deadline function, on setTimeout, with every timer cleared at the end of a test. */
class Deadlines {
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly deadline = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const id = setTimeout(() => {
        this.#timers.delete(id);
        resolve();
      }, ms);
      this.#timers.add(id);
    });
  clear(): void {
    for (const id of this.#timers) clearTimeout(id);
    this.#timers.clear();
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (bound, read, released). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A redis-server of this test's own. */
class RedisServer {
  readonly port: number;
  readonly #process: Deno.ChildProcess;
  readonly #output: Promise<string>;
  readonly #password: string | undefined;

  private constructor(
    port: number,
    process: Deno.ChildProcess,
    output: Promise<string>,
    password?: string,
  ) {
    this.port = port;
    this.#process = process;
    this.#output = output;
    this.#password = password;
  }

  /** Starts redis-server on a free loopback port and returns once it answers PING. */
  static async start(password?: string): Promise<RedisServer> {
    const port = freePort();
    const args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
    ];
    if (password !== undefined) args.push("--requirepass", password);
    args.push("--logfile", ""); // to stdout, where this harness waits for "Ready"
    const process = new Deno.Command("redis-server", { args, stdout: "piped", stderr: "null" })
      .spawn();
    let ready!: () => void;
    const isReady = new Promise<void>((resolve) => ready = resolve);
    const output = (async () => {
      let seen = "";
      for await (const chunk of process.stdout.pipeThrough(new TextDecoderStream())) {
        seen += chunk;
        if (seen.includes("Ready to accept connections")) ready();
      }
      return seen;
    })();
    const server = new RedisServer(port, process, output, password);
    try {
      await within(HARNESS_MS, "redis-server start", Promise.race([isReady, output]));
      assert.equal(await server.cli("PING"), "PONG");
    } catch (e) {
      await server.stop();
      throw new Error(`redis-server did not start: ${e}\n${await output}`);
    }
    return server;
  }

  /** The URL of database `db`. */
  url(db = 0): string {
    const auth = this.#password === undefined ? "" : `:${this.#password}@`;
    return `redis://${auth}127.0.0.1:${this.port}/${db}`;
  }

  /** redis-cli's raw answer to one command, on database `db`. */
  async cli(...args: string[]): Promise<string> {
    return await this.cliDb(0, ...args);
  }

  async cliDb(db: number, ...args: string[]): Promise<string> {
    const auth = this.#password === undefined ? [] : ["--no-auth-warning", "-a", this.#password];
    const out = await within(
      HARNESS_MS,
      `redis-cli ${args[0]}`,
      new Deno.Command("redis-cli", {
        args: ["-p", String(this.port), ...auth, "-n", String(db), "--raw", ...args],
        stdin: "null",
      }).output(),
    );
    assert.equal(out.code, 0, text(out.stderr));
    return text(out.stdout).replace(/\n$/, "");
  }

  signal(name: Deno.Signal): void {
    this.#process.kill(name);
  }

  /** Kills the server (if alive) and waits for it. */
  async stop(): Promise<void> {
    try {
      this.#process.kill("SIGKILL");
    } catch {
      // already gone
    }
    await within(HARNESS_MS, "redis-server exit", this.#process.status);
    await within(HARNESS_MS, "redis-server output", this.#output);
  }
}

/** A plain TCP listener that hands each connection to `serve`, and closes them all at the end. */
class FakeServer {
  readonly port: number;
  readonly hostname: string;
  readonly #listener: Deno.Listener;
  readonly #conns = new Set<Deno.Conn>();
  readonly #serving: Promise<unknown>[] = [];
  readonly #accepting: Promise<void>;

  constructor(serve: (conn: Deno.Conn) => Promise<unknown>, hostname = "127.0.0.1") {
    const listener = Deno.listen({ hostname, port: 0 });
    this.#listener = listener;
    this.port = (listener.addr as Deno.NetAddr).port;
    this.hostname = hostname;
    this.#accepting = (async () => {
      for await (const conn of listener) {
        this.#conns.add(conn);
        this.#serving.push(serve(conn).catch(() => {}));
      }
    })().catch(() => {});
  }

  url(): string {
    const host = this.hostname.includes(":") ? `[${this.hostname}]` : this.hostname;
    return `redis://${host}:${this.port}`;
  }

  async close(): Promise<void> {
    this.#listener.close();
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // closed by its handler
      }
    }
    await within(
      HARNESS_MS,
      "fake server shutdown",
      Promise.all([this.#accepting, ...this.#serving]),
    );
  }
}

/** Reads until the peer closes; resolves true then (false if `conn` is closed here first). */
async function peerCloses(conn: Deno.Conn): Promise<boolean> {
  const buf = new Uint8Array(1024);
  try {
    while ((await conn.read(buf)) !== null) { /* discard the commands */ }
    return true;
  } catch {
    return false;
  }
}

/** A server that answers the first bytes it reads with `reply`, then hangs up. */
function answering(reply: string): (conn: Deno.Conn) => Promise<void> {
  return async (conn) => {
    await conn.read(new Uint8Array(1024));
    await conn.write(bytes(reply));
    conn.close();
  };
}

/** A change that counts in `strikes`, the way src/history.ts will count strikes. */
const increment = (expiresAt = Date.now() + 60_000): Change => (old) => ({
  record: { strikes: (old?.strikes ?? 0) + 1, boxes: 0, arrivals: [], live: [] },
  expiresAt,
});

/** Fails unless `promise` rejects with a StoreError matching `why` within `ms` (+ slack). */
async function rejectsWithin(ms: number, why: RegExp, promise: Promise<unknown>): Promise<void> {
  const t0 = performance.now();
  await within(
    ms + SLACK_MS,
    "the failing operation",
    assert.rejects(promise, (e) => {
      assert.ok(e instanceof StoreError, `not a StoreError: ${e}`);
      assert.match(e.message, why);
      return true;
    }),
  );
  assert.ok(performance.now() - t0 <= ms + SLACK_MS, `took ${performance.now() - t0} ms`);
}

/** openRedis on the target of `url`, as openStore opens it. */
function openUrl(
  url: string,
  deadline: (ms: number) => Promise<void>,
  timeoutMs: number,
): Promise<Store> {
  const store = parseStoreUrl(url, "the test's URL");
  if (store.kind !== "redis") throw new Error(`not a Redis URL: ${url}`);
  return openRedis(store.target, deadline, timeoutMs);
}

// ---------------------------------------------------------------------------
// A real redis-server.

Deno.test("openRedis() keeps records in a real redis-server", async (t) => {
  const server = await RedisServer.start();
  const timers = new Deadlines();
  const open = (timeoutMs = 5_000) => openUrl(server.url(), timers.deadline, timeoutMs);
  const stores: Store[] = [];
  try {
    const store = await open();
    stores.push(store);

    await t.step("update() creates and changes a record, get() reads it back", async () => {
      assert.deepEqual(await store.update("192.0.2.1", increment()), {
        strikes: 1,
        boxes: 0,
        arrivals: [],
        live: [],
      });
      assert.equal((await store.update("192.0.2.1", increment()))?.strikes, 2);
      assert.equal((await store.get("192.0.2.1"))?.strikes, 2);
      assert.equal(await store.get("192.0.2.99"), undefined);
    });

    await t.step("update() deletes the record when the change returns undefined", async () => {
      assert.equal(await store.update("192.0.2.1", () => undefined), undefined);
      assert.equal(await store.get("192.0.2.1"), undefined);
      assert.equal(await server.cli("EXISTS", `${KEY_PREFIX}192.0.2.1`), "0");
    });

    await t.step(
      "a record is JSON under smtp-delay:KEY with its absolute expiry (PXAT)",
      async () => {
        const expiresAt = Date.now() + 3_600_000;
        await store.update("2001:db8:1:2::/64", () => ({ record: RECORD, expiresAt }));
        const key = `${KEY_PREFIX}2001:db8:1:2::/64`;
        assert.deepEqual(JSON.parse(await server.cli("GET", key)), RECORD);
        assert.equal(await server.cli("PEXPIRETIME", key), String(expiresAt));
      },
    );

    await t.step("a record whose expiry has passed is gone", async () => {
      await store.update("192.0.2.2", increment(Date.now() - 1_000));
      assert.equal(await store.get("192.0.2.2"), undefined);
      assert.equal(await server.cli("EXISTS", `${KEY_PREFIX}192.0.2.2`), "0");
      assert.equal((await store.update("192.0.2.2", increment()))?.strikes, 1, "counted afresh");
    });

    await t.step("delete() says whether there was a record", async () => {
      await store.update("192.0.2.3", increment());
      assert.equal(await store.delete("192.0.2.3"), true);
      assert.equal(await store.delete("192.0.2.3"), false);
      assert.equal(await store.get("192.0.2.3"), undefined);
    });

    await t.step(
      "a stored value that is not a record reads as none; update overwrites it",
      async () => {
        for (
          const [key, write] of [
            ["192.0.2.4", ["SET", `${KEY_PREFIX}192.0.2.4`, "{not json"]],
            ["192.0.2.5", ["SET", `${KEY_PREFIX}192.0.2.5`, "[1,2]"]],
            ["192.0.2.6", ["RPUSH", `${KEY_PREFIX}192.0.2.6`, "a list"]], // GET says WRONGTYPE
          ] as const
        ) {
          await server.cli(...write);
          assert.equal(await store.get(key), undefined, key);
          assert.equal((await store.update(key, increment()))?.strikes, 1, key);
          assert.equal((await store.get(key))?.strikes, 1, key);
        }
      },
    );

    await t.step("expire() leaves expiry to Redis and returns 0", async () => {
      assert.equal(await store.expire(Date.now() + 86_400_000), 0);
      assert.equal((await store.get("192.0.2.4"))?.strikes, 1);
    });

    await t.step("list() returns every record under the prefix, across SCAN pages", async () => {
      assert.equal(await server.cli("FLUSHDB"), "OK");
      const mset = ["MSET", "other:192.0.2.1", JSON.stringify(RECORD), `${KEY_PREFIX}junk`, "{"];
      const want: Array<[string, ClientRecord]> = [];
      for (let i = 0; i < 2_500; i++) {
        const key = `10.0.${i >> 8}.${i & 255}`;
        const record = { ...RECORD, strikes: i };
        mset.push(KEY_PREFIX + key, JSON.stringify(record));
        want.push([key, record]);
      }
      assert.equal(await server.cli(...mset), "OK");
      const got = await store.list();
      assert.equal(got.length, 2_500);
      assert.deepEqual(got, want.sort(([a], [b]) => a < b ? -1 : 1));
    });

    await t.step("list() of an empty store is empty", async () => {
      assert.equal(await server.cli("FLUSHDB"), "OK");
      assert.deepEqual(await store.list(), []);
    });

    await t.step(
      "two stores (two connections, as two hosts) lose no count in 200 concurrent increments",
      async () => {
        const other = await open();
        stores.push(other);
        const results = await within(
          HARNESS_MS,
          "200 increments",
          Promise.all(
            Array.from({ length: 200 }, (_, i) => (i % 2 ? store : other).update("c", increment())),
          ),
        );
        assert.equal((await store.get("c"))?.strikes, 200);
        const seen = results.map((r) => r?.strikes).sort((a, b) => a! - b!);
        assert.deepEqual(
          seen,
          Array.from({ length: 200 }, (_, i) => i + 1),
          "each saw its own count",
        );
      },
    );

    await t.step(
      "a change that throws rejects the update with its own error and writes nothing",
      async () => {
        const bug = new Error("a bug in the change");
        await assert.rejects(
          store.update("c", () => {
            throw bug;
          }),
          (e) => e === bug,
        );
        assert.equal((await store.get("c"))?.strikes, 200, "the next operation works");
      },
    );

    await t.step(
      "an operation on a frozen server times out, and the next one reconnects",
      async () => {
        const quick = await open(150);
        stores.push(quick);
        assert.equal((await quick.get("c"))?.strikes, 200);
        server.signal("SIGSTOP");
        try {
          await rejectsWithin(
            150,
            /^redis 127\.0\.0\.1:\d+: timed out after 150 ms$/,
            quick.update("c", increment()),
          );
          await rejectsWithin(150, /timed out after 150 ms/, quick.get("c"));
        } finally {
          server.signal("SIGCONT");
        }
        assert.equal((await quick.get("c"))?.strikes, 200, "the timed-out update wrote nothing");
      },
    );

    await t.step(
      "a connection the server closed while idle is replaced, without an error",
      async () => {
        const idle = await open();
        stores.push(idle);
        assert.equal((await idle.get("c"))?.strikes, 200);
        for (const operation of [() => idle.get("c"), () => idle.update("c", increment())]) {
          assert.notEqual(await server.cli("CLIENT", "KILL", "TYPE", "normal"), "0");
          await operation();
        }
        assert.equal((await idle.get("c"))?.strikes, 201);
      },
    );

    await t.step("close() ends the store: later operations fail with StoreError", async () => {
      const closing = await open();
      closing.close();
      await rejectsWithin(0, /store closed/, closing.get("c"));
      await rejectsWithin(0, /store closed/, closing.update("c", increment()));
    });
  } finally {
    for (const store of stores) store.close();
    timers.clear();
    await server.stop();
  }
});

Deno.test("openRedis() authenticates and selects the database of the URL", async (t) => {
  const server = await RedisServer.start("s3cret");
  const timers = new Deadlines();
  const port = server.port;
  const stores: Store[] = [];
  const open = async (url: string) => {
    const store = await openUrl(url, timers.deadline, 5_000);
    stores.push(store);
    return store;
  };
  try {
    await t.step("AUTH with the password and SELECT the database", async () => {
      const store = await open(`redis://:s3cret@127.0.0.1:${port}/2`);
      await store.update("192.0.2.7", increment());
      assert.equal(JSON.parse(await server.cliDb(2, "GET", `${KEY_PREFIX}192.0.2.7`)).strikes, 1);
      assert.equal(await server.cliDb(0, "EXISTS", `${KEY_PREFIX}192.0.2.7`), "0");
    });

    await t.step("AUTH with an ACL user and password", async () => {
      const store = await open(`redis://default:s3cret@127.0.0.1:${port}/3`);
      await store.update("192.0.2.8", increment());
      assert.equal(await server.cliDb(3, "EXISTS", `${KEY_PREFIX}192.0.2.8`), "1");
    });

    await t.step("a wrong password fails the connection, without quoting it", async () => {
      await assert.rejects(
        openUrl(`redis://:not-it@127.0.0.1:${port}`, timers.deadline, 5_000),
        (e) =>
          e instanceof StoreError && /^redis 127\.0\.0\.1:\d+: WRONGPASS/.test(e.message) &&
          !e.message.includes("not-it"),
      );
    });

    await t.step(
      "no password: the server's NOAUTH error comes with the first operation",
      async () => {
        const store = await open(`redis://127.0.0.1:${port}`);
        await rejectsWithin(5_000, /: NOAUTH /, store.get("192.0.2.7"));
      },
    );

    await t.step("a database the server does not have fails the connection", async () => {
      await assert.rejects(
        openUrl(`redis://:s3cret@127.0.0.1:${port}/99`, timers.deadline, 5_000),
        (e) => e instanceof StoreError && /DB index is out of range/.test(e.message),
      );
    });
  } finally {
    for (const store of stores) store.close();
    timers.clear();
    await server.stop();
  }
});

Deno.test("killing redis-server in the middle of use fails operations with StoreError, no hang", async () => {
  const server = await RedisServer.start();
  const timers = new Deadlines();
  const store = await openUrl(server.url(), timers.deadline, 2_000);
  try {
    let done = 0;
    let killed: Promise<void> | undefined;
    const updates = Array.from({ length: 200 }, () =>
      store.update("k", increment()).then((r) => {
        if (++done === 20) killed = server.stop();
        return r;
      }));
    const settled = await within(HARNESS_MS, "updates after the kill", Promise.allSettled(updates));
    await killed;
    const failed = settled.filter((s) => s.status === "rejected");
    assert.ok(done >= 20 && failed.length > 0, `${done} done, ${failed.length} failed`);
    for (const f of failed) assert.ok(f.reason instanceof StoreError, String(f.reason));
    await rejectsWithin(2_000, /connection refused/, store.get("k"));
  } finally {
    store.close();
    timers.clear();
    await server.stop();
  }
});

// ---------------------------------------------------------------------------
// Servers that fail.

Deno.test("openRedis() fails with a StoreError within the timeout when the server", async (t) => {
  const timers = new Deadlines();
  const timeoutMs = 200;
  const open = (url: string) => openUrl(url, timers.deadline, timeoutMs);
  try {
    await t.step("is not running (connection refused)", async () => {
      const port = freePort();
      await rejectsWithin(
        timeoutMs,
        new RegExp(`^redis 127\\.0\\.0\\.1:${port}: connection refused$`),
        open(`redis://127.0.0.1:${port}`),
      );
    });

    await t.step("accepts but never answers, and the connection is closed after", async () => {
      let closedByClient: Promise<boolean> | undefined;
      const fake = new FakeServer((conn) => closedByClient = peerCloses(conn));
      try {
        const store = await open(fake.url());
        const t0 = performance.now();
        await rejectsWithin(
          timeoutMs,
          new RegExp(`^redis 127\\.0\\.0\\.1:${fake.port}: timed out after 200 ms$`),
          store.update("192.0.2.9", increment()),
        );
        assert.ok(performance.now() - t0 >= timeoutMs - 5, "not before the timeout");
        assert.equal(await within(HARNESS_MS, "the close", closedByClient!), true);
        store.close();
      } finally {
        await fake.close();
      }
    });

    await t.step("never answers, and the store is closed meanwhile: at once", async () => {
      const fake = new FakeServer(peerCloses);
      try {
        const store = await open(fake.url());
        const pending = store.get("192.0.2.9");
        store.close();
        await rejectsWithin(0, /: store closed$/, pending);
      } finally {
        await fake.close();
      }
    });

    await t.step("accepts but never answers AUTH", async () => {
      let closedByClient: Promise<boolean> | undefined;
      const fake = new FakeServer((conn) => closedByClient = peerCloses(conn));
      try {
        await rejectsWithin(
          timeoutMs,
          /timed out after 200 ms$/,
          open(`redis://:pw@127.0.0.1:${fake.port}`),
        );
        assert.equal(await within(HARNESS_MS, "the close", closedByClient!), true);
      } finally {
        await fake.close();
      }
    });

    const replies: Array<[string, string, RegExp]> = [
      [
        "hangs up in the middle of a reply",
        "$10\r\nabc",
        /: connection closed by the server in the middle of a reply$/,
      ],
      ["hangs up before answering", "", /: connection closed by the server$/],
      ["answers garbage", "HTTP/1.1 400 Bad Request\r\n", /: unparsable reply: unexpected byte 72/],
      ["answers a reply of the wrong type", ":1\r\n", /: unexpected reply /],
      ["answers more than asked", "$-1\r\n+OK\r\n", /: more bytes than replies$/],
      ["answers an error", "-ERR boom\r\n", /^redis 127\.0\.0\.1:\d+: ERR boom$/],
    ];
    for (const [name, reply, why] of replies) {
      await t.step(name, async () => {
        const fake = new FakeServer(answering(reply));
        try {
          const store = await open(fake.url());
          await rejectsWithin(timeoutMs, why, store.get("192.0.2.10"));
          store.close();
        } finally {
          await fake.close();
        }
      });
    }

    await t.step("(for contrast) answers nil on IPv6 loopback: no record, no error", async () => {
      const fake = new FakeServer(answering("$-1\r\n"), "::1");
      try {
        const store = await open(fake.url());
        assert.equal(await store.get("192.0.2.11"), undefined);
        store.close();
      } finally {
        await fake.close();
      }
    });
  } finally {
    timers.clear();
  }
});
