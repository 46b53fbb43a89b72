/**
 * The Store contract, run against every store of this process (memory and
 * SQLite), then what only SQLite has: a file, its directory, damage, other
 * processes and their locks. The Redis store has its own test (redis_test.ts).
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { EMPTY } from "../src/history.ts";
import { memoryStore } from "./fixtures/memory_store.ts";
import { openStore } from "../src/store/open.ts";
import { openSqlite } from "../src/store/sqlite.ts";
import {
  type Change,
  type ClientRecord,
  parseRecord,
  type Store,
  StoreError,
} from "../src/store/store.ts";
import { parseStoreUrl } from "../src/store/url.ts";
import { assertThrowsWith } from "./fixtures/assert.ts";
import { withTempDir } from "./fixtures/temp_dir.ts";

const T0 = Date.UTC(2026, 10, 24, 12, 0, 0);
const ROOT = new URL("../", import.meta.url).pathname;

/** A clock the test moves by hand. */
class Clock {
  now = T0;
  readonly read = () => this.now;
}

/** A record with everything a record can hold, so a store must keep every field. */
const FULL: ClientRecord = {
  lastPassAt: T0 - 3_600_000,
  strikes: 2,
  lastStrikeAt: T0 - 60_000,
  boxes: 1,
  boxUntil: T0 + 600_000,
  arrivals: [T0 - 2, T0 - 1, T0],
  live: [
    { host: "mx1.example.net", pid: 4242, start: "123456", at: T0 - 1 },
    { host: "mx2", pid: 1, start: "", at: T0 },
  ],
};

/** A change that writes `record`, expiring at `expiresAt`, and notes what it was given. */
function put(
  record: ClientRecord,
  expiresAt: number,
  seen?: Array<ClientRecord | undefined>,
): Change {
  return (old) => {
    seen?.push(old === undefined ? undefined : structuredClone(old));
    return { record, expiresAt };
  };
}

/** A change that adds one to `strikes`: a counter, for lost-update tests. */
const increment: Change = (old) => ({
  record: { ...(old ?? EMPTY), strikes: (old?.strikes ?? 0) + 1 },
  expiresAt: 8_000_000_000_000,
});

const sorted = (entries: Array<[string, ClientRecord]>) =>
  [...entries].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);

interface Subject {
  readonly name: string;
  /** A new, empty store on `clock`, and how to throw it away. */
  open(clock: Clock): Promise<{ store: Store; done(): Promise<void> }>;
}

const SUBJECTS: Subject[] = [
  {
    name: "memoryStore()",
    open: (clock) => Promise.resolve({ store: memoryStore(clock.read), done: async () => {} }),
  },
  {
    name: "openSqlite()",
    async open(clock) {
      const dir = await Deno.makeTempDir({ prefix: "smtp-delay-store-" });
      const store = openSqlite(`${dir}/state.db`, 2_000, clock.read);
      return {
        store,
        async done() {
          store.close();
          await Deno.remove(dir, { recursive: true });
        },
      };
    },
  },
];

/** Runs `fn` on a fresh store of `subject`. */
async function using(
  subject: Subject,
  fn: (store: Store, clock: Clock) => Promise<void>,
): Promise<void> {
  const clock = new Clock();
  const { store, done } = await subject.open(clock);
  try {
    await fn(store, clock);
  } finally {
    await done();
  }
}

for (const subject of SUBJECTS) {
  const { name } = subject;

  Deno.test(`${name} update() creates a record, and get() and list() return it`, async () => {
    await using(subject, async (store) => {
      const seen: Array<ClientRecord | undefined> = [];
      const got = await store.update("192.0.2.1", put(FULL, T0 + 1000, seen));
      assert.deepEqual(seen, [undefined], "the change was not given undefined for a new key");
      assert.deepEqual(got, FULL);
      assert.deepEqual(await store.get("192.0.2.1"), FULL);
      assert.deepEqual(await store.list(), [["192.0.2.1", FULL]]);
    });
  });

  Deno.test(`${name} update() gives the change the stored record and keeps what it returns`, async () => {
    await using(subject, async (store) => {
      await store.update("k", put(FULL, T0 + 1000));
      const seen: Array<ClientRecord | undefined> = [];
      const next: ClientRecord = { ...EMPTY, strikes: 7 };
      assert.deepEqual(await store.update("k", put(next, T0 + 2000, seen)), next);
      assert.deepEqual(seen, [FULL]);
      assert.deepEqual(await store.get("k"), next);
    });
  });

  Deno.test(`${name} keeps keys apart`, async () => {
    await using(subject, async (store) => {
      const keys = ["192.0.2.1", "192.0.2.10", "2001:db8:0:1::/64", 'it\'s "quoted"', "ключ"];
      for (const [i, key] of keys.entries()) {
        await store.update(key, put({ ...EMPTY, strikes: i }, T0 + 1000));
      }
      for (const [i, key] of keys.entries()) {
        assert.equal((await store.get(key))?.strikes, i, `strikes of ${key}`);
      }
      assert.equal(await store.get("192.0.2"), undefined);
      assert.deepEqual(
        sorted(await store.list()),
        sorted(keys.map((key, i) => [key, { ...EMPTY, strikes: i }])),
      );
    });
  });

  Deno.test(`${name} get() and delete() of a key never written`, async () => {
    await using(subject, async (store) => {
      assert.equal(await store.get("192.0.2.1"), undefined);
      assert.equal(await store.delete("192.0.2.1"), false);
      assert.deepEqual(await store.list(), []);
      assert.equal(await store.expire(T0 + 1e12), 0);
    });
  });

  Deno.test(`${name} hides an expired record from get(), list() and update()`, async (t) => {
    await using(subject, async (store, clock) => {
      await store.update("old", put(FULL, T0 + 1000));
      await store.update("new", put(EMPTY, T0 + 5000));
      await t.step("visible until 1 ms before its expiry", async () => {
        clock.now = T0 + 999;
        assert.deepEqual(await store.get("old"), FULL);
        assert.deepEqual(sorted(await store.list()), [["new", EMPTY], ["old", FULL]]);
      });
      await t.step("invisible at its expiry", async () => {
        clock.now = T0 + 1000;
        assert.equal(await store.get("old"), undefined);
        assert.deepEqual(await store.list(), [["new", EMPTY]]);
      });
      await t.step("a change sees no record, and its record replaces the old one", async () => {
        const seen: Array<ClientRecord | undefined> = [];
        const next: ClientRecord = { ...EMPTY, boxes: 1 };
        await store.update("old", put(next, T0 + 9000, seen));
        assert.deepEqual(seen, [undefined]);
        assert.deepEqual(await store.get("old"), next);
      });
    });
  });

  Deno.test(`${name} delete() says whether a live record was there`, async (t) => {
    await using(subject, async (store, clock) => {
      await store.update("a", put(FULL, T0 + 1000));
      await store.update("b", put(FULL, T0 + 1000));
      await store.update("gone", put(FULL, T0 + 10));
      await t.step("a live record: true, and it is gone", async () => {
        assert.equal(await store.delete("a"), true);
        assert.equal(await store.get("a"), undefined);
        assert.deepEqual(await store.list(), [["b", FULL], ["gone", FULL]]);
      });
      await t.step("again: false", async () => {
        assert.equal(await store.delete("a"), false);
      });
      await t.step("an expired record: false", async () => {
        clock.now = T0 + 10;
        assert.equal(await store.delete("gone"), false);
      });
      await t.step("the other record is untouched", async () => {
        assert.deepEqual(await store.get("b"), FULL);
      });
    });
  });

  Deno.test(`${name} update() deletes the record when the change returns undefined`, async (t) => {
    await using(subject, async (store) => {
      await store.update("k", put(FULL, T0 + 1000));
      await store.update("other", put(FULL, T0 + 1000));
      await t.step("an existing record", async () => {
        const seen: Array<ClientRecord | undefined> = [];
        const got = await store.update("k", (old) => (seen.push(old), undefined));
        assert.equal(got, undefined);
        assert.deepEqual(seen, [FULL]);
        assert.equal(await store.get("k"), undefined);
        assert.deepEqual(await store.list(), [["other", FULL]]);
        assert.equal(await store.delete("k"), false);
      });
      await t.step("a missing record: nothing written", async () => {
        assert.equal(await store.update("none", () => undefined), undefined);
        assert.deepEqual(await store.list(), [["other", FULL]]);
      });
    });
  });

  Deno.test(`${name} update() with a change that throws fails and leaves the record as it was`, async (t) => {
    await using(subject, async (store) => {
      await store.update("k", put(FULL, T0 + 1000));
      const boom: Change = () => {
        throw new Error("boom");
      };
      await t.step("an existing record", async () => {
        await assert.rejects(async () => await store.update("k", boom), /boom/);
        assert.deepEqual(await store.get("k"), FULL);
      });
      await t.step("a missing record stays missing", async () => {
        await assert.rejects(async () => await store.update("new", boom), /boom/);
        assert.equal(await store.get("new"), undefined);
      });
      await t.step("the store still works", async () => {
        assert.deepEqual(await store.update("k", put(EMPTY, T0 + 1000)), EMPTY);
        assert.deepEqual(await store.get("k"), EMPTY);
      });
    });
  });

  Deno.test(`${name} expire() deletes the records expired at the time given, and only those`, async (t) => {
    await using(subject, async (store) => {
      await store.update("a", put(FULL, T0 + 100));
      await store.update("b", put(FULL, T0 + 200));
      await store.update("c", put(FULL, T0 + 300));
      await t.step("before any expiry: 0", async () => {
        assert.equal(await store.expire(T0 + 99), 0);
        assert.equal((await store.list()).length, 3);
      });
      await t.step("at b's expiry: a and b", async () => {
        assert.equal(await store.expire(T0 + 200), 2);
        assert.equal(await store.get("a"), undefined);
        assert.equal(await store.get("b"), undefined);
        assert.deepEqual(await store.list(), [["c", FULL]]);
      });
      await t.step("again: none", async () => {
        assert.equal(await store.expire(T0 + 200), 0);
        assert.deepEqual(await store.get("c"), FULL);
      });
    });
  });

  Deno.test(`${name} counts without losing an update`, async () => {
    await using(subject, async (store) => {
      await Promise.all(Array.from({ length: 100 }, () => store.update("k", increment)));
      assert.equal((await store.get("k"))?.strikes, 100);
    });
  });
}

// A change that throws rejects the promise, as every store does: it never escapes synchronously.
Deno.test({
  name: "memoryStore() update() rejects, not throws, when the change throws",
  fn() {
    const store = memoryStore(() => T0);
    let promise: Promise<unknown> | undefined;
    assert.doesNotThrow(() => {
      promise = store.update("k", () => {
        throw new Error("boom");
      });
    });
    return assert.rejects(promise!, /boom/);
  },
});

Deno.test("openSqlite() update() rejects, not throws, and says StoreError, when the change throws", async () => {
  const dir = await Deno.makeTempDir({ prefix: "smtp-delay-store-" });
  const store = openSqlite(`${dir}/state.db`, 200, () => T0);
  try {
    let promise: Promise<unknown> | undefined;
    assert.doesNotThrow(() => {
      promise = store.update("k", () => {
        throw new Error("boom");
      });
    });
    await assert.rejects(promise!, (e) => e instanceof StoreError && /boom/.test(e.message));
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Runs `fn`, which must throw a StoreError whose message contains every one of `parts`. */
function assertStoreError(fn: () => unknown, ...parts: string[]): void {
  assertThrowsWith(fn, StoreError, ...parts);
}

Deno.test("openSqlite() creates the file's directory on first use", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/var/lib/smtp-delay/state.db`;
    const store = openSqlite(path, 200, () => T0);
    try {
      assert.ok(Deno.statSync(`${dir}/var/lib/smtp-delay`).isDirectory);
      assert.ok(Deno.statSync(path).isFile, `${path} was not created`);
      await store.update("k", put(FULL, T0 + 1000));
    } finally {
      store.close();
    }
    const again = openSqlite(path, 200, () => T0);
    try {
      assert.deepEqual(await again.get("k"), FULL, "the record did not survive a reopen");
    } finally {
      again.close();
    }
  });
});

Deno.test("openSqlite() uses WAL mode, so that readers do not wait for writers", async () => {
  await withTempDir((dir) => {
    const store = openSqlite(`${dir}/state.db`, 200, () => T0);
    store.close();
    const db = new DatabaseSync(`${dir}/state.db`);
    try {
      const row = db.prepare("PRAGMA journal_mode").get() as { journal_mode: string };
      assert.equal(row.journal_mode, "wal");
    } finally {
      db.close();
    }
  });
});

Deno.test("openSqlite() fails with a StoreError naming the path when it cannot be opened", async (t) => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "a regular file\n");
    await Deno.mkdir(`${dir}/a-directory`);
    await Deno.writeFile(`${dir}/garbage.db`, new Uint8Array(8192).fill(0x5a));
    const rows: [string, string, string][] = [
      ["under a regular file", `${dir}/file/state.db`, "unable to create its directory"],
      ["deeper under a regular file", `${dir}/file/x/y/state.db`, "unable to create its directory"],
      ["a directory", `${dir}/a-directory`, "unable to open"],
      ["not a database", `${dir}/garbage.db`, "unable to open"],
    ];
    for (const [name, path, doing] of rows) {
      await t.step(name, () => {
        assertStoreError(() => openSqlite(path, 200, () => T0), `sqlite ${path}:`, doing);
      });
    }
  });
});

Deno.test({
  name: "openSqlite() fails with a StoreError naming the path when the directory is not writable",
  // root writes anywhere
  ignore: Deno.uid() === 0,
  fn: async () => {
    await withTempDir(async (dir) => {
      await Deno.mkdir(`${dir}/ro`, { mode: 0o555 });
      assertStoreError(() => openSqlite(`${dir}/ro/state.db`, 200, () => T0), `${dir}/ro/state.db`);
      assertStoreError(() => openSqlite(`${dir}/ro/sub/state.db`, 200, () => T0), `${dir}/ro`);
    });
  },
});

Deno.test("openSqlite() reads a damaged record as no record, and the next update overwrites it", async (t) => {
  const damages = [
    "{not json",
    "",
    "null",
    "42",
    '"text"',
    "[]",
    "{}",
    '{"arrivals":[]}',
    '{"live":[]}',
    '{"arrivals":{},"live":[]}',
  ];
  for (const damage of damages) {
    await t.step(JSON.stringify(damage), async () => {
      await withTempDir(async (dir) => {
        const path = `${dir}/state.db`;
        const store = openSqlite(path, 200, () => T0);
        try {
          await store.update("bad", put(FULL, T0 + 1000));
          await store.update("good", put(FULL, T0 + 1000));
          const db = new DatabaseSync(path);
          try {
            db.prepare("UPDATE records SET record = ? WHERE key = ?").run(damage, "bad");
          } finally {
            db.close();
          }
          assert.equal(await store.get("bad"), undefined);
          assert.deepEqual(await store.list(), [["good", FULL]]);
          assert.equal(await store.delete("bad"), false);
        } finally {
          store.close();
        }
        // delete() of a damaged record may remove it or not: write it damaged again.
        const db = new DatabaseSync(path);
        try {
          db.prepare("INSERT OR REPLACE INTO records (key, record, expires) VALUES (?, ?, ?)")
            .run("bad", damage, T0 + 1000);
        } finally {
          db.close();
        }
        const reopened = openSqlite(path, 200, () => T0);
        try {
          const seen: Array<ClientRecord | undefined> = [];
          await reopened.update("bad", put(EMPTY, T0 + 1000, seen));
          assert.deepEqual(seen, [undefined]);
          assert.deepEqual(await reopened.get("bad"), EMPTY);
        } finally {
          reopened.close();
        }
      });
    });
  }
});

Deno.test("openSqlite() handles on one file see each other's updates: 200 interleaved, none lost", async () => {
  await withTempDir(async (dir) => {
    const a = openSqlite(`${dir}/state.db`, 2_000);
    const b = openSqlite(`${dir}/state.db`, 2_000);
    try {
      await Promise.all(
        Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).update("192.0.2.1", increment)),
      );
      assert.equal((await a.get("192.0.2.1"))?.strikes, 200);
      assert.equal((await b.get("192.0.2.1"))?.strikes, 200);
    } finally {
      a.close();
      b.close();
    }
  });
});

Deno.test("openSqlite() in two processes at once: 2 x 200 updates of one counter, none lost", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/state.db`;
    openSqlite(path, 200).close(); // the schema, before the race
    const code = `
      import { openSqlite } from ${JSON.stringify(`file://${ROOT}src/store/sqlite.ts`)};
      const store = openSqlite(${JSON.stringify(path)}, 10000);
      const increment = (old) => ({
        record: { strikes: 0, boxes: 0, arrivals: [], live: [], ...old, strikes: (old?.strikes ?? 0) + 1 },
        expiresAt: 8e12,
      });
      for (let i = 0; i < 200; i++) await store.update("192.0.2.1", increment);
      store.close();
    `;
    const child = () =>
      new Deno.Command(Deno.execPath(), {
        args: ["eval", "--no-config", code],
        env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(60_000),
      }).output();
    const results = await Promise.all([child(), child()]);
    for (const r of results) {
      assert.equal(r.code, 0, `a child failed: ${new TextDecoder().decode(r.stderr)}`);
    }
    const store = openSqlite(path, 200);
    try {
      assert.equal((await store.get("192.0.2.1"))?.strikes, 400);
    } finally {
      store.close();
    }
  });
});

Deno.test("openSqlite() fails an update within its timeout while another holds the lock, then recovers", async (t) => {
  await withTempDir(async (dir) => {
    const path = `${dir}/state.db`;
    const store = openSqlite(path, 200, () => T0);
    const locker = new DatabaseSync(path);
    try {
      await store.update("k", put(FULL, T0 + 1000));
      locker.exec("BEGIN EXCLUSIVE");
      await t.step("update: a StoreError after about 200 ms", async () => {
        const start = performance.now();
        await assert.rejects(
          store.update("k", put(EMPTY, T0 + 1000)),
          (e) => e instanceof StoreError && e.message.includes(`sqlite ${path}: unable to update`),
        );
        const ms = performance.now() - start;
        assert.ok(ms >= 100 && ms <= 2000, `failed after ${ms.toFixed(0)} ms, want 100..2000`);
      });
      await t.step("delete and expire fail the same way", async () => {
        await assert.rejects(store.delete("k"), StoreError);
        await assert.rejects(store.expire(T0 + 1e9), StoreError);
      });
      await t.step("a reader still reads the last committed record (WAL)", async () => {
        assert.deepEqual(await store.get("k"), FULL);
      });
      await t.step("a store opened meanwhile fails its update too", async () => {
        const start = performance.now();
        let other: ReturnType<typeof openSqlite> | undefined;
        try {
          other = openSqlite(path, 200, () => T0);
          await assert.rejects(other.update("k", increment), StoreError);
        } catch (e) {
          assert.ok(e instanceof StoreError, `got ${String(e)}, want a StoreError`);
        } finally {
          other?.close();
        }
        const ms = performance.now() - start;
        assert.ok(ms <= 2000, `took ${ms.toFixed(0)} ms, want at most 2000`);
      });
      locker.exec("ROLLBACK");
      await t.step("once the lock is released the store works again", async () => {
        assert.deepEqual(await store.update("k", put(EMPTY, T0 + 1000)), EMPTY);
        assert.deepEqual(await store.get("k"), EMPTY);
        assert.equal(await store.delete("k"), true);
      });
    } finally {
      if (locker.isTransaction) locker.exec("ROLLBACK");
      locker.close();
      store.close();
    }
  });
});

Deno.test("openSqlite() close() may be called twice", async () => {
  await withTempDir((dir) => {
    const store = openSqlite(`${dir}/state.db`, 200);
    store.close();
    store.close();
  });
});

Deno.test("openStore() opens the store config parsed", async (t) => {
  const never = () => new Promise<void>(() => {});
  const url = (text: string) => parseStoreUrl(text, "--store");
  await t.step("none: no store", async () => {
    assert.equal(await openStore(url("none"), 200, never), undefined);
  });
  await t.step("sqlite:/PATH: the SQLite file at PATH", async () => {
    await withTempDir(async (dir) => {
      const store = await openStore(url(`sqlite:${dir}/state.db`), 200, never);
      try {
        await store!.update("192.0.2.1", put(FULL, T0 + 60_000));
        assert.ok(Deno.statSync(`${dir}/state.db`).isFile);
      } finally {
        store!.close();
      }
    });
  });
  await t.step("redis://: the Redis server of the URL (none here: refused)", async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { port } = listener.addr;
    listener.close();
    await assert.rejects(
      openStore(url(`redis://:pw@127.0.0.1:${port}/1`), 2_000, never),
      (e) => e instanceof StoreError && e.message === `redis 127.0.0.1:${port}: connection refused`,
    );
  });
});

Deno.test("parseRecord() takes the lists' answers only whole and bounded", async (t) => {
  const answer = { a: ["127.0.0.2"], until: T0 + 1000 };
  const rows: { name: string; lists: unknown; ok: boolean }[] = [
    { name: "one zone", lists: { ip: "192.0.2.7", zones: { "bl.test": answer } }, ok: true },
    {
      name: "not listed: no address",
      lists: { ip: "2001:db8::7", zones: { "bl.test": { a: [], until: 1 } } },
      ok: true,
    },
    { name: "no zones", lists: { ip: "192.0.2.7", zones: {} }, ok: true },
    { name: "not an object", lists: "bl.test", ok: false },
    { name: "no ip", lists: { zones: { "bl.test": answer } }, ok: false },
    { name: "an ip too long", lists: { ip: "1".repeat(46), zones: {} }, ok: false },
    { name: "zones an array", lists: { ip: "192.0.2.7", zones: [answer] }, ok: false },
    { name: "no until", lists: { ip: "192.0.2.7", zones: { z: { a: [] } } }, ok: false },
    {
      name: "an answer not an address",
      lists: { ip: "192.0.2.7", zones: { z: { a: ["x"], until: 1 } } },
      ok: false,
    },
    {
      name: "a number for an address",
      lists: { ip: "192.0.2.7", zones: { z: { a: [127], until: 1 } } },
      ok: false,
    },
    {
      name: "17 addresses",
      lists: { ip: "192.0.2.7", zones: { z: { a: Array(17).fill("127.0.0.2"), until: 1 } } },
      ok: false,
    },
    {
      name: "65 zones",
      lists: {
        ip: "192.0.2.7",
        zones: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`z${i}.test`, answer])),
      },
      ok: false,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const record = { ...FULL, lists: row.lists };
      assert.deepEqual(parseRecord(JSON.stringify(record)), row.ok ? record : undefined);
    });
  }
});
