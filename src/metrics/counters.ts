/**
 * The counters, counted from log lines: one connection per outcome line (by
 * its event word and tier) and per BUSY line, its wait in a histogram by
 * tier, the zones of the lists that hit (`lists=`), and the store's
 * failures (the two warnings that say the memory was not reached). Pure: a
 * record in (src/report/parse.ts reads the line), the families of
 * src/metrics/exposition.ts out. serve counts the lines it
 * writes (src/log.ts hands each one over), `smtp-delay metrics` the lines a
 * multilog directory holds: the same function, the same counts.
 */
import { type LogRecord, OUTCOME_EVENTS, type Tier, TIERS } from "../report/parse.ts";
import type { Family, HistogramSample, Sample } from "./exposition.ts";

/**
 * The wait histogram's upper bounds, in seconds, for delays of 0.25 to 300
 * s: early talkers are caught within a few hundredths of a second; 0.3, 17
 * and 27 lie just above the default delays (0.25, 16, 26), so that the
 * clients that waited a whole default delay fall in the bucket above it and
 * those that left or talked before it in the buckets below.
 */
export const WAIT_BOUNDS: readonly number[] = Object.freeze([
  0.05,
  0.1,
  0.3,
  0.5,
  1,
  2,
  5,
  10,
  17,
  27,
  60,
  120,
  300,
]);

/** The warnings that say the store failed (src/screen.ts at the arrival, src/act.ts after). */
export const STORE_FAILURES: readonly string[] = Object.freeze([
  "going on without memory: ",
  "unable to remember the outcome: ",
]);

/**
 * Distinct zones counted apart in smtp_delay_list_hits_total: zones are
 * the admin's (32 per client at most), but each is a series to every
 * scraper, so a log with more (settings that change per client, over
 * months) cannot grow the page without bound. Zones beyond count under
 * OTHER_ZONE.
 */
export const MAX_ZONES = 64;
/** The label of the zones beyond MAX_ZONES: not a zone, which has a dot. */
export const OTHER_ZONE = "other";

/** What only serve knows: its clients and children now, and their limits. */
export interface Gauges {
  readonly waiting: number;
  readonly waitingLimit: number;
  readonly children: number;
  readonly childrenLimit: number;
}

/** A tier as a label: the tier, or `-` for none. */
type TierLabel = Tier | "-";
const TIER_LABELS: readonly TierLabel[] = [...TIERS, "-"];

interface Waits {
  readonly counts: number[];
  sum: number;
}

export class Counters {
  /** Connections by `EVENT tier`; every outcome word and tier, and BUSY, start at 0. */
  private readonly connections = new Map<string, number>();
  private readonly waits = new Map<TierLabel, Waits>();
  private storeFailures = 0;
  /** Hits by zone, in the order first seen; MAX_ZONES of them, and OTHER_ZONE. */
  private readonly zones = new Map<string, number>();

  constructor() {
    for (const event of OUTCOME_EVENTS) {
      for (const tier of TIER_LABELS) this.connections.set(`${event} ${tier}`, 0);
    }
    this.connections.set("BUSY -", 0);
    for (const tier of TIER_LABELS) {
      this.waits.set(tier, { counts: new Array(WAIT_BOUNDS.length + 1).fill(0), sum: 0 });
    }
  }

  /** Counts what one line said (undefined: not ours, or damaged: nothing to count). */
  count(record: LogRecord | undefined): void {
    if (record === undefined) return;
    switch (record.kind) {
      case "outcome": {
        const tier: TierLabel = record.tier ?? "-";
        this.add(`${record.event} ${tier}`);
        this.observe(tier, record.waitedSeconds);
        if (record.lists !== undefined) {
          for (const zone of record.lists) this.hit(zone);
        }
        return;
      }
      case "busy":
        this.add("BUSY -");
        return;
      case "warning":
        if (STORE_FAILURES.some((p) => record.message.startsWith(p))) this.storeFailures++;
        return;
    }
  }

  private add(key: string): void {
    this.connections.set(key, (this.connections.get(key) ?? 0) + 1);
  }

  private hit(zone: string): void {
    if (zone === "") return;
    let n = this.zones.get(zone);
    if (n === undefined) {
      if (this.zones.size >= MAX_ZONES) zone = OTHER_ZONE;
      else zone = (" " + zone).slice(1); // not a view of the line read: kept for the whole run
      n = this.zones.get(zone) ?? 0;
    }
    this.zones.set(zone, n + 1);
  }

  private observe(tier: TierLabel, seconds: number): void {
    const waits = this.waits.get(tier)!;
    let i = 0;
    while (i < WAIT_BOUNDS.length && seconds > WAIT_BOUNDS[i]!) i++;
    waits.counts[i]!++;
    waits.sum += seconds;
  }

  /** The families to expose; serve's gauges when given. */
  families(gauges?: Gauges): Family[] {
    const connections: Sample[] = [...this.connections].map(([key, value]) => {
      const [event, tier] = key.split(" ") as [string, string];
      return { labels: [["event", event], ["tier", tier]], value };
    });
    const waits: HistogramSample[] = [...this.waits].map(([tier, w]) => ({
      labels: [["tier", tier]],
      bounds: WAIT_BOUNDS,
      counts: w.counts,
      // Three decimals as the lines have them: a sum of many stays as exact as its terms.
      sum: Math.round(w.sum * 1000) / 1000,
    }));
    const families: Family[] = [
      {
        name: "smtp_delay_connections_total",
        help: "Connections by outcome line: its event word, and its tier (- for none); " +
          "BUSY for a client serve turned away before its screening.",
        type: "counter",
        samples: connections,
      },
      {
        name: "smtp_delay_list_hits_total",
        help: "Outcome lines on which each zone of the lists hit (lists=), by zone; " +
          `zones beyond the first ${MAX_ZONES} as ${OTHER_ZONE}.`,
        type: "counter",
        samples: [...this.zones].map(([zone, value]) => ({ labels: [["zone", zone]], value })),
      },
      {
        name: "smtp_delay_store_failures_total",
        help: "Times the memory's store failed (the filter went on without memory).",
        type: "counter",
        samples: [{ labels: [], value: this.storeFailures }],
      },
      {
        name: "smtp_delay_wait_seconds",
        help: "Seconds from a client's arrival to its outcome, by tier (- for none).",
        type: "histogram",
        samples: waits,
      },
    ];
    if (gauges) {
      const gauge = (name: string, help: string, value: number): Family => ({
        name,
        help,
        type: "gauge",
        samples: [{ labels: [], value }],
      });
      families.push(
        gauge("smtp_delay_waiting", "Clients in the screening now.", gauges.waiting),
        gauge(
          "smtp_delay_waiting_limit",
          "--waiting: clients in the screening at most.",
          gauges.waitingLimit,
        ),
        gauge("smtp_delay_children", "Sessions handed on and running now.", gauges.children),
        gauge("smtp_delay_children_limit", "-c: sessions running at most.", gauges.childrenLimit),
      );
    }
    return families;
  }
}
