/**
 * The report's charts as SVG text, drawn by Vega-Lite and Vega on the
 * server (no browser, no canvas: Vega's SVG string renderer, text measured
 * by its estimate): outcomes over time (stacked, per hour or per day), the
 * seconds waited before talking early or hanging up per tier, and the top
 * early talkers, refused and listed clients. The SVG needs no script and no
 * network to be seen; Vega escapes the text it writes (names, addresses) in
 * text and attributes alike.
 *
 * Vega is loaded only here, and this file only by report.ts for --html and
 * --svg: the filter never loads it.
 */
import * as vega from "npm:vega@6.4.0";
import * as vl from "npm:vega-lite@6.5.0";
import type { Summary } from "./stats.ts";
import { BIN_EDGES, binLabel, CONNECTION_EVENTS, TIER_KEYS, WAITING_EVENTS } from "./stats.ts";

type Spec = vl.TopLevelSpec;
// Sub-specs of a concatenation: the same shapes without the top level's keys.
type Unit = Record<string, unknown>;

/** One colour per outcome, the same in every chart: green passed, red early, ... */
export const EVENT_COLORS: Readonly<Record<string, string>> = {
  PASS: "#54a24b",
  EARLY: "#e45756",
  CLOSED: "#f58518",
  REFUSED: "#b279a2",
  LISTED: "#439894",
  BUSY: "#9d755d",
};
export const TIER_COLORS: Readonly<Record<string, string>> = {
  ptr: "#4c78a8",
  dynamic: "#f58518",
  noptr: "#e45756",
  "-": "#bab0ac",
};

const WIDTH = 760;

function eventScale(events: readonly string[]) {
  const domain = [
    ...CONNECTION_EVENTS.filter((e) => events.includes(e)),
    ...events.filter((e) => !(CONNECTION_EVENTS as readonly string[]).includes(e)),
  ];
  return { domain, range: domain.map((e, i) => EVENT_COLORS[e] ?? SPARE[i % SPARE.length]!) };
}
const SPARE = ["#72b7b2", "#eeca3b", "#ff9da6", "#79706e"];

function tierScale(tiers: readonly string[]) {
  return { domain: tiers, range: tiers.map((t) => TIER_COLORS[t] ?? "#79706e") };
}

/** Outcomes over time, stacked per hour or per day; undefined without stamped lines. */
export function timeChart(s: Summary): Unit | undefined {
  if (s.buckets.length === 0) return undefined;
  const events = Object.keys(s.shares);
  const hourly = s.bucketMs === 3_600_000;
  const scale = eventScale(events);
  // `o`: the stacking order, PASS at the bottom, as in the legend.
  const values = s.buckets.flatMap((b) =>
    events.map((event) => ({
      t: b.startMs,
      event,
      o: scale.domain.indexOf(event),
      count: b.counts[event] ?? 0,
    }))
  );
  return {
    title: `Outcomes per ${hourly ? "hour" : "day"} (UTC)`,
    width: WIDTH,
    height: 220,
    data: { values },
    mark: { type: "bar", ...(s.buckets.length > 200 ? {} : { stroke: "white", strokeWidth: 0.5 }) },
    encoding: {
      x: {
        field: "t",
        type: "temporal",
        timeUnit: { unit: hourly ? "yearmonthdatehours" : "yearmonthdate", utc: true },
        title: null,
        axis: { format: hourly ? "%b %d %H:00" : "%b %d", labelAngle: 0, labelOverlap: true },
      },
      y: {
        field: "count",
        type: "quantitative",
        aggregate: "sum",
        title: "connections",
        axis: { tickMinStep: 1, format: "~s" },
      },
      color: {
        field: "event",
        type: "nominal",
        scale,
        sort: scale.domain,
        title: "outcome",
        legend: { orient: "top", direction: "horizontal" },
      },
      order: { field: "o", type: "quantitative", sort: "ascending" },
    },
  };
}

/**
 * The seconds waited before talking early (EARLY) and before hanging up
 * (CLOSED), per tier: each bin's share of the tier's clients, side by
 * side, one chart above the other; undefined when neither happened.
 */
export function waitChart(s: Summary): Unit | undefined {
  const parts: Unit[] = [];
  const tiersSeen = TIER_KEYS.filter((t) =>
    WAITING_EVENTS.some((event) => s.histogram[event]?.[t] !== undefined)
  );
  for (const event of WAITING_EVENTS) {
    const values: Array<Record<string, unknown>> = [];
    const counts: string[] = [];
    for (const tier of tiersSeen) {
      const bins = s.histogram[event]?.[tier];
      if (!bins) continue;
      const n = bins.reduce((a, b) => a + b, 0);
      counts.push(`${tier} ${n}`);
      bins.forEach((count, i) => values.push({ tier, bin: binLabel(i), share: count / n, count }));
    }
    if (values.length === 0) continue;
    parts.push({
      title: {
        text: event === "EARLY"
          ? "Seconds waited before talking early (EARLY)"
          : "Seconds waited before hanging up (CLOSED)",
        subtitle: `share of each tier's clients; clients: ${counts.join(", ")}`,
      },
      width: WIDTH - 60,
      height: 130,
      data: { values },
      mark: "bar",
      encoding: {
        x: {
          field: "bin",
          type: "ordinal",
          sort: BIN_EDGES.map((_, i) => binLabel(i)),
          title: "seconds waited",
          axis: { labelAngle: 0 },
        },
        xOffset: { field: "tier", type: "nominal", sort: tiersSeen },
        y: { field: "share", type: "quantitative", title: null, axis: { format: ".0%" } },
        color: {
          field: "tier",
          type: "nominal",
          scale: tierScale(tiersSeen),
          title: "tier",
          legend: { orient: "top", direction: "horizontal" },
        },
      },
    });
  }
  if (parts.length === 0) return undefined;
  return parts.length === 1 ? parts[0] : { vconcat: parts, spacing: 24 };
}

/** The top early talkers, refused and listed clients, bars coloured by tier; undefined when none. */
export function topChart(s: Summary): Unit | undefined {
  const part = (title: string, list: Summary["topEarly"]): Unit | undefined => {
    if (list.length === 0) return undefined;
    const values = list.map((t, rank) => ({
      label: `${t.ip}  ${t.ptr ?? "(no PTR)"}`,
      rank,
      tier: t.tier,
      count: t.count,
    }));
    const tiers = TIER_KEYS.filter((t) => values.some((v) => v.tier === t));
    return {
      title,
      width: WIDTH - 380,
      height: { step: 18 },
      data: { values },
      mark: "bar",
      encoding: {
        y: {
          field: "label",
          type: "nominal",
          sort: { field: "rank", order: "ascending" },
          title: null,
          axis: { labelLimit: 340 },
        },
        x: {
          field: "count",
          type: "quantitative",
          title: "connections",
          axis: { tickMinStep: 1, format: "~s" },
        },
        color: { field: "tier", type: "nominal", scale: tierScale(tiers), title: "tier" },
      },
    };
  };
  const parts = [
    part("Top early talkers", s.topEarly),
    part("Top refused clients", s.topRefused),
    part("Top listed clients", s.topListed),
  ].filter((p) => p !== undefined);
  if (parts.length === 0) return undefined;
  return parts.length === 1
    ? parts[0]
    : { vconcat: parts, spacing: 24, resolve: { scale: { color: "independent" } } };
}

const CONFIG = {
  background: "white",
  font: "sans-serif",
  view: { stroke: null },
  title: { anchor: "start", fontSize: 14 },
  axis: { labelFontSize: 11, titleFontSize: 11 },
  legend: { labelFontSize: 11, titleFontSize: 11 },
};

/** Vega-Lite's warnings (a scale it merged, say) are for a spec's author: not for the user's terminal. */
const QUIET = {
  level() {
    return QUIET;
  },
  error(...args: readonly unknown[]) {
    throw new Error(`vega-lite: ${args.join(" ")}`);
  },
  warn() {
    return QUIET;
  },
  info() {
    return QUIET;
  },
  debug() {
    return QUIET;
  },
};

/** One chart (a unit, facet or concatenation) -> SVG text. */
export async function render(unit: Unit, title?: string): Promise<string> {
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    config: CONFIG,
    padding: 12,
    ...(title ? { title: { text: title, fontSize: 16 } } : {}),
    ...unit,
  } as unknown as Spec;
  const compiled = vl.compile(spec, { logger: QUIET }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" }).logLevel(vega.None);
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** The charts there is data for, in the page's order, each as SVG text. */
export async function charts(s: Summary): Promise<{ name: string; svg: string }[]> {
  const units: Array<[string, Unit | undefined]> = [
    ["outcomes over time", timeChart(s)],
    ["seconds waited", waitChart(s)],
    ["top clients", topChart(s)],
  ];
  const out: { name: string; svg: string }[] = [];
  for (const [name, unit] of units) if (unit) out.push({ name, svg: await render(unit) });
  return out;
}

/** Every chart in one SVG (--svg), under `title`; undefined when there is nothing to draw. */
export async function allInOne(s: Summary, title: string): Promise<string | undefined> {
  const units = [timeChart(s), waitChart(s), topChart(s)].filter((u) => u !== undefined);
  if (units.length === 0) return undefined;
  return await render(
    { vconcat: units, spacing: 28, resolve: { scale: { color: "independent" } } },
    title,
  );
}
