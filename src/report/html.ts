/**
 * The report as one self-contained HTML page (`--html FILE`): the charts
 * (chart.ts's SVG, inline), the tables behind them, no script, no font or
 * style from elsewhere. Every text that came from a log line is escaped
 * here (escapeHtml), and the page's Content-Security-Policy allows no
 * script and no fetch at all, should anything slip through.
 */
import {
  CONNECTION_EVENTS,
  type Percentiles,
  type Summary,
  type Talker,
  TIER_KEYS,
} from "./stats.ts";
import { EVENT_COLORS } from "./chart.ts";
import { ignoredText } from "./text.ts";

/** Text for HTML, in an element or a quoted attribute: & < > " ' escaped. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A time to the second, UTC: `2026-12-01 08:00:00`. */
const iso = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace("T", " ");
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const sec = (x: number) => x.toFixed(3);

const STYLE = `
body { font: 14px/1.4 sans-serif; color: #222; margin: 24px auto; max-width: 1000px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.sub { color: #555; margin: 0 0 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
.card { border: 1px solid #ddd; border-left: 6px solid var(--c); border-radius: 4px; padding: 6px 12px; min-width: 120px; }
.card b { display: block; font-size: 20px; }
.card span { color: #555; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child, .text { text-align: left; }
th { background: #f5f5f5; }
td.text { font-family: monospace; word-break: break-all; max-width: 420px; }
figure { margin: 8px 0; overflow-x: auto; }
footer { color: #777; margin-top: 32px; font-size: 12px; }
`;

function table(
  head: readonly string[],
  rows: readonly (readonly string[])[],
  text = new Set<number>(),
): string {
  const th = head.map((h, i) => `<th${text.has(i) ? ' class="text"' : ""}>${escapeHtml(h)}</th>`)
    .join("");
  const trs = rows.map((r) =>
    "<tr>" + r.map((c, i) =>
      `<td${text.has(i) ? ' class="text"' : ""}>${escapeHtml(c)}</td>`
    ).join("") +
    "</tr>"
  );
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${trs.join("\n")}\n</tbody></table>`;
}

function figures(p: Percentiles): string[] {
  return [String(p.n), sec(p.p50), sec(p.p90), sec(p.p99), sec(p.max)];
}

function talkers(list: readonly Talker[], data: boolean): string {
  if (list.length === 0) return "<p>None.</p>";
  return table(
    ["count", "ip", "tier", "ptr", ...(data ? ["first bytes, last time"] : [])],
    list.map((t) => [
      String(t.count),
      t.ip,
      t.tier,
      t.ptr ?? "-",
      ...(data ? [t.data ?? "-"] : []),
    ]),
    new Set([1, 3, 4]),
  );
}

/** The lists' section: each zone's hits, in all and per outcome word; "" when no line had lists. */
function lists(s: Summary): string {
  const { lines, scored, zones } = s.lists;
  if (lines === 0) return "";
  const events = CONNECTION_EVENTS.filter((e) => zones.some((z) => z.events[e] !== undefined));
  return `<h2>Lists</h2>\n<p>${lines} connections screened with lists, ${scored} scored.</p>\n` +
    (zones.length === 0 ? "<p>No zone hit.</p>" : table(
      ["zone", "hits", ...events],
      zones.map((z) => [z.zone, String(z.hits), ...events.map((e) => String(z.events[e] ?? 0))]),
      new Set([0]),
    ));
}

/** The page; `charts` is chart.ts's SVG by name (outcomes over time, seconds waited, top clients). */
export function formatHtml(s: Summary, charts: ReadonlyMap<string, string>): string {
  const period = s.firstMs === undefined || s.lastMs === undefined
    ? "no stamped line"
    : `${iso(s.firstMs)} to ${iso(s.lastMs)} UTC`;
  const figure = (name: string) => {
    const svg = charts.get(name);
    return svg ? `<figure>${svg}</figure>` : "";
  };
  const { input, cost } = s;
  const cards = Object.entries(s.shares).map(([event, share]) =>
    `<div class="card" style="--c: ${EVENT_COLORS[event] ?? "#79706e"}"><span>${
      escapeHtml(event)
    }</span>` +
    `<b>${s.events[event]}</b><span>${pct(share)}</span></div>`
  ).join("\n");
  const tiers = TIER_KEYS.filter((t) => s.tiers[t]);
  const outcomeRows = Object.entries(s.shares).map(([event, share]) => [
    event,
    String(s.events[event]),
    pct(share),
    ...tiers.map((t) => String(s.tiers[t]![event] ?? 0)),
  ]);
  const waitedRows = Object.entries(s.waitedByTier).flatMap(([tier, byEvent]) =>
    Object.entries(byEvent).map(([event, p]) => [`${event} ${tier}`, ...figures(p)])
  );
  const otherEvents = Object.entries(s.events).filter(([e]) => !(e in s.shares));
  const body = [
    `<h1>smtp-delay report</h1>`,
    `<p class="sub">${escapeHtml(period)}: ${s.connections} connections. ` +
    `${input.read} lines read: ${input.ours} of smtp-delay counted, ${input.other} of other ` +
    `programs, ${input.damaged} damaged, ${input.outside} outside the period.</p>`,
    `<div class="cards">${cards}</div>`,
    `<h2>Outcomes</h2>`,
    figure("outcomes over time"),
    table(["event", "count", "share", ...tiers], outcomeRows),
    ignoredText(s) ? `<p>${escapeHtml(ignoredText(s))}.</p>` : "",
    otherEvents.length
      ? `<p>Other lines: ${escapeHtml(otherEvents.map(([e, n]) => `${e} ${n}`).join(", "))}.</p>`
      : "",
    `<h2>How long clients wait before they talk early or hang up</h2>`,
    figure("seconds waited"),
    table(["event tier", "n", "p50 s", "p90 s", "p99 s", "max s"], waitedRows),
    lists(s),
    `<h2>What the delay costs the clients that pass</h2>`,
    cost.seconds
      ? `<p>${cost.passed} connections from ${cost.clients} clients waited ` +
        `${cost.seconds.total.toFixed(1)} s in all: p50 ${sec(cost.seconds.p50)} s, ` +
        `p90 ${sec(cost.seconds.p90)} s, p99 ${sec(cost.seconds.p99)} s.</p>` +
        table(
          ["tier", "connections", "p50 s", "p90 s", "p99 s", "max s", "total s"],
          Object.entries(cost.byTier).map(([tier, p]) => [tier, ...figures(p), p.total.toFixed(1)]),
        )
      : "<p>No client passed.</p>",
    s.topListed.length > 0
      ? `<h2>Top early talkers, refused and listed clients</h2>`
      : `<h2>Top early talkers and refused clients</h2>`,
    figure("top clients"),
    `<h3>Early talkers</h3>`,
    talkers(s.topEarly, true),
    `<h3>Refused</h3>`,
    talkers(s.topRefused, false),
    s.lists.lines > 0 || s.topListed.length > 0
      ? `<h3>Listed</h3>\n${talkers(s.topListed, false)}`
      : "",
    `<footer>smtp-delay report; times in UTC; percentiles are nearest-rank over the seconds ` +
    `logged.</footer>`,
  ];
  return [
    "<!doctype html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>smtp-delay report: ${escapeHtml(period)}</title>`,
    `<style>${STYLE}</style>`,
    "</head>",
    "<body>",
    ...body.filter((b) => b !== ""),
    "</body>",
    "</html>",
    "",
  ].join("\n");
}
