/**
 * The memory's I/O for one connection: open the store, record the arrival,
 * and at the end the departure. Any store failure turns the memory off for
 * this connection (one warning), never the connection itself. main imports
 * this module only when there is a store to use.
 */
import type { Config } from "./config.ts";
import { arrive, depart, type Departure, keyOf, type Recall, recall } from "./history.ts";
import { formatIpShort, type Ip } from "./ip.ts";
import type { Libc } from "./libc.ts";
import { openStore } from "./store/open.ts";
import type { ListCache, LiveConn, Store } from "./store/store.ts";

/** This connection as the memory sees it. */
export interface Remembered {
  /** What the key's record says, this arrival included. */
  readonly recalled: Recall;
  /**
   * Records how the connection ended, and the lists' answers got for it;
   * resolves to an error message, or undefined.
   */
  depart(how: Departure, answers?: ListCache): Promise<string | undefined>;
}

/** The memory of one connection, or why there is none. */
export type Memory =
  | { kind: "on"; remembered: Remembered }
  | { kind: "off" }
  | { kind: "down"; reason: string };

/** The start time of process `pid` (field 22 of /proc/PID/stat), or undefined if it is gone. */
export function processStart(libc: Libc, pid: number | "self"): string | undefined {
  const stat = libc.readProcFile(`/proc/${pid}/stat`);
  return stat?.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

/**
 * How a server that holds many connections in one process names them: a
 * pid and start of its own per connection (a negative pid, never a real
 * process's), and the answer to "is it still open?" for such entries
 * (undefined for a real pid, which is checked through /proc).
 */
export interface Holder {
  readonly pid: number;
  readonly start: string;
  alive(c: LiveConn): boolean | undefined;
  /** A store the holder keeps open for all its connections (its close() is a no-op), if any. */
  shared?(): Promise<Store | undefined>;
}

/** This host's name, read once per libc, so once per process (serve remembers every client). */
const hostnames = new WeakMap<Libc, string>();

function hostnameOf(libc: Libc): string {
  let name = hostnames.get(libc);
  if (name === undefined) {
    name = libc.readProcFile("/proc/sys/kernel/hostname")?.trim() || "localhost";
    hostnames.set(libc, name);
  }
  return name;
}

/**
 * Opens the store and records this connection's arrival. libc gives the
 * timer the network store races its replies with, and reads /proc.
 */
export async function remember(
  config: Config,
  ip: Ip,
  libc: Libc,
  holder?: Holder,
): Promise<Memory> {
  let store: Store | undefined;
  try {
    store = await (holder?.shared?.() ??
      openStore(config.store, config.storeTimeoutMs, libc.sleep));
    if (!store) return { kind: "off" };
    const key = keyOf(ip);
    const host = hostnameOf(libc);
    const me: LiveConn = {
      host,
      pid: holder?.pid ?? Deno.pid,
      start: holder?.start ?? processStart(libc, "self") ?? "",
      at: Date.now(),
    };
    // On this host a connection is open while its process is (same pid, same
    // start time: exec keeps both); from other hosts, until --live-ttl.
    const alive = (c: LiveConn) =>
      c.host === host
        ? holder?.alive(c) ?? processStart(libc, c.pid) === c.start
        : Date.now() - c.at < config.memory.liveTtlMs;
    const record = await store.update(key, arrive(config.memory, me.at, me, alive));
    const opened = store;
    return {
      kind: "on",
      remembered: {
        recalled: recall(record!, config.memory, Date.now(), formatIpShort(ip)),
        async depart(how, answers) {
          try {
            await opened.update(key, depart(config.memory, Date.now(), me, how, answers));
            return undefined;
          } catch (e) {
            return (e as Error).message;
          } finally {
            opened.close();
          }
        },
      },
    };
  } catch (e) {
    store?.close();
    return { kind: "down", reason: (e as Error).message };
  }
}
