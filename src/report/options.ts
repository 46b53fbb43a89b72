/**
 * `smtp-delay report`'s command line -> ReportOptions. Pure: the clock is
 * a parameter.
 *
 *     smtp-delay report [--since TIME] [--until TIME] [--json] [--html FILE]
 *                       [--svg FILE] [FILE|DIR ...]
 *
 * getopt.ts's long options all take a value, and --json takes none, so the
 * report reads its few options here, in the same way: options first, values
 * attached (`--since=-2h`) or separate, `--` ends them.
 */
import { UsageError } from "../usage_error.ts";
import type { Period } from "./stats.ts";

export const REPORT_USAGE = "usage: smtp-delay report [--since TIME] [--until TIME] [--json] " +
  "[--html FILE] [--svg FILE] [FILE|DIR ...]";

export interface ReportOptions {
  readonly period: Period;
  /** The JSON object on stdout instead of the text. */
  readonly json: boolean;
  /** Where to write the page and the charts, when asked. */
  readonly htmlFile: string | undefined;
  readonly svgFile: string | undefined;
  /** Files and multilog directories; empty for stdin. */
  readonly inputs: readonly string[];
  /** --help */
  readonly help: boolean;
}

const UNIT_MS: Readonly<Record<string, number>> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** ISO 8601 as the report takes it: a date, then a time, seconds, fraction and zone optional. */
const ISO =
  /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

/**
 * TIME -> ms since the epoch: `-N` + s|m|h|d|w before `nowMs`, or ISO 8601
 * (a date alone is midnight UTC; a time without a zone is local, as
 * tai64nlocal shows it). Throws a UsageError naming `option` and the value.
 */
export function parseTime(text: string, nowMs: number, option: string): number {
  const relative = /^-(\d{1,6})([smhdw])$/.exec(text);
  if (relative) return nowMs - Number(relative[1]) * UNIT_MS[relative[2]!]!;
  if (ISO.test(text)) {
    const ms = Date.parse(text.replace(" ", "T").replace(/([+-]\d{2})(\d{2})$/, "$1:$2"));
    if (!Number.isNaN(ms)) return ms;
  }
  throw new UsageError(
    `${option} wants an ISO 8601 time (2026-12-01, 2026-12-01T08:00Z) or -N with s, m, h, d ` +
      `or w (-2h, -7d), got "${text}"`,
  );
}

const WITH_VALUE = new Set(["since", "until", "html", "svg"]);
const FLAGS = new Set(["json", "help"]);

/** The command line after `report`. Throws a UsageError for what it does not take. */
export function parseReportArgs(args: readonly string[], nowMs: number): ReportOptions {
  const values: Record<string, string> = {};
  const flags = new Set<string>();
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("--") || arg.length === 2) {
      if (arg.length > 1 && arg.startsWith("-")) {
        throw new UsageError(`unknown option "${arg}" (${REPORT_USAGE})`);
      }
      break;
    }
    const equals = arg.indexOf("=");
    const name = arg.slice(2, equals < 0 ? undefined : equals);
    if (FLAGS.has(name) && equals < 0) flags.add(name);
    else if (WITH_VALUE.has(name)) {
      if (equals >= 0) values[name] = arg.slice(equals + 1);
      else if (i + 1 < args.length) values[name] = args[++i]!;
      else throw new UsageError(`option --${name} needs a value`);
    } else throw new UsageError(`unknown option "--${name}" (${REPORT_USAGE})`);
  }
  const sinceMs = values.since === undefined
    ? undefined
    : parseTime(values.since, nowMs, "--since");
  const untilMs = values.until === undefined
    ? undefined
    : parseTime(values.until, nowMs, "--until");
  if (sinceMs !== undefined && untilMs !== undefined && untilMs <= sinceMs) {
    throw new UsageError(
      `--until must come after --since, got "${values.since}" and "${values.until}"`,
    );
  }
  for (const name of ["html", "svg"]) {
    if (values[name] === "") throw new UsageError(`--${name} wants a file name, got ""`);
  }
  return {
    period: { sinceMs, untilMs },
    json: flags.has("json"),
    htmlFile: values.html,
    svgFile: values.svg,
    inputs: args.slice(i),
    help: flags.has("help"),
  };
}
