/**
 * Prometheus's text exposition format, version 0.0.4. Pure: families of
 * samples in, the body of a `GET /metrics` answer out. Each family gets its
 * `# HELP` and `# TYPE` lines, then its samples; label values are escaped
 * (backslash, double quote, newline), HELP text too (backslash, newline); a
 * histogram's buckets are cumulative, end with `le="+Inf"`, and are followed
 * by `_sum` and `_count`.
 */

/** The Content-Type of the format. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Label names and their values, in the order they are written. */
export type Labels = ReadonlyArray<readonly [name: string, value: string]>;

/** One sample of a counter or a gauge. */
export interface Sample {
  readonly labels: Labels;
  readonly value: number;
}

/** One histogram series: the count in each bucket (not cumulative), the sum of what was observed. */
export interface HistogramSample {
  readonly labels: Labels;
  /** Upper bounds of the buckets, increasing; +Inf is added. */
  readonly bounds: readonly number[];
  /** Observations per bucket: `counts[i]` fell in (bounds[i-1], bounds[i]]; one more for above. */
  readonly counts: readonly number[];
  readonly sum: number;
}

export type Family =
  | {
    readonly name: string;
    readonly help: string;
    readonly type: "counter" | "gauge";
    readonly samples: readonly Sample[];
  }
  | {
    readonly name: string;
    readonly help: string;
    readonly type: "histogram";
    readonly samples: readonly HistogramSample[];
  };

/** A label value as the format wants it inside double quotes. */
export function escapeLabel(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => c === "\n" ? "\\n" : `\\${c}`);
}

/** HELP text: backslash and newline escaped (a double quote is not). */
export function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => c === "\n" ? "\\n" : "\\\\");
}

/** A sample value: Go's float syntax, with +Inf, -Inf and NaN. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function labelText(labels: Labels): string {
  if (labels.length === 0) return "";
  return `{${
    labels.map(([name, value]) => {
      if (!validName(name, true)) throw new Error(`not a label name: "${name}"`);
      return `${name}="${escapeLabel(value)}"`;
    }).join(",")
  }}`;
}

/** Whether `name` is a metric or label name of the format. */
export function validName(name: string, label = false): boolean {
  return (label ? /^[a-zA-Z_][a-zA-Z0-9_]*$/ : /^[a-zA-Z_:][a-zA-Z0-9_:]*$/).test(name);
}

function histogramLines(name: string, s: HistogramSample): string[] {
  if (s.counts.length !== s.bounds.length + 1) {
    throw new Error(
      `histogram ${name} has ${s.counts.length} counts for ${s.bounds.length} bounds`,
    );
  }
  const lines: string[] = [];
  let cumulative = 0;
  s.bounds.forEach((bound, i) => {
    cumulative += s.counts[i]!;
    lines.push(
      `${name}_bucket${labelText([...s.labels, ["le", formatValue(bound)]])} ${cumulative}`,
    );
  });
  cumulative += s.counts[s.bounds.length]!;
  lines.push(`${name}_bucket${labelText([...s.labels, ["le", "+Inf"]])} ${cumulative}`);
  lines.push(`${name}_sum${labelText(s.labels)} ${formatValue(s.sum)}`);
  lines.push(`${name}_count${labelText(s.labels)} ${cumulative}`);
  return lines;
}

/** The body: every family, in order, each line ending in a newline. */
export function render(families: readonly Family[]): string {
  const lines: string[] = [];
  for (const f of families) {
    if (!validName(f.name)) throw new Error(`not a metric name: "${f.name}"`);
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    if (f.type === "histogram") {
      for (const s of f.samples) lines.push(...histogramLines(f.name, s));
    } else {
      for (const s of f.samples) {
        lines.push(`${f.name}${labelText(s.labels)} ${formatValue(s.value)}`);
      }
    }
  }
  return lines.map((l) => l + "\n").join("");
}
