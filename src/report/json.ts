/**
 * The report as one JSON object (`--json`): the Summary with its times as
 * ISO 8601 (UTC), its seconds rounded to the millisecond the log has, and
 * snake_case keys. Keys: see README's "Report".
 */
import { BIN_EDGES, binLabel, type Percentiles, type Summary, type Talker } from "./stats.ts";
import type { Period } from "./stats.ts";

const iso = (ms: number | undefined) => ms === undefined ? null : new Date(ms).toISOString();
const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

function figures(p: Percentiles) {
  return {
    n: p.n,
    p50: round(p.p50, 3),
    p90: round(p.p90, 3),
    p99: round(p.p99, 3),
    max: round(p.max, 3),
    total: round(p.total, 3),
  };
}

function mapValues<T, U>(o: Readonly<Record<string, T>>, f: (t: T) => U): Record<string, U> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));
}

const talker = (t: Talker) => ({
  ip: t.ip,
  ptr: t.ptr ?? null,
  tier: t.tier,
  count: t.count,
  ...(t.data === undefined ? {} : { data: t.data }),
});

/** The JSON object of a summary (a plain value: JSON.stringify writes it). */
export function reportObject(s: Summary, period: Period): Record<string, unknown> {
  return {
    first: iso(s.firstMs),
    last: iso(s.lastMs),
    since: iso(period.sinceMs),
    until: iso(period.untilMs),
    lines: s.input.ours,
    input: {
      read: s.input.read,
      other: s.input.other,
      damaged: s.input.damaged,
      outside: s.input.outside,
    },
    connections: s.connections,
    events: s.events,
    shares: mapValues(s.shares, (x) => round(x, 4)),
    tiers: s.tiers,
    waited: mapValues(s.waited, figures),
    waited_by_tier: mapValues(s.waitedByTier, (o) => mapValues(o, figures)),
    histogram: {
      bins: BIN_EDGES.map((_, i) => binLabel(i)),
      ...s.histogram,
    },
    cost: {
      passed: s.cost.passed,
      clients: s.cost.clients,
      seconds: s.cost.seconds ? figures(s.cost.seconds) : null,
      by_tier: mapValues(s.cost.byTier, figures),
    },
    ignored: s.ignored,
    top_early: s.topEarly.map(talker),
    top_refused: s.topRefused.map(talker),
    top_listed: s.topListed.map(talker),
    lists: {
      lines: s.lists.lines,
      scored: s.lists.scored,
      zones: s.lists.zones.map((z) => ({ zone: z.zone, hits: z.hits, events: z.events })),
    },
    over_time: {
      bucket: s.bucketMs === 3_600_000 ? "hour" : "day",
      buckets: s.buckets.map((b) => ({ start: iso(b.startMs), ...b.counts })),
    },
  };
}

/** The JSON text, with its newline. */
export function formatJson(s: Summary, period: Period): string {
  return JSON.stringify(reportObject(s, period), null, 2) + "\n";
}
