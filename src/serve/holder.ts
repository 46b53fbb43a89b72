/**
 * serve's side of the memory. The filter is one process per connection, and
 * the memory tells its connections apart by pid; serve holds them all, so it
 * names each by a pid of its own (minus the connection's id: never a real
 * process's) and answers for them whether they are still open. Its SQLite
 * state files are opened once for every client (state_file.ts); Redis's
 * WATCH/MULTI needs a connection per change, opened per client.
 */
import type { Config } from "../config.ts";
import type { Ip } from "../ip.ts";
import type { Libc } from "../libc.ts";
import { type Memory, processStart, remember } from "../remember.ts";
import { SharedSqlite } from "./state_file.ts";

export class Holder {
  /** SQLite state files, by URL and timeout: one handle each for every client. */
  private readonly stateFiles = new Map<string, SharedSqlite>();
  /** What this server's entries carry in their start field: its pid and start time. */
  private readonly mark: string;

  /** `isOpen(id)`: whether connection `id` is still open (waiting, or its child running). */
  constructor(
    private readonly libc: Libc,
    private readonly isOpen: (id: number) => boolean,
    private readonly now: () => number,
  ) {
    this.mark = `serve:${Deno.pid}:${processStart(libc, "self") ?? ""}:`;
  }

  /** Opens connection `id`'s memory and records its arrival. */
  remember(config: Config, ip: Ip, id: number): Promise<Memory> {
    const { store, storeTimeoutMs } = config;
    return remember(config, ip, this.libc, {
      pid: -id,
      start: `${this.mark}${id}`,
      alive: (c) => {
        if (c.pid >= 0) return undefined;
        if (c.start.startsWith(this.mark)) return this.isOpen(-c.pid);
        // Another server on this host: open while that server runs (an over-count at most).
        const [, pid, start] = c.start.split(":");
        return processStart(this.libc, Number(pid)) === start;
      },
      ...(store.kind === "sqlite"
        ? { shared: () => this.stateFile(store.path, storeTimeoutMs) }
        : {}),
    });
  }

  /** SIGHUP: a state file replaced or removed is opened again, at its next use. */
  reload(): void {
    for (const file of this.stateFiles.values()) file.reload();
  }

  /** The server is done: every state file is closed. */
  close(): void {
    for (const file of this.stateFiles.values()) file.close();
  }

  /** The SQLite store at `path`: one handle for every client (see state_file.ts). */
  private stateFile(path: string, timeoutMs: number) {
    const key = `${path} ${timeoutMs}`;
    let file = this.stateFiles.get(key);
    if (!file) {
      file = new SharedSqlite(path, timeoutMs, this.now);
      this.stateFiles.set(key, file);
    }
    return Promise.resolve(file.store);
  }
}
