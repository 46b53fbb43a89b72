/**
 * remember(): the memory's I/O for one connection, over a temporary SQLite
 * file (the filter's path: it opens the store itself) and over the in-memory
 * store (serve's path: a Holder that names its connections and keeps the
 * store). The libc it is given is a fake with exactly what remember uses:
 * readProcFile (the hostname, /proc/PID/stat) and sleep (the network
 * store's timer).
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { type Config, parseConfig } from "../src/config.ts";
import { type Departure, EMPTY, keyOf, type Recall } from "../src/history.ts";
import { parseIp } from "../src/ip.ts";
import type { Libc } from "../src/libc.ts";
import { type Holder, type Memory, processStart, remember } from "../src/remember.ts";
import { memoryStore } from "./fixtures/memory_store.ts";
import { STRANGER as NEW } from "./fixtures/recall.ts"; // a new client's: its own arrival
import { openSqlite } from "../src/store/sqlite.ts";
import {
  type Change,
  type ClientRecord,
  type LiveConn,
  type Store,
  StoreError,
} from "../src/store/store.ts";
import { withTempDir } from "./fixtures/temp_dir.ts";

const HOST = "mx1.example.net";
const IP = parseIp("192.0.2.7")!;
const KEY = keyOf(IP);
const SECOND = 1000;

/** A /proc/PID/stat line whose 22nd field (the start time) is `start`; its name holds ") ". */
function statLine(pid: number, start: string): string {
  const fields4to21 = Array.from({ length: 18 }, (_, i) => String(i + 4));
  return `${pid} (qmail) smtpd) S ${fields4to21.join(" ")} ${start} 1234567 89 0 0\n`;
}

/** A fake libc: /proc as `files` says (noting what was read), a sleep that ends at once; anything else throws. */
function fakeLibc(files: Readonly<Record<string, string>>): { libc: Libc; read: string[] } {
  const read: string[] = [];
  const missing = (name: string) => (): never => {
    throw new Error(`remember() called libc.${name}, which the fake does not have`);
  };
  const own: Partial<Libc> = {
    readProcFile(path) {
      read.push(path);
      return files[path];
    },
    sleep: () => Promise.resolve(),
  };
  const libc = new Proxy(own, {
    get: (target, name) => target[name as keyof Libc] ?? missing(String(name)),
  }) as Libc;
  return { libc, read };
}

/** This host's /proc: its name, this process, and other processes by pid and start time. */
function procOf(others: Readonly<Record<number, string>> = {}): Record<string, string> {
  const files: Record<string, string> = {
    "/proc/sys/kernel/hostname": `${HOST}\n`,
    "/proc/self/stat": statLine(Deno.pid, "555"),
  };
  for (const [pid, start] of Object.entries(others)) {
    files[`/proc/${pid}/stat`] = statLine(Number(pid), start);
  }
  return files;
}

/** A Config as the command line gives it. */
function configOf(args: readonly string[]): Config {
  const request = parseConfig([...args, "qmail-smtpd"], {});
  if (request.kind !== "run") throw new Error(`parseConfig(${args.join(" ")}) did not ask to run`);
  return request.config;
}

/** remember(), which must say "on". */
async function on(
  config: Config,
  libc: Libc,
  holder?: Holder,
): Promise<Extract<Memory, { kind: "on" }>> {
  const memory = await remember(config, IP, libc, holder);
  if (memory.kind !== "on") assert.fail(`got memory ${JSON.stringify(memory)}, want on`);
  return memory;
}

/**
 * The two ways remember() reaches a store: the filter's (it opens the
 * SQLite file of --store itself, and names the connection by its own pid
 * and start time) and serve's (a Holder's shared store, its own pid and start).
 */
interface Subject {
  readonly name: string;
  /** What this connection is in the store. */
  readonly pid: number;
  readonly start: string;
  /** Runs `fn` with a Config, the Holder (if any), a way to read and seed the store. */
  with(fn: (s: Setup) => Promise<void>): Promise<void>;
}

interface Setup {
  readonly config: Config;
  readonly holder: Holder | undefined;
  read(): Promise<ClientRecord | undefined>;
  seed(record: ClientRecord): Promise<void>;
}

/** A store as a Holder keeps it: its close() is a no-op. */
function kept(store: Store): Store {
  return { ...store, close() {} };
}

const SUBJECTS: Subject[] = [
  {
    name: "a SQLite file",
    pid: Deno.pid,
    start: "555",
    with: (fn) =>
      withTempDir(async (dir) => {
        const path = `${dir}/state.db`;
        const side = openSqlite(path, 2_000);
        try {
          await fn({
            config: configOf(["--store", `sqlite:${path}`]),
            holder: undefined,
            read: () => side.get(KEY),
            seed: async (record) =>
              void await side.update(KEY, () => ({ record, expiresAt: 9e12 })),
          });
        } finally {
          side.close();
        }
      }),
  },
  {
    name: "a Holder's memory store",
    pid: -7,
    start: "serve:4000:999:7",
    with: (fn) =>
      withTempDir(async (dir) => {
        const store = memoryStore();
        await fn({
          // A store remember() cannot open: it must use the Holder's.
          config: configOf(["--store", `sqlite:${dir}/no/such/state.db`]),
          holder: {
            pid: -7,
            start: "serve:4000:999:7",
            // Its connections are open (the test ends none of them).
            alive: (c) => c.pid < 0 ? true : undefined,
            shared: () => Promise.resolve(kept(store)),
          },
          read: () => store.get(KEY),
          seed: async (record) => void await store.update(KEY, () => ({ record, expiresAt: 9e12 })),
        });
        assert.throws(
          () => Deno.statSync(`${dir}/no`),
          Deno.errors.NotFound,
          "remember() opened the store of --store, not the Holder's",
        );
      }),
  },
];

for (const subject of SUBJECTS) {
  Deno.test(`remember() over ${subject.name} records the arrival and recalls it`, async () => {
    await subject.with(async ({ config, holder, read }) => {
      const { libc } = fakeLibc(procOf());
      const before = Date.now();
      const memory = await on(config, libc, holder);
      const after = Date.now();
      assert.deepEqual(memory.remembered.recalled, NEW);
      const record = await read();
      assert.ok(record, "got no record, want this arrival's");
      assert.equal(record.arrivals.length, 1, `arrivals: got ${record.arrivals}, want one`);
      const at = record.arrivals[0]!;
      assert.ok(at >= before && at <= after, `arrival at ${at}, want ${before}..${after}`);
      const me: LiveConn = { host: HOST, pid: subject.pid, start: subject.start, at };
      assert.deepEqual(record.live, [me]);
      assert.deepEqual({ ...record, arrivals: [], live: [] }, EMPTY);
      await memory.remembered.depart("gone");
    });
  });

  Deno.test(`remember() over ${subject.name} counts this arrival with the window's`, async () => {
    await subject.with(async ({ config, holder, seed }) => {
      const now = Date.now();
      // 30 arrivals in the window (--rate 30): this one is over by one, a step of 1 s.
      const arrivals = [now - 120 * SECOND, ...Array.from({ length: 30 }, (_, i) => now - i)];
      await seed({ ...EMPTY, arrivals, lastPassAt: now - SECOND, lastStrikeAt: now - SECOND });
      const { libc } = fakeLibc(procOf());
      const memory = await on(config, libc, holder);
      assert.deepEqual(memory.remembered.recalled, {
        ...NEW,
        passed: true,
        penalised: true,
        arrivals: 31,
        rateWaitMs: SECOND,
      });
      await memory.remembered.depart("gone");
    });
  });

  Deno.test(`remember() over ${subject.name} records the departure`, async (t) => {
    const rows: Array<
      { how: Departure; want(r: ClientRecord, me: LiveConn, t0: number): ClientRecord }
    > = [
      // A pass is remembered; the connection stays open (now in the next program).
      { how: "pass", want: (r, me, t0) => ({ ...r, lastPassAt: t0, live: [me] }) },
      // A strike; the connection is gone.
      { how: "early", want: (r, _me, t0) => ({ ...r, strikes: 1, lastStrikeAt: t0, live: [] }) },
      // Gone: no longer open, nothing else.
      { how: "gone", want: (r) => ({ ...r, live: [] }) },
    ];
    for (const { how, want } of rows) {
      await t.step(`depart("${how}")`, async () => {
        await subject.with(async ({ config, holder, read }) => {
          const { libc } = fakeLibc(procOf());
          const memory = await on(config, libc, holder);
          const arrived = (await read())!;
          const before = Date.now();
          assert.equal(await memory.remembered.depart(how), undefined);
          const after = Date.now();
          const got = (await read())!;
          const t0 = got.lastPassAt ?? got.lastStrikeAt ?? before;
          assert.ok(t0 >= before && t0 <= after, `departed at ${t0}, want ${before}..${after}`);
          assert.deepEqual(got, want(arrived, arrived.live[0]!, t0));
        });
      });
    }
  });

  Deno.test(`remember() over ${subject.name}: the next connection recalls the departure`, async (t) => {
    const rows: Array<{ how: Departure; want: Recall }> = [
      { how: "pass", want: { ...NEW, arrivals: 2, open: 1, passed: true } },
      { how: "early", want: { ...NEW, arrivals: 2, penalised: true } },
      { how: "gone", want: { ...NEW, arrivals: 2 } },
    ];
    for (const { how, want } of rows) {
      await t.step(`after depart("${how}")`, async () => {
        await subject.with(async ({ config, holder }) => {
          // The first connection's pid is still running: a pass stays open.
          const { libc } = fakeLibc(procOf());
          const first = await on(config, libc, holder);
          await first.remembered.depart(how);
          // The next one is another process (or another of the Holder's connections).
          const next = await on(
            config,
            libc,
            holder ? { ...holder, pid: -8, start: "serve:4000:999:8" } : undefined,
          );
          // The filter's next connection has the same pid here: its old entry is replaced.
          const open = holder ? want.open : 0;
          assert.deepEqual(next.remembered.recalled, { ...want, open });
          await next.remembered.depart("gone");
        });
      });
    }
  });
}

Deno.test("remember() counts as open the connections still running, and drops the rest", async (t) => {
  const now = Date.now();
  const conn = (host: string, pid: number, start: string, at = now - SECOND): LiveConn => ({
    host,
    pid,
    start,
    at,
  });
  // /proc of this host: pid 4242 started at 777, pid 4243 is a new process (reused pid).
  const proc = procOf({ 4242: "777", 4243: "888" });
  const rows: Array<{ name: string; live: LiveConn; holder?: boolean; kept: boolean }> = [
    { name: "this host, the same pid and start", live: conn(HOST, 4242, "777"), kept: true },
    {
      name: "this host, the pid reused by another process",
      live: conn(HOST, 4243, "1"),
      kept: false,
    },
    { name: "this host, the process gone", live: conn(HOST, 4244, "777"), kept: false },
    {
      name: "this process's own old entry (replaced by this arrival)",
      live: conn(HOST, Deno.pid, "555"),
      kept: false,
    },
    { name: "another host, within --live-ttl", live: conn("mx2", 4244, "1"), kept: true },
    {
      name: "another host, past --live-ttl (1200 s)",
      live: conn("mx2", 4245, "1", now - 1_201 * SECOND),
      kept: false,
    },
    {
      name: "serve, a connection its Holder says is open",
      live: conn(HOST, -8, "serve:4000:999:8"),
      holder: true,
      kept: true,
    },
    {
      name: "serve, a connection its Holder says has ended",
      live: conn(HOST, -9, "serve:4000:999:9"),
      holder: true,
      kept: false,
    },
    {
      name: "serve, a real pid the Holder leaves to /proc, running",
      live: conn(HOST, 4242, "777"),
      holder: true,
      kept: true,
    },
    {
      name: "serve, a real pid the Holder leaves to /proc, reused",
      live: conn(HOST, 4243, "1"),
      holder: true,
      kept: false,
    },
    {
      name: "serve, another host: not the Holder's to say, within --live-ttl",
      live: conn("mx2", -9, "serve:1:2:9"),
      holder: true,
      kept: true,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, async () => {
      await withTempDir(async (dir) => {
        // The filter opens the file itself; serve's Holder gives it a handle on it.
        const path = `${dir}/state.db`;
        const side = openSqlite(path, 2_000);
        try {
          await side.update(
            KEY,
            () => ({ record: { ...EMPTY, live: [row.live] }, expiresAt: 9e12 }),
          );
          const asked: LiveConn[] = [];
          const holder: Holder | undefined = row.holder
            ? {
              pid: -7,
              start: "serve:4000:999:7",
              alive(c) {
                asked.push(c);
                return c.pid < 0 ? c.pid === -8 : undefined;
              },
              shared: () => Promise.resolve(kept(side)),
            }
            : undefined;
          const { libc } = fakeLibc(proc);
          const memory = await on(configOf(["--store", `sqlite:${path}`]), libc, holder);
          // This arrival comes last; before it, what was kept.
          const live = (await side.get(KEY))!.live;
          const me = row.holder ? -7 : Deno.pid;
          assert.equal(live.at(-1)?.pid, me, "this arrival is not the last");
          assert.deepEqual(
            live.slice(0, -1),
            row.kept ? [row.live] : [],
            `live: got ${JSON.stringify(live)}`,
          );
          assert.equal(memory.remembered.recalled.open, row.kept ? 1 : 0);
          if (row.holder && row.live.host !== HOST) {
            assert.deepEqual(asked, [], "the Holder was asked about another host's connection");
          }
          await memory.remembered.depart("gone");
        } finally {
          side.close();
        }
      });
    });
  }
});

Deno.test("remember() names the host from /proc, or localhost", async (t) => {
  const rows: Array<{ name: string; hostname?: string; want: string }> = [
    {
      name: "the kernel's hostname, trimmed",
      hostname: " mx9.example.org \n",
      want: "mx9.example.org",
    },
    { name: "an empty hostname: localhost", hostname: "\n", want: "localhost" },
    { name: "no /proc: localhost", want: "localhost" },
  ];
  for (const row of rows) {
    await t.step(row.name, async () => {
      const store = memoryStore();
      const files = { ...procOf() };
      delete files["/proc/sys/kernel/hostname"];
      if (row.hostname !== undefined) files["/proc/sys/kernel/hostname"] = row.hostname;
      const { libc, read } = fakeLibc(files);
      await on(configOf([]), libc, {
        pid: -7,
        start: "s",
        alive: () => undefined,
        shared: () => Promise.resolve(kept(store)),
      });
      assert.deepEqual((await store.get(KEY))?.live.map((c) => c.host), [row.want]);
      assert.ok(read.includes("/proc/sys/kernel/hostname"), `read ${read}, want the hostname`);
    });
  }
});

Deno.test("remember() with a Holder keeps its shared store open for the next connection", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/state.db`;
    const file = openSqlite(path, 2_000);
    let opened = 0;
    const holder = (id: number): Holder => ({
      pid: -id,
      start: `serve:1:2:${id}`,
      alive: (c) => c.pid < 0 ? true : undefined,
      shared: () => {
        opened++;
        return Promise.resolve(kept(file));
      },
    });
    try {
      const { libc } = fakeLibc(procOf());
      const config = configOf(["--store", `sqlite:${path}`]);
      const first = await on(config, libc, holder(1));
      assert.equal(await first.remembered.depart("pass"), undefined);
      const second = await on(config, libc, holder(2));
      assert.deepEqual(second.remembered.recalled, { ...NEW, arrivals: 2, open: 1, passed: true });
      assert.equal(await second.remembered.depart("early"), undefined);
      assert.equal(opened, 2);
      // The handle the Holder keeps still works after both departures.
      const record = (await file.get(KEY))!;
      assert.deepEqual(record.live.map((c) => c.pid), [-1]);
      assert.equal(record.strikes, 1);
    } finally {
      file.close();
    }
  });
});

/** The fds of this process open on `path` (Linux: /proc/self/fd). */
function fdsOn(path: string): number {
  let n = 0;
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${entry.name}`) === path) n++;
    } catch {
      // the fd closed meanwhile (readDir's own)
    }
  }
  return n;
}

Deno.test("remember() without a Holder closes the file it opened when the connection departs", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/state.db`;
    const { libc } = fakeLibc(procOf());
    const memory = await on(configOf(["--store", `sqlite:${path}`]), libc);
    assert.equal(fdsOn(path), 1, "the file is not open while the connection is screened");
    assert.equal(await memory.remembered.depart("pass"), undefined);
    assert.equal(fdsOn(path), 0, "the file is still open after depart()");
  });
});

/** A Holder's store whose updates fail with `why`: all of them, or all after the first. */
function failing(why: string, from: "update" | "second update"): Store {
  const inner = memoryStore();
  let updates = 0;
  return kept({
    ...inner,
    update(key: string, change: Change) {
      updates++;
      if (from === "update" || updates > 1) return Promise.reject(new StoreError(why));
      return inner.update(key, change);
    },
  });
}

Deno.test("remember() goes on without memory when the store fails, and never throws", async (t) => {
  const rows: Array<{
    name: string;
    /** Prepares the directory; returns the Config's args, the Holder if any, and a clean-up. */
    setup(dir: string): { args: string[]; holder?: Holder; done?(): void };
    want: string[];
  }> = [
    {
      name: "the SQLite file's directory cannot be made",
      setup(dir) {
        Deno.writeTextFileSync(`${dir}/file`, "");
        return { args: ["--store", `sqlite:${dir}/file/state.db`] };
      },
      want: ["sqlite ", "/file/state.db: unable to create its directory"],
    },
    {
      name: "the SQLite file is not a database",
      setup(dir) {
        Deno.writeTextFileSync(`${dir}/state.db`, "x".repeat(4096));
        return { args: ["--store", `sqlite:${dir}/state.db`] };
      },
      want: ["/state.db: unable to open: ", "not a database"],
    },
    {
      name: "the SQLite update fails (a trigger refuses every write)",
      setup: (dir) => ({ args: ["--store", `sqlite:${readOnlyState(dir, "INSERT")}`] }),
      want: ["/state.db: unable to update: read-only state"],
    },
    {
      name: "the SQLite file locked by another writer past --store-timeout",
      setup(dir) {
        const path = `${dir}/state.db`;
        openSqlite(path, 2_000).close();
        const writer = new DatabaseSync(path);
        writer.exec("BEGIN EXCLUSIVE; CREATE TABLE lock_holder (x);");
        return {
          args: ["--store", `sqlite:${path}`, "--store-timeout", "0.05"],
          done() {
            writer.exec("ROLLBACK");
            writer.close();
          },
        };
      },
      want: ["/state.db: unable to update: database is locked"],
    },
    {
      name: "the Holder's store cannot be had",
      setup: () => ({
        args: [],
        holder: {
          pid: -7,
          start: "s",
          alive: () => undefined,
          shared: () =>
            Promise.reject(new StoreError("sqlite /x.db: unable to open: disk I/O error")),
        },
      }),
      want: ["sqlite /x.db: unable to open: disk I/O error"],
    },
    {
      name: "the Holder's store fails to update (Redis timed out)",
      setup: () => ({
        args: [],
        holder: {
          pid: -7,
          start: "s",
          alive: () => undefined,
          shared: () =>
            Promise.resolve(failing("redis 192.0.2.1:6379: timed out after 200 ms", "update")),
        },
      }),
      want: ["redis 192.0.2.1:6379: timed out after 200 ms"],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, async () => {
      await withTempDir(async (dir) => {
        const { args, holder, done } = row.setup(dir);
        const { libc } = fakeLibc(procOf());
        let memory: Memory | undefined;
        try {
          memory = await remember(configOf(args), IP, libc, holder);
        } catch (e) {
          assert.fail(`remember() threw ${e}, want memory down`);
        } finally {
          done?.();
        }
        if (memory.kind !== "down") assert.fail(`got ${JSON.stringify(memory)}, want down`);
        for (const part of row.want) {
          assert.ok(
            memory.reason.includes(part),
            `reason ${JSON.stringify(memory.reason)} lacks ${JSON.stringify(part)}`,
          );
        }
      });
    });
  }
});

/** Makes `${dir}/state.db` a SQLite file whose every write is refused. */
function readOnlyState(dir: string, on: "INSERT" | "UPDATE"): string {
  const path = `${dir}/state.db`;
  const db = new DatabaseSync(path);
  db.exec(
    "CREATE TABLE records (key TEXT PRIMARY KEY, record TEXT NOT NULL, " +
      "expires INTEGER NOT NULL) WITHOUT ROWID;" +
      `CREATE TRIGGER refuse BEFORE ${on} ON records ` +
      "BEGIN SELECT RAISE(ABORT, 'read-only state'); END;",
  );
  db.close();
  return path;
}

Deno.test("remember() leaves the SQLite file closed when its update failed", async () => {
  await withTempDir(async (dir) => {
    const path = readOnlyState(dir, "INSERT");
    const { libc } = fakeLibc(procOf());
    const memory = await remember(configOf(["--store", `sqlite:${path}`]), IP, libc);
    assert.equal(memory.kind, "down");
    assert.equal(fdsOn(path), 0, "the file is still open");
  });
});

Deno.test({
  // openSqlite() closes the DatabaseSync it opened when the PRAGMA or the
  // CREATE TABLE then fails (a file that is not a database): left to the
  // garbage collector, serve's retry every second would hold one fd more each.
  name: "remember() leaves the SQLite file closed when it is not a database",
  async fn() {
    await withTempDir(async (dir) => {
      const path = `${dir}/state.db`;
      Deno.writeTextFileSync(path, "x".repeat(4096));
      const { libc } = fakeLibc(procOf());
      const memory = await remember(configOf(["--store", `sqlite:${path}`]), IP, libc);
      assert.equal(memory.kind, "down");
      assert.equal(fdsOn(path), 0, "the file is still open");
    });
  },
});

Deno.test("remember()'s depart() gives the store's failure as a message, never a throw", async (t) => {
  await t.step("a store that fails after the arrival", async () => {
    const store = failing("redis 192.0.2.1:6379: timed out after 200 ms", "second update");
    const { libc } = fakeLibc(procOf());
    const memory = await on(configOf([]), libc, {
      pid: -7,
      start: "s",
      alive: () => undefined,
      shared: () => Promise.resolve(store),
    });
    const got = await memory.remembered.depart("pass");
    assert.equal(got, "redis 192.0.2.1:6379: timed out after 200 ms");
  });
  await t.step("a SQLite file whose updates fail once the record exists", async () => {
    await withTempDir(async (dir) => {
      const path = readOnlyState(dir, "UPDATE");
      const { libc } = fakeLibc(procOf());
      const memory = await on(configOf(["--store", `sqlite:${path}`]), libc);
      const got = await memory.remembered.depart("early");
      assert.equal(got, `sqlite ${path}: unable to update: read-only state`);
      assert.equal(fdsOn(path), 0, "the file is still open after a failed depart()");
    });
  });
});

Deno.test("remember() with --store none remembers nothing", async () => {
  const { libc, read } = fakeLibc(procOf());
  assert.deepEqual(await remember(configOf(["--store", "none"]), IP, libc), { kind: "off" });
  assert.deepEqual(read, [], "read /proc for no store");
});

Deno.test("processStart() reads field 22 of /proc/PID/stat, whatever the process's name", async (t) => {
  const { libc } = fakeLibc(procOf({ 4242: "777" }));
  await t.step("a running process", () => assert.equal(processStart(libc, 4242), "777"));
  await t.step("this process", () => assert.equal(processStart(libc, "self"), "555"));
  await t.step("a process that is gone", () => assert.equal(processStart(libc, 4243), undefined));
});
