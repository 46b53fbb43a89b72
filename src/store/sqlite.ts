/**
 * The embedded store: one SQLite file (Deno's node:sqlite), shared by every
 * filter process of a host. WAL mode so that readers do not wait for
 * writers, a busy timeout so that a locked file costs at most the store
 * deadline, and every change in a BEGIN IMMEDIATE transaction: no two
 * processes read-modify-write one record at once.
 */
import { DatabaseSync } from "node:sqlite";
import { type Change, type ClientRecord, parseRecord, type Store, StoreError } from "./store.ts";

const SCHEMA = `CREATE TABLE IF NOT EXISTS records (
  key TEXT PRIMARY KEY,
  record TEXT NOT NULL,
  expires INTEGER NOT NULL
) WITHOUT ROWID`;

function failed(path: string, doing: string, e: unknown): StoreError {
  return new StoreError(
    `sqlite ${path}: unable to ${doing}: ${e instanceof Error ? e.message : e}`,
  );
}

/** A SQLite store that can be let go of after its file was replaced or removed (serve's). */
export interface SqliteStore extends Store {
  /**
   * Empties the -wal file into the database it belongs to, then closes.
   * SQLite does not do it when it closes a file that was renamed or deleted,
   * and the next file opened at the same path would read that -wal as its own.
   */
  retire(): void;
}

/**
 * Opens (creating it and its directory on first use) the SQLite store at
 * `path`. A lock held longer than `timeoutMs` makes an operation fail with a
 * StoreError, as does a file that cannot be created or is not a database.
 */
export function openSqlite(
  path: string,
  timeoutMs: number,
  now: () => number = Date.now,
): SqliteStore {
  let db: DatabaseSync | undefined;
  try {
    const dir = path.slice(0, path.lastIndexOf("/"));
    if (dir) Deno.mkdirSync(dir, { recursive: true, mode: 0o750 });
  } catch (e) {
    throw failed(path, "create its directory", e);
  }
  try {
    db = new DatabaseSync(path, { timeout: timeoutMs });
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
    db.exec(SCHEMA);
  } catch (e) {
    db?.close(); // not left to the garbage collector: serve retries every second
    throw failed(path, "open", e);
  }
  const select = db.prepare("SELECT record, expires FROM records WHERE key = ?");
  const upsert = db.prepare(
    "INSERT INTO records (key, record, expires) VALUES (?, ?, ?) " +
      "ON CONFLICT (key) DO UPDATE SET record = excluded.record, expires = excluded.expires",
  );
  const remove = db.prepare("DELETE FROM records WHERE key = ?");
  const read = (key: string): ClientRecord | undefined => {
    const row = select.get(key) as { record: string; expires: number } | undefined;
    return row && row.expires > now() ? parseRecord(row.record) : undefined;
  };
  const attempt = <T>(doing: string, work: () => T): Promise<T> => {
    try {
      return Promise.resolve(work());
    } catch (e) {
      return Promise.reject(failed(path, doing, e));
    }
  };
  return {
    update: (key: string, change: Change) =>
      attempt("update", () => {
        db.exec("BEGIN IMMEDIATE");
        try {
          const next = change(read(key));
          if (next) upsert.run(key, JSON.stringify(next.record), next.expiresAt);
          else remove.run(key);
          db.exec("COMMIT");
          return next?.record;
        } catch (e) {
          if (db.isTransaction) db.exec("ROLLBACK");
          throw e;
        }
      }),
    get: (key) => attempt("read", () => read(key)),
    list: () =>
      attempt("list", () => {
        const rows = db.prepare("SELECT key, record FROM records WHERE expires > ? ORDER BY key")
          .all(now()) as Array<{ key: string; record: string }>;
        return rows.flatMap(({ key, record }) => {
          const parsed = parseRecord(record);
          return parsed ? [[key, parsed] as [string, ClientRecord]] : [];
        });
      }),
    delete: (key) =>
      attempt("delete", () => {
        const had = read(key) !== undefined;
        remove.run(key);
        return had;
      }),
    expire: (at) =>
      attempt("expire", () => {
        const result = db.prepare("DELETE FROM records WHERE expires <= ?").run(at);
        return Number(result.changes);
      }),
    close() {
      try {
        db.close();
      } catch {
        // already closed
      }
    },
    retire() {
      try {
        db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      } catch {
        // closed, or a reader of the old file holds on past the timeout: its -wal stays
      }
      this.close();
    },
  };
}
