/**
 * make bench-report: `smtp-delay report` on a month of a busy host's logs,
 * made up by bench/report_logs.ts (kept in build/bench-report/ for the next
 * run), on one core (taskset -c 0): 5,000,000 smtp-delay lines (the worst
 * case: every line one of ours), and 5,000,000 lines as tcpserver -v writes
 * them around the filter's (one in four ours). Wall and CPU seconds per
 * run, medians of RUNS, the largest RSS; then --html once. Prints a table
 * and writes bench/results/report.md.
 *
 *     RUNS=3 LINES=5000000 DAYS=30 make bench-report
 */
import { generateLogs } from "./report_logs.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const DENO = Deno.env.get("DENO") ?? `${ROOT}.tools/node_modules/.bin/deno`;
const PERMISSIONS = (Deno.env.get("PERMISSIONS") ?? Deno.readTextFileSync(`${ROOT}permissions`))
  .split(/\s+/).filter((w) => w);
const RUNS = Number(Deno.env.get("RUNS") ?? 3);
const LINES = Number(Deno.env.get("LINES") ?? 5_000_000);
const DAYS = Number(Deno.env.get("DAYS") ?? 30);
const WORK = `${ROOT}build/bench-report`;

interface Run {
  wall: number;
  cpu: number;
  rssMb: number;
}

/** The logs of `name`, made once for these LINES and DAYS. */
async function logs(name: string, tcpserver: boolean): Promise<{ dir: string; bytes: number }> {
  const dir = `${WORK}/${name}-${LINES}-${DAYS}`;
  const done = `${dir}.done`;
  try {
    await Deno.stat(done);
  } catch {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    console.error(`bench-report: making ${LINES} lines in ${dir}`);
    await generateLogs({ dir, lines: LINES, days: DAYS, tcpserver });
    await Deno.writeTextFile(done, "");
  }
  let bytes = 0;
  for await (const e of Deno.readDir(dir)) bytes += (await Deno.stat(`${dir}/${e.name}`)).size;
  return { dir, bytes };
}

/** One report under /usr/bin/time, on CPU 0. */
async function once(args: string[]): Promise<Run & { stdout: string }> {
  const out = await new Deno.Command("/usr/bin/time", {
    args: [
      "-f",
      "%e %U %S %M",
      "taskset",
      "-c",
      "0",
      DENO,
      "run",
      ...PERMISSIONS,
      `${ROOT}main.ts`,
      "report",
      ...args,
    ],
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr).trim().split("\n");
  if (!out.success) throw new Error(`report failed: ${err.join("\n")}`);
  const [wall, user, sys, rssKb] = err.at(-1)!.split(" ").map(Number) as [
    number,
    number,
    number,
    number,
  ];
  return {
    wall,
    cpu: user + sys,
    rssMb: rssKb / 1024,
    stdout: new TextDecoder().decode(out.stdout),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const f = (x: number, d = 1) => x.toFixed(d);

async function measure(name: string, tcpserver: boolean) {
  const { dir, bytes } = await logs(name, tcpserver);
  const runs: Run[] = [];
  let ours = 0;
  for (let i = 0; i < RUNS; i++) {
    const r = await once(["--json", dir]);
    ours = JSON.parse(r.stdout).lines;
    runs.push(r);
    console.error(
      `bench-report: ${name} run ${i + 1}: ${f(r.wall, 2)} s wall, ${f(r.cpu, 2)} s CPU`,
    );
  }
  const html = await once(["--html", `${WORK}/${name}.html`, dir]);
  return {
    name,
    lines: LINES,
    ours,
    mb: bytes / 1024 / 1024,
    wall: median(runs.map((r) => r.wall)),
    cpu: median(runs.map((r) => r.cpu)),
    rssMb: Math.max(...runs.map((r) => r.rssMb)),
    htmlWall: html.wall,
  };
}

async function sh(cmd: string[]): Promise<string> {
  const out = await new Deno.Command(cmd[0]!, { args: cmd.slice(1), stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

const results = [
  await measure("ours", false),
  await measure("tcpserver", true),
];
const cpu = (await sh(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"])).trim()
  .replace(/ +/g, " ");
const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
const rows = results.map((r) =>
  `| ${r.name === "ours" ? "every line smtp-delay's" : "tcpserver -v around them"} | ` +
  `${r.lines} | ${r.ours} | ${f(r.mb, 0)} | ${f(r.wall)} | ${f(r.cpu)} | ` +
  `${f(r.lines / r.wall / 1000, 0)} | ${f(r.rssMb, 0)} | ${f(r.htmlWall)} |`
);
const text = `# smtp-delay report on ${DAYS} days of a busy host's logs

\`make bench-report\` (bench/report_bench.ts), ${new Date().toISOString().slice(0, 10)}, at
${await sh([
  "git",
  "-C",
  ROOT,
  "describe",
  "--always",
  "--dirty",
])}: logs made by bench/report_logs.ts
(${DAYS} days, multilog's TAI64N stamps, 16 MB files), \`smtp-delay report --json DIR\` under
\`taskset -c 0\` (one core), median of ${RUNS} runs; then \`--html\` once. Machine: ${await sh([
  "nproc",
])} cores, ${cpu}, Deno ${
  (await sh([DENO, "--version"])).split("\n")[0]!.split(" ")[1]
}; load average after the runs ${load}.

| logs | lines | smtp-delay lines | MB | wall s | CPU s | thousand lines/s | max RSS MB | --html wall s |
| ---- | ----- | ---------------- | -- | ------ | ----- | ---------------- | ---------- | ------------- |
${rows.join("\n")}
`;
await Deno.mkdir(`${ROOT}bench/results`, { recursive: true });
await Deno.writeTextFile(`${ROOT}bench/results/report.md`, text);
console.log(text);
