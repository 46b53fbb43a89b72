/**
 * What the filter remembers of a client, and what that memory means. Pure:
 * the clock and the liveness check are passed in.
 *
 * A store (src/store/) keeps one ClientRecord per key and applies the Changes made
 * here atomically; `recall` turns a record into the facts the decision uses.
 */
import { formatIp, formatIpShort, type Ip } from "./ip.ts";
import {
  type Change,
  type ClientRecord,
  type ListCache,
  type LiveConn,
  MAX_CACHED_ZONES,
} from "./store/store.ts";

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

export const EMPTY: ClientRecord = Object.freeze({ strikes: 0, boxes: 0, arrivals: [], live: [] });

/** The key of a client: the IPv4 address, or the IPv6 /64 in RFC 5952's form (`2001:db8::/64`). */
export function keyOf(ip: Ip): string {
  if (ip.family === 4) return formatIp(ip);
  const net = Uint8Array.from([...ip.bytes.slice(0, 8), ...new Uint8Array(8)]);
  return `${formatIpShort({ family: 6, bytes: net })}/64`;
}

/** When a record may be forgotten: when nothing in it counts any more. */
export function expiresAt(record: ClientRecord, config: MemoryConfig, now: number): number {
  const times = [
    now + config.windowMs,
    (record.lastPassAt ?? 0) + config.passTtlMs,
    (record.lastStrikeAt ?? 0) + config.penaltyTtlMs,
    record.boxUntil ?? 0,
    ...record.live.map((conn) => conn.at + config.liveTtlMs),
    ...Object.values(record.lists?.zones ?? {}).map((answer) => answer.until),
  ];
  return Math.max(...times);
}

const changed = (record: ClientRecord, config: MemoryConfig, now: number) => ({
  record,
  expiresAt: expiresAt(record, config, now),
});

const sameConn = (a: LiveConn, b: LiveConn) => a.host === b.host && a.pid === b.pid;

/**
 * A connection arrives: its time joins the window's arrivals, and it joins
 * the open connections, from which those `alive` says are gone are dropped.
 */
export function arrive(
  config: MemoryConfig,
  now: number,
  me: LiveConn,
  alive: (conn: LiveConn) => boolean,
): Change {
  return (old) => {
    const record = old ?? EMPTY;
    const arrivals = [...record.arrivals.filter((at) => at > now - config.windowMs), now]
      .slice(-MAX_ARRIVALS);
    const live = [...record.live.filter((conn) => !sameConn(conn, me) && alive(conn)), me];
    return changed({ ...record, arrivals, live }, config, now);
  };
}

/** How a connection ended, for the memory. */
export type Departure =
  /** Waited politely through a full delay and was handed on: still open. */
  | "pass"
  /** Talked before the banner: a strike. */
  | "early"
  /** Handed on at once by the lists' score: still open, but no pass (it waited for nothing). */
  | "allowed"
  /** Anything else: hung up, refused. */
  | "gone";

/**
 * The lists' answers kept: `fresh` over those of `old` for the same
 * address (another address of an IPv6 /64 replaces them), the expired ones
 * dropped, the latest MAX_CACHED_ZONES kept; undefined when none is left.
 */
export function keepAnswers(
  old: ListCache | undefined,
  fresh: ListCache | undefined,
  now: number,
): ListCache | undefined {
  const base = fresh && old?.ip !== fresh.ip ? undefined : old;
  const entries = [...Object.entries(base?.zones ?? {}), ...Object.entries(fresh?.zones ?? {})]
    .filter(([, answer]) => answer.until > now);
  if (entries.length === 0) return undefined;
  const zones = Object.fromEntries(entries.slice(-MAX_CACHED_ZONES));
  return { ip: fresh?.ip ?? base!.ip, zones };
}

/**
 * A connection's outcome: a pass is remembered (and the connection stays
 * open, now in the next program); an early talk is a strike, and the K-th
 * strike puts the key in the box, for twice as long as the box before.
 * `answers`: the lists' answers got for it, kept until their TTLs end.
 */
export function depart(
  config: MemoryConfig,
  now: number,
  me: LiveConn,
  how: Departure,
  answers?: ListCache,
): Change {
  return (old) => {
    const lists = keepAnswers(old?.lists, answers, now);
    const { lists: _dropped, ...rest } = old ?? EMPTY;
    const record: ClientRecord = lists ? { ...rest, lists } : rest;
    if (how === "pass") return changed({ ...record, lastPassAt: now }, config, now);
    if (how === "allowed") return changed(record, config, now);
    const live = record.live.filter((conn) => !sameConn(conn, me));
    if (how === "gone") return changed({ ...record, live }, config, now);
    const recent = record.lastStrikeAt !== undefined &&
      now - record.lastStrikeAt < config.penaltyTtlMs;
    const strikes = (recent ? record.strikes : 0) + 1;
    if (config.strikes > 0 && strikes >= config.strikes) {
      const boxMs = Math.min(config.boxMaxMs, config.boxMs * 2 ** Math.min(record.boxes, 30));
      const boxes = record.boxes + 1;
      return changed(
        { ...record, live, strikes: 0, lastStrikeAt: now, boxes, boxUntil: now + boxMs },
        config,
        now,
      );
    }
    return changed({ ...record, live, strikes, lastStrikeAt: now }, config, now);
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
  /** The lists' answers kept for this address, by zone, still valid. */
  readonly answers: ReadonlyMap<string, readonly string[]>;
}

/**
 * What `record` says, at `now`, of a client that just arrived from `ip`
 * (formatIpShort's text: the lists' answers kept are for one address).
 */
export function recall(
  record: ClientRecord,
  config: MemoryConfig,
  now: number,
  ip?: string,
): Recall {
  const { lastPassAt, lastStrikeAt, boxUntil } = record;
  const answers = new Map<string, readonly string[]>();
  if (record.lists && record.lists.ip === ip) {
    for (const [zone, answer] of Object.entries(record.lists.zones)) {
      if (answer.until > now) answers.set(zone, answer.a);
    }
  }
  const arrivals = record.arrivals.filter((at) => at > now - config.windowMs).length;
  const over = config.rate > 0 ? arrivals - config.rate : 0;
  return {
    passed: lastPassAt !== undefined && now - lastPassAt < config.passTtlMs,
    penalised: lastStrikeAt !== undefined && now - lastStrikeAt < config.penaltyTtlMs,
    boxUntil: boxUntil !== undefined && boxUntil > now ? boxUntil : undefined,
    arrivals,
    open: Math.max(record.live.length - 1, 0),
    rateWaitMs: over > 0 ? Math.min(config.rateCapMs, over * config.rateStepMs) : 0,
    answers,
  };
}
