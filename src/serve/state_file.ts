/**
 * serve's memory on SQLite: one handle on the state file for every client,
 * opened once (a client that arrives while it is being opened waits for that
 * open, it does not start its own), kept across SIGHUP unless the file was
 * replaced or removed, and rested for a second after a failure.
 *
 * Every client reaches the file through the same Store, which looks up the
 * current handle at each operation: a client that arrived before a reload
 * records its departure through the handle of after it, never through a
 * closed one. SQLite's operations are synchronous, so no operation is under
 * way on a handle when it is swapped: the old one is let go of then and there.
 */
import type { SqliteStore } from "../store/sqlite.ts";
import type { Store } from "../store/store.ts";
import { StoreError } from "../store/store.ts";

type OpenSqlite = typeof import("../store/sqlite.ts").openSqlite;

/** How long the store rests after a failure, its clients going without memory. */
export const REST_MS = 1000;

/** What tells a file from the one that replaced it: device and inode; undefined if it is gone. */
function identity(path: string): string | undefined {
  try {
    const stat = Deno.statSync(path);
    return `${stat.dev}:${stat.ino}`;
  } catch {
    return undefined;
  }
}

/** The state file at `path`, shared by every client of the server. */
export class SharedSqlite {
  /** The one Store the clients use (its close() is a no-op: the handle outlives them). */
  readonly store: Store;
  private handle: SqliteStore | undefined;
  private openedAs: string | undefined;
  /** A SIGHUP came since the file was opened: look at it again before the next use. */
  private stale = false;
  private restUntil = 0;
  private openSqlite: OpenSqlite | undefined;
  private loading: Promise<OpenSqlite> | undefined;

  constructor(
    private readonly path: string,
    private readonly timeoutMs: number,
    private readonly now: () => number,
  ) {
    this.store = {
      update: (key, change) => this.use((h) => h.update(key, change)),
      get: (key) => this.use((h) => h.get(key)),
      list: () => this.use((h) => h.list()),
      delete: (key) => this.use((h) => h.delete(key)),
      expire: (at) => this.use((h) => h.expire(at)),
      close: () => {},
    };
  }

  /** SIGHUP: at its next use the file is looked at again, and reopened if replaced or removed. */
  reload(): void {
    this.stale = true;
  }

  /** Closes the handle (the server is done with it). */
  close(): void {
    this.handle?.close();
    this.handle = undefined;
  }

  /** How many handles are open: 0 or 1. */
  get handles(): number {
    return this.handle ? 1 : 0;
  }

  /**
   * Runs `work` on the current handle. Loading node:sqlite is the only wait;
   * from there on, choosing the handle and running `work` on it is one
   * synchronous step, so a handle is never closed under an operation.
   */
  private use<T>(work: (handle: Store) => Promise<T>): Promise<T> {
    if (this.openSqlite) return this.guarded(work);
    this.loading ??= import("../store/sqlite.ts").then((m) => m.openSqlite);
    return this.loading.then((open) => {
      this.openSqlite = open;
      return this.guarded(work);
    });
  }

  /** A lock waits on the thread every client shares: after a failure, rest instead of stalling. */
  private async guarded<T>(work: (handle: Store) => Promise<T>): Promise<T> {
    if (this.now() < this.restUntil) {
      throw new StoreError("resting after a failure less than 1 s ago");
    }
    try {
      return await work(this.current());
    } catch (e) {
      this.restUntil = this.now() + REST_MS;
      throw e;
    }
  }

  /** The open handle, opened (or reopened after a SIGHUP) here if need be. */
  private current(): Store {
    if (this.stale) {
      this.stale = false;
      if (this.handle && identity(this.path) !== this.openedAs) {
        // Another file at the path: the old one's -wal must not become the new one's.
        this.handle.retire();
        this.handle = undefined;
      }
    }
    if (!this.handle) {
      this.handle = this.openSqlite!(this.path, this.timeoutMs);
      this.openedAs = identity(this.path);
    }
    return this.handle;
  }
}
