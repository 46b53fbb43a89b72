/** A store in this process's memory: for tests, and the reference for the others. */
import type { Change, Record, Store } from "./store.ts";

/** A Map-backed store; `now` says what has expired. */
export function memoryStore(now: () => number = Date.now): Store {
  const records = new Map<string, { record: Record; expiresAt: number }>();
  const live = (key: string) => {
    const entry = records.get(key);
    return entry && entry.expiresAt > now() ? entry.record : undefined;
  };
  return {
    update(key: string, change: Change) {
      try {
        const next = change(live(key));
        if (next) records.set(key, next);
        else records.delete(key);
        return Promise.resolve(next?.record);
      } catch (e) {
        return Promise.reject(e);
      }
    },
    get: (key) => Promise.resolve(live(key)),
    list: () =>
      Promise.resolve(
        [...records.keys()].flatMap((k) => {
          const r = live(k);
          return r ? [[k, r] as [string, Record]] : [];
        }),
      ),
    delete(key) {
      const had = live(key) !== undefined;
      records.delete(key);
      return Promise.resolve(had);
    },
    expire(at) {
      let n = 0;
      for (const [k, e] of records) if (e.expiresAt <= at && records.delete(k)) n++;
      return Promise.resolve(n);
    },
    close() {},
  };
}
