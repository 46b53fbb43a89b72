/**
 * The figures of a report, pure: records in (parse.ts's), a Summary out.
 * Tally counts every line it is shown, keeps what falls in the period, and
 * summary() computes shares, percentiles, histograms, top lists, the lists'
 * hits per zone and the outcomes over time. Percentiles are nearest-rank
 * (the smallest value with at least q of the values at or below it) over
 * the values as logged (milliseconds).
 */
import type { LogRecord, OutcomeRecord, Tier } from "./parse.ts";
import { TIERS } from "./parse.ts";

/** The period asked for: [sinceMs, untilMs), either end open. */
export interface Period {
  readonly sinceMs: number | undefined;
  readonly untilMs: number | undefined;
}

/** The tier of a line that has none (`tier=-`, BUSY), as the log writes it. */
export const NO_TIER = "-";
export type TierKey = Tier | typeof NO_TIER;
export const TIER_KEYS: readonly TierKey[] = [...TIERS, NO_TIER];

/** Event words that are a connection's outcome, in the order reports show them. */
export const CONNECTION_EVENTS = [
  "PASS",
  "EARLY",
  "CLOSED",
  "REFUSED",
  "LISTED",
  "BUSY",
] as const;

/**
 * Distinct zones the report counts apart; the hits of any further zone
 * count under OTHER_ZONE. Zones are the admin's (32 per client at most),
 * so this is only a bound on what a strange log can make the report hold.
 */
export const MAX_ZONES = 1000;
/** Where the hits of the zones beyond MAX_ZONES go: not a zone (a zone has a dot). */
export const OTHER_ZONE = "other";

/** The events whose waiting times tell how long clients wait: talking early, hanging up. */
export const WAITING_EVENTS = ["EARLY", "CLOSED"] as const;

/**
 * The histogram's bins of waited seconds: [edge[i], edge[i+1]), the last
 * open. Close together where bots act (under a second), wide where the
 * delays end (16 s and 26 s by default).
 */
export const BIN_EDGES: readonly number[] = [0, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120];

/** The label of bin i: `0-0.1`, ..., `120+`. */
export function binLabel(i: number): string {
  const from = BIN_EDGES[i]!;
  const to = BIN_EDGES[i + 1];
  return to === undefined ? `${from}+` : `${from}-${to}`;
}

function binOf(seconds: number): number {
  let i = BIN_EDGES.length - 1;
  while (i > 0 && seconds < BIN_EDGES[i]!) i--;
  return i;
}

export interface Percentiles {
  readonly n: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  /** The sum of the values, seconds. */
  readonly total: number;
}

/** Nearest-rank percentiles of `values` (sorted here, in place); undefined for none. */
export function percentiles(values: Float64Array): Percentiles | undefined {
  const n = values.length;
  if (n === 0) return undefined;
  values.sort();
  const at = (q: number) => values[Math.max(0, Math.ceil(q * n) - 1)]!;
  let total = 0;
  for (let i = 0; i < n; i++) total += values[i]!;
  return { n, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: values[n - 1]!, total };
}

/** A growable list of numbers, 8 bytes each. */
class Values {
  private data = new Float64Array(256);
  private n = 0;
  push(x: number): void {
    if (this.n === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.n++] = x;
  }
  get values(): Float64Array {
    return this.data.subarray(0, this.n);
  }
}

/** A client in a top list: how often, and the PTR name it had last. */
export interface Talker {
  readonly ip: string;
  readonly ptr: string | undefined;
  readonly tier: TierKey;
  readonly count: number;
  /** EARLY: the first bytes it sent, the last time (cleaned, as logged). */
  readonly data: string | undefined;
}

/** A zone of the lists: the outcome lines it hit, in all and per event word. */
export interface ZoneHits {
  readonly zone: string;
  readonly hits: number;
  readonly events: Readonly<Record<string, number>>;
}

/** One bar of the outcomes over time: its start and the count of each event. */
export interface Bucket {
  readonly startMs: number;
  readonly counts: Readonly<Record<string, number>>;
}

export interface Summary {
  /** Lines seen, and what became of them. */
  readonly input: {
    /** Every line read. */
    readonly read: number;
    /** smtp-delay's lines in the period: the ones counted. */
    readonly ours: number;
    /** Other programs' lines (tcpserver's, ...): skipped. */
    readonly other: number;
    /** smtp-delay's lines that are malformed: skipped. */
    readonly damaged: number;
    /** smtp-delay's lines outside the period, or without a stamp when a period was given. */
    readonly outside: number;
  };
  readonly firstMs: number | undefined;
  readonly lastMs: number | undefined;
  /** Every event word counted: outcomes, BUSY, END, STRESS, STOP, RELOAD, WARNING, FATAL... */
  readonly events: Readonly<Record<string, number>>;
  /** Connections: the outcome lines and BUSY. */
  readonly connections: number;
  /** Each connection event's share of the connections, 0..1. */
  readonly shares: Readonly<Record<string, number>>;
  /** Per tier, the count of each connection event. */
  readonly tiers: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** Waited seconds per outcome event, every tier. */
  readonly waited: Readonly<Record<string, Percentiles>>;
  /** Waited seconds per tier, then per event. */
  readonly waitedByTier: Readonly<Record<string, Readonly<Record<string, Percentiles>>>>;
  /** EARLY and CLOSED: per tier, the count in each bin of BIN_EDGES. */
  readonly histogram: Readonly<Record<string, Readonly<Record<string, readonly number[]>>>>;
  /** What the delay cost the clients that passed: seconds waited, and how many clients. */
  readonly cost: {
    readonly passed: number;
    readonly clients: number;
    readonly seconds: Percentiles | undefined;
    readonly byTier: Readonly<Record<string, Percentiles>>;
  };
  readonly topEarly: readonly Talker[];
  readonly topRefused: readonly Talker[];
  readonly topListed: readonly Talker[];
  /** The lists (`score=`, `lists=` of the outcome lines). */
  readonly lists: {
    /** Outcome lines with a `lists=` field: connections screened with lists configured. */
    readonly lines: number;
    /** Of them, those with a score (`score=N`, not `-`: the lists were asked). */
    readonly scored: number;
    /** Each zone that hit, most hits first (ties by name). */
    readonly zones: readonly ZoneHits[];
  };
  /**
   * --action ignore: per event, what enforcing would have done and how
   * often (`would=`). These clients were handed on after their delay: their
   * `waited` is the delay, not when they talked, and stays out of `waited`.
   */
  readonly ignored: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** Outcomes over time, per hour or per day (`bucketMs`), oldest first; empty without stamps. */
  readonly buckets: readonly Bucket[];
  readonly bucketMs: number;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Periods up to this long are shown per hour, longer ones per day. */
export const HOURLY_UP_TO_MS = 3 * DAY_MS;

interface Counted {
  count: number;
  ptr: string | undefined;
  tier: TierKey;
  data: string | undefined;
}

/** The figures, as the lines come. */
export class Tally {
  private read = 0;
  private ours = 0;
  private other = 0;
  private damagedLines = 0;
  private outside = 0;
  private firstMs: number | undefined;
  private lastMs: number | undefined;
  private readonly events = new Map<string, number>();
  private readonly tiers = new Map<string, Map<string, number>>();
  /** Waited seconds per tier, then per event. */
  private readonly waits = new Map<string, Map<string, Values>>();
  private readonly early = new Map<string, Counted>();
  private readonly refused = new Map<string, Counted>();
  private readonly listed = new Map<string, Counted>();
  private listLines = 0;
  private scored = 0;
  /** zone -> event -> hits. */
  private readonly zones = new Map<string, Map<string, number>>();
  private readonly passedClients = new Set<string>();
  /** action=ignore: event -> would -> count. */
  private readonly ignored = new Map<string, Map<string, number>>();
  /** Outcomes per hour: hour number (ms / HOUR_MS) -> event -> count. */
  private readonly hours = new Map<number, Map<string, number>>();
  /** The last hour counted and its counts: lines come in time order, mostly. */
  private lastHour = NaN;
  private lastHourCounts = new Map<string, number>();

  constructor(private readonly period: Period = { sinceMs: undefined, untilMs: undefined }) {}

  /** A line of another program. */
  otherLine(): void {
    this.read++;
    this.other++;
  }

  /** A line of smtp-delay's that parse.ts could not read. */
  damaged(): void {
    this.read++;
    this.damagedLines++;
  }

  /** A record: counted when it falls in the period. */
  add(r: LogRecord): void {
    this.read++;
    const { sinceMs, untilMs } = this.period;
    const at = r.atMs;
    if (sinceMs !== undefined || untilMs !== undefined) {
      if (
        at === undefined || (sinceMs !== undefined && at < sinceMs) ||
        (untilMs !== undefined && at >= untilMs)
      ) {
        this.outside++;
        return;
      }
    }
    this.ours++;
    if (at !== undefined) {
      if (this.firstMs === undefined || at < this.firstMs) this.firstMs = at;
      if (this.lastMs === undefined || at > this.lastMs) this.lastMs = at;
    }
    const word = wordOf(r);
    this.events.set(word, (this.events.get(word) ?? 0) + 1);
    if (r.kind === "outcome") this.outcome(r);
    else if (r.kind === "busy") {
      this.tier(NO_TIER, "BUSY");
      this.hour(at, "BUSY");
    }
  }

  private tier(tier: string, event: string): void {
    let m = this.tiers.get(tier);
    if (!m) this.tiers.set(tier, m = new Map());
    m.set(event, (m.get(event) ?? 0) + 1);
  }

  private hour(at: number | undefined, event: string): void {
    if (at === undefined) return;
    const h = Math.floor(at / HOUR_MS);
    let m = this.lastHourCounts;
    if (h !== this.lastHour) {
      m = this.hours.get(h) ?? new Map();
      this.hours.set(h, m);
      this.lastHour = h;
      this.lastHourCounts = m;
    }
    m.set(event, (m.get(event) ?? 0) + 1);
  }

  private outcome(r: OutcomeRecord): void {
    const tier = r.tier ?? NO_TIER;
    this.tier(tier, r.event);
    this.hour(r.atMs, r.event);
    if (r.would !== undefined) {
      let m = this.ignored.get(r.event);
      if (!m) this.ignored.set(r.event, m = new Map());
      m.set(r.would, (m.get(r.would) ?? 0) + 1);
    } else this.wait(tier, r);
    if (r.event === "PASS") {
      if (!this.passedClients.has(r.ip)) this.passedClients.add(own(r.ip));
    } else if (r.event === "EARLY") count(this.early, r);
    else if (r.event === "REFUSED") count(this.refused, r);
    else if (r.event === "LISTED") count(this.listed, r);
    if (r.lists !== undefined) this.lists(r);
  }

  /** The lists' fields of an outcome line: the zones that hit, by event. */
  private lists(r: OutcomeRecord): void {
    this.listLines++;
    if (r.score !== undefined) this.scored++;
    for (const hit of r.lists!) {
      if (hit === "") continue;
      let zone = this.zones.get(hit);
      if (!zone) {
        const key = this.zones.size < MAX_ZONES ? own(hit) : OTHER_ZONE;
        zone = this.zones.get(key);
        if (!zone) this.zones.set(key, zone = new Map());
      }
      zone.set(r.event, (zone.get(r.event) ?? 0) + 1);
    }
  }

  /** The seconds `r` waited, under its tier and event. */
  private wait(tier: string, r: OutcomeRecord): void {
    let byEvent = this.waits.get(tier);
    if (!byEvent) this.waits.set(tier, byEvent = new Map());
    let v = byEvent.get(r.event);
    if (!v) byEvent.set(r.event, v = new Values());
    v.push(r.waitedSeconds);
  }

  /** The figures so far; `top` entries in each top list. */
  summary(top = 10): Summary {
    const words = this.sortedEvents(this.events.keys());
    const events = Object.fromEntries(words.map((e) => [e, this.events.get(e)!]));
    const outcomes = words.filter((e) => this.isConnection(e));
    const connections = outcomes.reduce((n, e) => n + this.events.get(e)!, 0);
    const shares: Record<string, number> = {};
    for (const e of outcomes) shares[e] = this.events.get(e)! / connections;
    const tiers: Record<string, Record<string, number>> = {};
    for (const t of this.sortedTiers()) {
      const m = this.tiers.get(t)!;
      tiers[t] = Object.fromEntries(this.sortedEvents(m.keys()).map((e) => [e, m.get(e)!]));
    }

    const waited: Record<string, Percentiles> = {};
    const waitedByTier: Record<string, Record<string, Percentiles>> = {};
    const histogram: Record<string, Record<string, number[]>> = {};
    const byEvent = new Map<string, Values>();
    for (const tier of this.sortedTiers()) {
      const perEvent = this.waits.get(tier);
      if (!perEvent) continue;
      for (const event of this.sortedEvents(perEvent.keys())) {
        const v = perEvent.get(event)!;
        let all = byEvent.get(event);
        if (!all) byEvent.set(event, all = new Values());
        for (const x of v.values) all.push(x);
        if ((WAITING_EVENTS as readonly string[]).includes(event)) {
          const bins = new Array<number>(BIN_EDGES.length).fill(0);
          for (const x of v.values) bins[binOf(x)]!++;
          (histogram[event] ??= {})[tier] = bins;
        }
        (waitedByTier[tier] ??= {})[event] = percentiles(v.values)!;
      }
    }
    for (const event of this.sortedEvents(byEvent.keys())) {
      waited[event] = percentiles(byEvent.get(event)!.values)!;
    }
    const costByTier: Record<string, Percentiles> = {};
    for (const t of TIER_KEYS) {
      const p = waitedByTier[t]?.PASS;
      if (p) costByTier[t] = p;
    }
    return {
      input: {
        read: this.read,
        ours: this.ours,
        other: this.other,
        damaged: this.damagedLines,
        outside: this.outside,
      },
      firstMs: this.firstMs,
      lastMs: this.lastMs,
      events,
      connections,
      shares,
      tiers,
      waited,
      waitedByTier,
      histogram,
      cost: {
        passed: this.events.get("PASS") ?? 0,
        clients: this.passedClients.size,
        seconds: waited.PASS,
        byTier: costByTier,
      },
      ignored: Object.fromEntries(
        this.sortedEvents(this.ignored.keys()).map((
          e,
        ) => [e, Object.fromEntries(this.ignored.get(e)!)]),
      ),
      topEarly: topOf(this.early, top),
      topRefused: topOf(this.refused, top),
      topListed: topOf(this.listed, top),
      lists: { lines: this.listLines, scored: this.scored, zones: this.zoneHits() },
      ...this.buckets(),
    };
  }

  /** The zones that hit, most hits first, ties by name; their events in the reports' order. */
  private zoneHits(): ZoneHits[] {
    const all = [...this.zones].map(([zone, m]) => ({
      zone,
      hits: [...m.values()].reduce((a, b) => a + b, 0),
      events: Object.fromEntries(this.sortedEvents(m.keys()).map((e) => [e, m.get(e)!])),
    }));
    all.sort((a, b) => b.hits - a.hits || (a.zone < b.zone ? -1 : a.zone > b.zone ? 1 : 0));
    return all;
  }

  /** A connection's outcome: one of CONNECTION_EVENTS, or a later version's word with a tier. */
  private isConnection(event: string): boolean {
    if ((CONNECTION_EVENTS as readonly string[]).includes(event)) return true;
    for (const m of this.tiers.values()) if (m.has(event)) return true;
    return false;
  }

  /** Event words in the order reports show them: CONNECTION_EVENTS', then by name. */
  private sortedEvents(words: Iterable<string>): string[] {
    return [...words].sort((a, b) =>
      rank(a, CONNECTION_EVENTS) - rank(b, CONNECTION_EVENTS) || (a < b ? -1 : a > b ? 1 : 0)
    );
  }

  private sortedTiers(): string[] {
    const known = TIER_KEYS.filter((t) => this.tiers.has(t));
    return [...known, ...[...this.tiers.keys()].filter((t) => !known.includes(t as TierKey))];
  }

  /**
   * Per hour when the period spans up to HOURLY_UP_TO_MS, else per UTC day;
   * every bar from the period's start (or the first stamp) to its end (or
   * the last stamp), empty ones too.
   */
  private buckets(): { buckets: Bucket[]; bucketMs: number } {
    if (this.firstMs === undefined || this.lastMs === undefined) {
      return { buckets: [], bucketMs: HOUR_MS };
    }
    const fromMs = this.period.sinceMs ?? this.firstMs;
    const toMs = this.period.untilMs === undefined ? this.lastMs : this.period.untilMs - 1;
    const firstHour = Math.floor(fromMs / HOUR_MS);
    const lastHour = Math.floor(toMs / HOUR_MS);
    const bucketMs = (lastHour - firstHour + 1) * HOUR_MS <= HOURLY_UP_TO_MS ? HOUR_MS : DAY_MS;
    const bars = new Map<number, Record<string, number>>();
    const first = Math.floor(fromMs / bucketMs);
    const last = Math.floor(toMs / bucketMs);
    for (let b = first; b <= last; b++) bars.set(b, {});
    for (const [h, counts] of this.hours) {
      const bar = bars.get(Math.floor((h * HOUR_MS) / bucketMs));
      if (!bar) continue;
      for (const [e, c] of counts) bar[e] = (bar[e] ?? 0) + c;
    }
    return {
      buckets: [...bars].map(([b, counts]) => ({ startMs: b * bucketMs, counts })),
      bucketMs,
    };
  }
}

/** The word a record is counted under: its event word, WARNING, FATAL, or INFO. */
function wordOf(r: LogRecord): string {
  switch (r.kind) {
    case "outcome":
    case "event":
      return r.event;
    default:
      return r.kind.toUpperCase();
  }
}

function count(m: Map<string, Counted>, r: OutcomeRecord): void {
  const c = m.get(r.ip);
  if (c) {
    c.count++;
    if (r.ptr !== undefined && r.ptr !== c.ptr) c.ptr = own(r.ptr);
    if (r.tier !== undefined) c.tier = r.tier;
    if (r.data !== undefined && r.data !== c.data) c.data = own(r.data);
  } else {
    m.set(own(r.ip), {
      count: 1,
      ptr: r.ptr === undefined ? undefined : own(r.ptr),
      tier: r.tier ?? NO_TIER,
      data: r.data === undefined ? undefined : own(r.data),
    });
  }
}

/**
 * A copy of `s` that holds nothing else: a string cut from a line is a view
 * of the chunk read (1 MB), which a key kept for the whole run would keep.
 */
function own(s: string): string {
  return (" " + s).slice(1);
}

/** The `n` clients counted most, most first; ties by address, so the list is the same every run. */
export function topOf(m: ReadonlyMap<string, Counted>, n: number): Talker[] {
  const all = [...m].map(([ip, c]) => ({
    ip,
    ptr: c.ptr,
    tier: c.tier,
    count: c.count,
    data: c.data,
  }));
  all.sort((a, b) => b.count - a.count || (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
  return all.slice(0, n);
}

function rank(k: string, order: readonly string[]): number {
  const i = order.indexOf(k);
  return i < 0 ? order.length : i;
}
