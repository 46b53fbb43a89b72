/**
 * The store a Config names, imported only when it is used: a connection
 * pays for node:sqlite or the Redis client only if the run file asks for it.
 */
import type { Store } from "./store.ts";

/**
 * Opens `url` (`none`, `sqlite:PATH`, `redis://...`); undefined for `none`.
 * `deadline(ms)` resolves after `ms`: the timer for the network store.
 * Throws a StoreError when the store cannot be opened.
 */
export async function openStore(
  url: string,
  timeoutMs: number,
  deadline: (ms: number) => Promise<void>,
): Promise<Store | undefined> {
  if (url === "none") return undefined;
  if (url.startsWith("redis://")) {
    const { openRedis } = await import("./redis.ts");
    return await openRedis(url, deadline, timeoutMs);
  }
  const { openSqlite } = await import("./sqlite.ts");
  return openSqlite(url.replace(/^sqlite:/, ""), timeoutMs);
}
