import assert from "node:assert/strict";
import { REST_MS, SharedSqlite } from "../src/serve/state_file.ts";
import { EMPTY } from "../src/history.ts";
import type { Change, ClientRecord } from "../src/store/store.ts";
import { StoreError } from "../src/store/store.ts";
import { openFilesUnder } from "./e2e/proc.ts";

/** A change that counts one more arrival. */
const ARRIVE: Change = (old: ClientRecord | undefined) => ({
  record: { ...(old ?? EMPTY), arrivals: [...(old?.arrivals ?? []), 1] },
  expiresAt: Date.now() + 60_000,
});

/** A state file in a fresh directory, with a clock the test moves. */
async function fixture() {
  const dir = await Deno.makeTempDir({ prefix: "smtp-delay-state-file-" });
  let clock = 1_000;
  const file = new SharedSqlite(`${dir}/state.db`, 200, () => clock);
  return {
    dir,
    file,
    path: `${dir}/state.db`,
    tick: (ms: number) => clock += ms,
    open: () => openFilesUnder(Deno.pid, dir),
    async [Symbol.asyncDispose]() {
      file.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const ONE_HANDLE = ["state.db", "state.db-shm", "state.db-wal"];

Deno.test("SharedSqlite opens once for every client that arrives before the first open ends", async () => {
  await using f = await fixture();
  assert.deepEqual(await f.open(), [], "nothing open before the first use");
  const records = await Promise.all(
    Array.from({ length: 50 }, () => f.file.store.update("192.0.2.1", ARRIVE)),
  );
  assert.equal(records.at(-1)!.arrivals.length, 50, "every arrival counted");
  assert.equal(f.file.handles, 1);
  assert.deepEqual(await f.open(), ONE_HANDLE);
});

Deno.test("SharedSqlite keeps its handle across reload() while the file is the same", async () => {
  await using f = await fixture();
  await f.file.store.update("192.0.2.1", ARRIVE);
  const wal = Deno.statSync(`${f.path}-wal`).ino;
  const held = Deno.openSync(`${f.path}-wal`); // its inode number cannot be reused meanwhile
  try {
    for (let i = 0; i < 100; i++) f.file.reload();
    await f.file.store.update("192.0.2.1", ARRIVE);
    assert.equal(Deno.statSync(`${f.path}-wal`).ino, wal, "not closed (the -wal file is the same)");
    assert.equal((await f.file.store.get("192.0.2.1"))!.arrivals.length, 2);
  } finally {
    held.close();
  }
  assert.deepEqual(await f.open(), ONE_HANDLE);
});

Deno.test("SharedSqlite reopens at its next use a file removed or replaced before reload()", async (t) => {
  await using f = await fixture();
  await t.step("removed: a new, empty file", async () => {
    await f.file.store.update("192.0.2.1", ARRIVE);
    await Deno.remove(f.path);
    f.file.reload();
    assert.equal(await f.file.store.get("192.0.2.1"), undefined);
    assert.ok(Deno.statSync(f.path).isFile);
    assert.deepEqual(await f.open(), ONE_HANDLE, "the old handle is closed");
  });
  await t.step("replaced by rename: the new file's records", async () => {
    await f.file.store.update("192.0.2.2", ARRIVE);
    const other = new SharedSqlite(`${f.dir}/other.db`, 200, () => 0);
    await other.store.update("198.51.100.1", ARRIVE);
    other.close();
    await Deno.rename(`${f.dir}/other.db`, f.path);
    f.file.reload();
    assert.equal(await f.file.store.get("192.0.2.2"), undefined);
    assert.equal((await f.file.store.get("198.51.100.1"))!.arrivals.length, 1);
    assert.deepEqual(await f.open(), ONE_HANDLE);
  });
});

Deno.test("SharedSqlite without reload() keeps a removed file open, as the filter's handle would", async () => {
  await using f = await fixture();
  await f.file.store.update("192.0.2.1", ARRIVE);
  await Deno.remove(f.path);
  assert.equal((await f.file.store.get("192.0.2.1"))!.arrivals.length, 1);
});

Deno.test("SharedSqlite rests a second after a failure, then tries again", async () => {
  await using f = await fixture();
  await Deno.writeTextFile(f.path, "this is not a database, and long enough to be read as one\n");
  await assert.rejects(f.file.store.update("192.0.2.1", ARRIVE), StoreError);
  await assert.rejects(f.file.store.update("192.0.2.1", ARRIVE), /resting after a failure/);
  f.tick(REST_MS - 1);
  await assert.rejects(f.file.store.update("192.0.2.1", ARRIVE), /resting after a failure/);
  // Fixed meanwhile (removed): once rested, the next use opens it.
  await Deno.remove(f.path);
  f.tick(1);
  assert.equal((await f.file.store.update("192.0.2.1", ARRIVE))!.arrivals.length, 1);
});

Deno.test("SharedSqlite's store outlives close() by its clients: their close() is a no-op", async () => {
  await using f = await fixture();
  await f.file.store.update("192.0.2.1", ARRIVE);
  f.file.store.close();
  assert.equal((await f.file.store.update("192.0.2.1", ARRIVE))!.arrivals.length, 2);
});
