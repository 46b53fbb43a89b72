/**
 * Per-IP memory behind one small interface. A store keeps one record per key
 * (an IPv4 address, or an IPv6 /64) with an absolute expiry time, and changes
 * it atomically: many filter processes, on one host (SQLite) or on several
 * (Redis), update the same client's record at once without losing a count.
 *
 * The records' meaning (what a pass, a strike, a box is) lives in
 * src/history.ts; a store only keeps JSON-able records and runs `change`.
 */

/** A connection that is (or was, until proven gone) open. */
export interface LiveConn {
  /** The host that runs it (os hostname). */
  readonly host: string;
  readonly pid: number;
  /** The process's start time (field 22 of /proc/PID/stat), so that a reused pid is not taken for it. */
  readonly start: string;
  /** When it arrived, ms since the epoch. */
  readonly at: number;
}

/**
 * What the filter remembers of one key: a client's IPv4 address, or its
 * IPv6 /64. Times are ms since the epoch.
 */
export interface ClientRecord {
  /** The last time a client of this key waited politely through a full delay. */
  readonly lastPassAt?: number;
  /** Early-talk strikes, each within the penalty TTL of the one before. */
  readonly strikes: number;
  readonly lastStrikeAt?: number;
  /** How many times the key was put in the penalty box (the box doubles each time). */
  readonly boxes: number;
  /** Refused with 421 at once until then. */
  readonly boxUntil?: number;
  /** Arrival times within the rate window, oldest first (capped in length). */
  readonly arrivals: readonly number[];
  /** Connections that may still be open. */
  readonly live: readonly LiveConn[];
  /** The lists' answers for the latest address of the key asked about, while their TTLs last. */
  readonly lists?: ListCache;
}

/** The lists' answers for one address: each zone's A records ([]: not listed) and their expiry. */
export interface ListCache {
  /** The address (an IPv6 key holds a /64 of them), as formatIpShort writes it. */
  readonly ip: string;
  readonly zones: { readonly [zone: string]: CachedAnswer };
}

/** One zone's answer, kept until `until` (ms since the epoch). */
export interface CachedAnswer {
  readonly a: readonly string[];
  readonly until: number;
}

/** A change to one key's record: the new record and when it expires, or undefined to delete it. */
export type Change = (
  old: ClientRecord | undefined,
) => { record: ClientRecord; expiresAt: number } | undefined;

export interface Store {
  /**
   * Applies `change` to the record of `key` atomically (no other process
   * changes it between the read and the write; a conflict is retried) and
   * returns the new record (undefined: deleted).
   */
  update(key: string, change: Change): Promise<ClientRecord | undefined>;
  /** The record of `key`, if there is one and it has not expired. */
  get(key: string): Promise<ClientRecord | undefined>;
  /** Every unexpired record. For the admin's subcommands, not for the per-connection path. */
  list(): Promise<Array<[string, ClientRecord]>>;
  /** Deletes `key`'s record; true if there was one. */
  delete(key: string): Promise<boolean>;
  /** Deletes every record expired at `now`; returns how many. */
  expire(now: number): Promise<number>;
  /** Releases the connection or file. */
  close(): void;
}

/** A store that cannot do what was asked: down, locked, corrupt, too slow. */
export class StoreError extends Error {
  override name = "StoreError";
}

/**
 * A stored record's text back to a ClientRecord; undefined when it is not one
 * (damaged, or written by something else): such a record is no record, and
 * the next change overwrites it. The one check every store uses.
 */
export function parseRecord(json: string): ClientRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return undefined;
  }
  return isRecord(value) ? value : undefined;
}

const isObject = (v: unknown): v is { readonly [field: string]: unknown } =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isTime = (v: unknown) => v === undefined || isNumber(v);

function isLiveConn(v: unknown): v is LiveConn {
  return isObject(v) && typeof v.host === "string" && isNumber(v.pid) &&
    typeof v.start === "string" && isNumber(v.at);
}

/** Most zones and addresses a cache keeps: a damaged or hostile record cannot grow the work. */
export const MAX_CACHED_ZONES = 64;
const MAX_CACHED_ADDRESSES = 16;

const isAddress = (v: unknown) => typeof v === "string" && /^[0-9.]{7,15}$/.test(v);

function isCachedAnswer(v: unknown): v is CachedAnswer {
  return isObject(v) && isNumber(v.until) && Array.isArray(v.a) &&
    v.a.length <= MAX_CACHED_ADDRESSES && v.a.every(isAddress);
}

function isListCache(v: unknown): v is ListCache {
  if (!isObject(v) || typeof v.ip !== "string" || v.ip.length > 45 || !isObject(v.zones)) {
    return false;
  }
  const answers = Object.values(v.zones);
  return answers.length <= MAX_CACHED_ZONES && answers.every(isCachedAnswer);
}

/** Every field of a ClientRecord, of its type: what a damaged record would break is checked. */
function isRecord(v: unknown): v is ClientRecord {
  return isObject(v) && isNumber(v.strikes) && isNumber(v.boxes) &&
    isTime(v.lastPassAt) && isTime(v.lastStrikeAt) && isTime(v.boxUntil) &&
    Array.isArray(v.arrivals) && v.arrivals.every(isNumber) &&
    Array.isArray(v.live) && v.live.every(isLiveConn) &&
    (v.lists === undefined || isListCache(v.lists));
}
