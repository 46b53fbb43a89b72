/**
 * What the filter remembers of a client, and what that memory means. Pure:
 * the clock and the liveness check are passed in.
 *
 * A store (src/store/) keeps one Record per key and applies the Changes made
 * here atomically; `recall` turns a record into the facts the decision uses.
 */
import { formatIp, formatIpShort, type Ip } from "./ip.ts";
import type { Change, LiveConn, Record } from "./store/store.ts";

/** The memory's settings, all in ms or counts; 0 switches a limit off. */
export interface MemoryConfig {
  /** A client that passed within this time gets the `ptr` delay. */
  readonly passTtlMs: number;
  /** A client caught early within this time gets the `noptr` delay. */
  readonly penaltyTtlMs: number;
  /** Strikes (each within the penalty TTL of the last) that put a client in the box. */
  readonly strikes: number;
  /** The first box; each next one doubles, up to `boxMaxMs`. */
  readonly boxMs: number;
  readonly boxMaxMs: number;
  /** Arrivals per window beyond which the wait grows by `rateStepMs` each, up to `rateCapMs`. */
  readonly rate: number;
  readonly rateStepMs: number;
  readonly rateCapMs: number;
  /** At most this many connections open at once per key (0: no limit). */
  readonly maxConns: number;
  /** At most this many arrivals per window per key (0: no limit). */
  readonly maxRate: number;
  readonly windowMs: number;
  /** How long a connection recorded by another host counts as open. */
  readonly liveTtlMs: number;
}

/** Most arrival times kept per key. */
export const MAX_ARRIVALS = 1000;

export const EMPTY: Record = Object.freeze({ strikes: 0, boxes: 0, arrivals: [], live: [] });

/** The key of a client: the IPv4 address, or the IPv6 /64 in RFC 5952's form (`2001:db8::/64`). */
export function keyOf(ip: Ip): string {
  if (ip.family === 4) return formatIp(ip);
  const net = Uint8Array.from([...ip.bytes.slice(0, 8), ...new Uint8Array(8)]);
  return `${formatIpShort({ family: 6, bytes: net })}/64`;
}

/** When a record may be forgotten: when nothing in it counts any more. */
export function expiresAt(r: Record, config: MemoryConfig, now: number): number {
  const times = [
    now + config.windowMs,
    (r.lastPassAt ?? 0) + config.passTtlMs,
    (r.lastStrikeAt ?? 0) + config.penaltyTtlMs,
    r.boxUntil ?? 0,
    ...r.live.map((c) => c.at + config.liveTtlMs),
  ];
  return Math.max(...times);
}

const changed = (record: Record, config: MemoryConfig, now: number) => ({
  record,
  expiresAt: expiresAt(record, config, now),
});

const same = (a: LiveConn, b: LiveConn) => a.host === b.host && a.pid === b.pid;

/**
 * A connection arrives: its time joins the window's arrivals, and it joins
 * the open connections, from which those `alive` says are gone are dropped.
 */
export function arrive(
  config: MemoryConfig,
  now: number,
  me: LiveConn,
  alive: (c: LiveConn) => boolean,
): Change {
  return (old) => {
    const r = old ?? EMPTY;
    const arrivals = [...r.arrivals.filter((t) => t > now - config.windowMs), now]
      .slice(-MAX_ARRIVALS);
    const live = [...r.live.filter((c) => !same(c, me) && alive(c)), me];
    return changed({ ...r, arrivals, live }, config, now);
  };
}

/** How a connection ended, for the memory. */
export type Departure =
  /** Waited politely through a full delay and was handed on: still open. */
  | "pass"
  /** Talked before the banner: a strike. */
  | "early"
  /** Anything else: hung up, refused. */
  | "gone";

/**
 * A connection's outcome: a pass is remembered (and the connection stays
 * open, now in the next program); an early talk is a strike, and the K-th
 * strike puts the key in the box, for twice as long as the box before.
 */
export function depart(config: MemoryConfig, now: number, me: LiveConn, how: Departure): Change {
  return (old) => {
    const r = old ?? EMPTY;
    if (how === "pass") return changed({ ...r, lastPassAt: now }, config, now);
    const live = r.live.filter((c) => !same(c, me));
    if (how === "gone") return changed({ ...r, live }, config, now);
    const recent = r.lastStrikeAt !== undefined && now - r.lastStrikeAt < config.penaltyTtlMs;
    const strikes = (recent ? r.strikes : 0) + 1;
    if (config.strikes > 0 && strikes >= config.strikes) {
      const boxMs = Math.min(config.boxMaxMs, config.boxMs * 2 ** Math.min(r.boxes, 30));
      return changed(
        { ...r, live, strikes: 0, lastStrikeAt: now, boxes: r.boxes + 1, boxUntil: now + boxMs },
        config,
        now,
      );
    }
    return changed({ ...r, live, strikes, lastStrikeAt: now }, config, now);
  };
}

/** Forgets a key's strikes, box and pass; keeps its counts of connections. */
export const forgive = (config: MemoryConfig, now: number): Change => (old) => {
  if (!old) return undefined;
  const { arrivals, live } = old;
  return changed({ ...EMPTY, arrivals, live }, config, now);
};

/** What the memory says of a client that just arrived (its arrival is in the record). */
export interface Recall {
  /** Passed within the pass TTL. */
  readonly passed: boolean;
  /** Caught early within the penalty TTL. */
  readonly penalised: boolean;
  /** In the box until then, or undefined. */
  readonly boxUntil: number | undefined;
  /** Arrivals in the window, this one included. */
  readonly arrivals: number;
  /** Other connections of the key still open. */
  readonly open: number;
  /** The wait the reconnect rate asks for (0: none). */
  readonly rateWaitMs: number;
}

export function recall(r: Record, config: MemoryConfig, now: number): Recall {
  const arrivals = r.arrivals.filter((t) => t > now - config.windowMs).length;
  const over = config.rate > 0 ? arrivals - config.rate : 0;
  return {
    passed: r.lastPassAt !== undefined && now - r.lastPassAt < config.passTtlMs,
    penalised: r.lastStrikeAt !== undefined && now - r.lastStrikeAt < config.penaltyTtlMs,
    boxUntil: r.boxUntil !== undefined && r.boxUntil > now ? r.boxUntil : undefined,
    arrivals,
    open: Math.max(r.live.length - 1, 0),
    rateWaitMs: over > 0 ? Math.min(config.rateCapMs, over * config.rateStepMs) : 0,
  };
}
