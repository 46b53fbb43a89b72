/**
 * `smtp-delay report`: wiring only. The command line (options.ts) -> the
 * inputs (read.ts) -> each line parsed (parse.ts) and counted (stats.ts)
 * -> text or JSON on stdout (text.ts, json.ts), and the page and the charts
 * when asked (html.ts, chart.ts, loaded only then: Vega is big).
 * Exit 0; 100 for bad usage (thrown as a UsageError, for main.ts); 111 when
 * an input cannot be read or an output written.
 */
import * as log from "../log.ts";
import { formatJson } from "./json.ts";
import { parseReportArgs, REPORT_USAGE } from "./options.ts";
import { isOurs, parseLine } from "./parse.ts";
import { InputError, readLines, sources } from "./read.ts";
import { type Summary, Tally } from "./stats.ts";
import { formatText } from "./text.ts";

const MB = 1024 * 1024;

export async function report(args: readonly string[], nowMs = Date.now()): Promise<number> {
  const options = parseReportArgs(args, nowMs);
  if (options.help) {
    write(REPORT_USAGE + "\n");
    return 0;
  }
  const tally = new Tally(options.period);
  try {
    const list = await sources(options.inputs, options.period);
    await readLines(list, (line) => {
      const record = parseLine(line);
      if (record) tally.add(record);
      else if (isOurs(line)) tally.damaged();
      else tally.otherLine();
    }, (done, total) => {
      log.event(
        total === undefined
          ? `report: ${(done / MB).toFixed(0)} MB of stdin read`
          : `report: ${(done / MB).toFixed(0)} of ${(total / MB).toFixed(0)} MB read ` +
            `(${Math.floor((done / total) * 100)}%)`,
      );
    });
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    log.fatal(e.message);
    return 111;
  }
  const summary = tally.summary();
  try {
    if (options.htmlFile !== undefined || options.svgFile !== undefined) {
      await pictures(summary, options.htmlFile, options.svgFile);
    }
  } catch (e) {
    if (!(e instanceof OutputError)) throw e;
    log.fatal(e.message);
    return 111;
  }
  write(options.json ? formatJson(summary, options.period) : formatText(summary));
  return 0;
}

class OutputError extends Error {}

async function pictures(
  summary: Summary,
  htmlFile: string | undefined,
  svgFile: string | undefined,
): Promise<void> {
  const chart = await import("./chart.ts");
  if (htmlFile !== undefined) {
    const { formatHtml } = await import("./html.ts");
    const charts = new Map((await chart.charts(summary)).map((c) => [c.name, c.svg]));
    await writeFile(htmlFile, formatHtml(summary, charts));
  }
  if (svgFile !== undefined) {
    const title = summary.firstMs === undefined || summary.lastMs === undefined
      ? "smtp-delay report"
      : `smtp-delay report: ${stamp(summary.firstMs)} to ${stamp(summary.lastMs)} UTC`;
    const svg = await chart.allInOne(summary, title) ??
      // Nothing to draw: an empty picture that says so, rather than no file.
      `<svg xmlns="http://www.w3.org/2000/svg" width="400" height="40"><text x="10" y="25" ` +
        `font-family="sans-serif" font-size="14">smtp-delay report: no connection</text></svg>`;
    await writeFile(svgFile, svg + "\n");
  }
}

const stamp = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace("T", " ");

/** Writes `text` to `path` through a temporary file, so a reader never sees half of it. */
async function writeFile(path: string, text: string): Promise<void> {
  const temporary = `${path}.tmp${Deno.pid}`;
  try {
    await Deno.writeTextFile(temporary, text);
    await Deno.rename(temporary, path);
  } catch (e) {
    await Deno.remove(temporary).catch(() => {});
    throw new OutputError(`unable to write ${path}: ${log.reason(e)}`);
  }
}

function write(text: string): void {
  let bytes = new TextEncoder().encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(Deno.stdout.writeSync(bytes));
}
