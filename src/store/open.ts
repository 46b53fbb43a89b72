/**
 * The store a Config names, imported only when it is used: a connection
 * pays for node:sqlite or the Redis client only if the run file asks for it.
 */
import type { Store } from "./store.ts";
import type { StoreUrl } from "./url.ts";

/**
 * Opens `store` (Config.store, parsed at start); undefined for `none`.
 * `deadline(ms)` resolves after `ms`: the timer for the network store.
 * Throws a StoreError when the store cannot be opened.
 */
export async function openStore(
  store: StoreUrl,
  timeoutMs: number,
  deadline: (ms: number) => Promise<void>,
): Promise<Store | undefined> {
  switch (store.kind) {
    case "none":
      return undefined;
    case "redis": {
      const { openRedis } = await import("./redis.ts");
      return await openRedis(store.target, deadline, timeoutMs);
    }
    case "sqlite": {
      const { openSqlite } = await import("./sqlite.ts");
      return openSqlite(store.path, timeoutMs);
    }
  }
}
