/**
 * The report as text for a terminal (the default output): the period and
 * the lines read, outcomes per event and tier, how long clients waited
 * before they talked early or hung up, what the delay cost the clients that
 * passed, the lists' hits per zone (when the log has lists), and the top
 * early talkers, refused and listed clients. Printable ASCII only, within
 * 100 columns (a PTR name or a zone may be cut).
 */
import {
  BIN_EDGES,
  binLabel,
  CONNECTION_EVENTS,
  type Percentiles,
  type Summary,
  type Talker,
  TIER_KEYS,
  WAITING_EVENTS,
} from "./stats.ts";

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.000Z$/, "Z");
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const sec = (x: number) => x.toFixed(3);

function row(cells: readonly (string | number)[], widths: readonly number[]): string {
  return cells.map((c, i) => {
    const s = String(c);
    return i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!);
  }).join(" ").trimEnd();
}

function duration(ms: number): string {
  const h = ms / 3_600_000;
  return h < 48 ? `${h.toFixed(1)} h` : `${(h / 24).toFixed(1)} days`;
}

/** The text report, with its last newline. */
export function formatText(s: Summary): string {
  const out: string[] = [];
  const { input } = s;
  out.push(
    s.firstMs === undefined || s.lastMs === undefined
      ? "smtp-delay report: no stamped line"
      : `smtp-delay report: ${iso(s.firstMs)} to ${iso(s.lastMs)} ` +
        `(${duration(s.lastMs - s.firstMs)})`,
  );
  out.push(
    `lines: ${input.read} read, ${input.ours} of smtp-delay counted, ${input.other} of other ` +
      `programs, ${input.damaged} damaged, ${input.outside} outside the period`,
  );

  out.push("", `Outcomes, ${s.connections} connections (share of all; per tier)`);
  const tiers = TIER_KEYS.filter((t) => s.tiers[t]);
  const w1 = [12, 9, 7, ...tiers.map(() => 9)];
  out.push("  " + row(["event", "count", "share", ...tiers], w1));
  for (const [event, share] of Object.entries(s.shares)) {
    const perTier = tiers.map((t) => s.tiers[t]![event] ?? 0);
    out.push("  " + row([event, s.events[event]!, pct(share), ...perTier], w1));
  }
  const tierTotals = tiers.map((t) => Object.values(s.tiers[t]!).reduce((a, b) => a + b, 0));
  out.push("  " + row(["all", s.connections, s.connections ? "100.0%" : "-", ...tierTotals], w1));
  const ignored = ignoredText(s);
  if (ignored) out.push(`  ${ignored}`);
  const others = Object.entries(s.events).filter(([e]) => !(e in s.shares));
  if (others.length) {
    out.push("  other lines: " + others.map(([e, n]) => `${e} ${n}`).join(", "));
  }

  out.push("", "Seconds waited before the outcome, per event and tier");
  const w2 = [20, 9, 9, 9, 9, 9];
  out.push("  " + row(["event tier", "n", "p50", "p90", "p99", "max"], w2));
  for (const [tier, byEvent] of Object.entries(s.waitedByTier)) {
    for (const [event, p] of Object.entries(byEvent)) {
      out.push("  " + row([`${event} ${tier}`, ...numbers(p)], w2));
    }
  }

  const columns: Array<[string, readonly number[]]> = [];
  for (const event of WAITING_EVENTS) {
    for (const tier of TIER_KEYS) {
      const bins = s.histogram[event]?.[tier];
      if (bins) columns.push([`${event} ${tier}`, bins]);
    }
  }
  if (columns.length) {
    out.push(
      "",
      "How long bots wait: clients per bin of seconds waited, before talking early or hanging up",
    );
    const w3 = [10, ...columns.map(([name]) => Math.max(name.length, 7))];
    out.push("  " + row(["seconds", ...columns.map(([name]) => name)], w3));
    for (let i = 0; i < BIN_EDGES.length; i++) {
      out.push("  " + row([binLabel(i), ...columns.map(([, bins]) => bins[i]!)], w3));
    }
  }

  out.push(...listsText(s));

  out.push("", "What the delay cost the clients that passed");
  const { cost } = s;
  if (cost.seconds) {
    out.push(
      `  ${cost.passed} connections from ${cost.clients} clients waited ` +
        `${cost.seconds.total.toFixed(1)} s in all: p50 ${sec(cost.seconds.p50)} s, ` +
        `p90 ${sec(cost.seconds.p90)} s, p99 ${sec(cost.seconds.p99)} s`,
    );
    for (const [tier, p] of Object.entries(cost.byTier)) {
      out.push(
        `  ${tier.padEnd(8)} ${String(p.n).padStart(9)} connections, ` +
          `${p.total.toFixed(1)} s, p50 ${sec(p.p50)} s, p90 ${sec(p.p90)} s, p99 ${sec(p.p99)} s`,
      );
    }
  } else out.push("  no client passed");

  out.push("", "Top early talkers", ...talkers(s.topEarly));
  out.push("", "Top refused clients", ...talkers(s.topRefused));
  if (s.lists.lines > 0 || s.topListed.length > 0) {
    out.push("", "Top listed clients", ...talkers(s.topListed));
  }
  return out.join("\n") + "\n";
}

/** `--action ignore` handed on: EARLY 12 (would 451), ...; "" when none. */
export function ignoredText(s: Summary): string {
  const parts = Object.entries(s.ignored).flatMap(([event, would]) =>
    Object.entries(would).map(([what, n]) => `${event} ${n} (would ${what})`)
  );
  return parts.length ? `handed on by --action ignore: ${parts.join(", ")}` : "";
}

/**
 * The lists: how many connections they scored, and each zone's hits, in all
 * and per event word; nothing when no line had lists.
 */
function listsText(s: Summary): string[] {
  const { lines, scored, zones } = s.lists;
  if (lines === 0) return [];
  const out = [
    "",
    `Lists: ${lines} connections screened with lists, ${scored} scored; the zones that hit them`,
  ];
  if (zones.length === 0) return [...out, "  no zone hit"];
  // A column per outcome word of this version (hits counts every word): within 100 columns.
  const events = CONNECTION_EVENTS.filter((e) => zones.some((z) => z.events[e] !== undefined));
  const room = 100 - 2 - 10 * (1 + events.length);
  const zoneWidth = Math.min(room, Math.max(4, ...zones.map((z) => z.zone.length)));
  const widths = [zoneWidth, 9, ...events.map(() => 9)];
  out.push("  " + row(["zone", "hits", ...events], widths));
  for (const z of zones) {
    out.push(
      "  " +
        row([z.zone.slice(0, zoneWidth), z.hits, ...events.map((e) => z.events[e] ?? 0)], widths),
    );
  }
  return out;
}

function numbers(p: Percentiles): Array<string | number> {
  return [p.n, sec(p.p50), sec(p.p90), sec(p.p99), sec(p.max)];
}

function talkers(list: readonly Talker[]): string[] {
  if (list.length === 0) return ["  none"];
  const line = (count: string, ip: string, tier: string, ptr: string) =>
    `  ${count.padStart(9)} ${ip.padEnd(39)} ${tier.padEnd(7)} ${ptr.slice(0, 40)}`.trimEnd();
  return [
    line("count", "ip", "tier", "ptr"),
    ...list.map((t) => line(String(t.count), t.ip, t.tier, t.ptr ?? "-")),
  ];
}
