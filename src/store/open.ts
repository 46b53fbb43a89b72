/**
 * The store a Config names, imported only when it is used: a connection
 * pays for node:sqlite or the Redis client only if the run file asks for it.
 */
import type { Store } from "./store.ts";
import { parseStoreUrl } from "./url.ts";

/**
 * Opens the store of `url` (Config.store, which parseStoreUrl took at
 * start); undefined for `none`. `deadline(ms)` resolves after `ms`: the
 * timer for the network store. Throws a StoreError when the store cannot be
 * opened.
 */
export async function openStore(
  url: string,
  timeoutMs: number,
  deadline: (ms: number) => Promise<void>,
): Promise<Store | undefined> {
  const store = parseStoreUrl(url, "the store URL");
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
