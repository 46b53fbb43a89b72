/**
 * make report-demo: the report's page on made-up logs, as a picture.
 * bench/report_logs.ts writes three days of a busy host's log (tcpserver -v
 * and the filter, multilog's stamps and 1 MB rotated files) into
 * build/report-demo/log; `smtp-delay report --html` draws the page;
 * headless Chromium takes its picture, docs/report.png (README's "Report").
 *
 *     make report-demo
 */
import { screenshot } from "../tests/fixtures/chromium.ts";
import { generateLogs } from "./report_logs.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const DENO = Deno.env.get("DENO") ?? `${ROOT}.tools/node_modules/.bin/deno`;
const PERMISSIONS = (Deno.env.get("PERMISSIONS") ?? Deno.readTextFileSync(`${ROOT}permissions`))
  .split(/\s+/).filter((w) => w);
const WORK = `${ROOT}build/report-demo`;

await Deno.remove(WORK, { recursive: true }).catch(() => {});
const { ours, files } = await generateLogs({
  dir: `${WORK}/log`,
  lines: 160_000,
  days: 3,
  tcpserver: true,
  fileBytes: 1024 * 1024,
});
console.log(`${WORK}/log: ${ours} smtp-delay lines among 160000, in ${files} files`);
const report = await new Deno.Command(DENO, {
  args: [
    "run",
    ...PERMISSIONS,
    `${ROOT}main.ts`,
    "report",
    "--html",
    `${WORK}/report.html`,
    `${WORK}/log`,
  ],
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!report.success) Deno.exit(1);
await Deno.mkdir(`${ROOT}docs`, { recursive: true });
await screenshot(`${WORK}/report.html`, `${ROOT}docs/report.png`, 1100, 3200);
console.log(`docs/report.png: the page ${WORK}/report.html, drawn by headless Chromium`);
