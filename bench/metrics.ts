/**
 * `make bench-metrics`: what the metrics cost, in four parts, printed as
 * markdown on stdout (progress on stderr):
 *
 * 1. in this process: the work serve adds per line it writes with --metrics
 *    (the tap: the report's parser, then the counters), and one scrape's
 *    body (the counters rendered), in microseconds;
 * 2. a real `smtp-delay serve --metrics`: its CPU per scrape, over SCRAPES
 *    scrapes one after another;
 * 3. the same serve under hostile scrapers for HOSTILE_S seconds (many that
 *    connect and say nothing, some that send a byte at a time, some that
 *    never read, one that connects and hangs up in a loop): its CPU per
 *    second, against the same serve left alone;
 * 4. `smtp-delay metrics` reading a multilog directory of LINES lines at
 *    start (rotated files and current): seconds until it answers, and its CPU.
 *
 * serve's CPU per connection with and without --metrics is make bench's
 * (peer "serve+metrics" beside "serve"); the filter's start with and without
 * this code is make bench-startup's (BEFORE).
 *
 * Environment: DENO, PERMISSIONS (the Makefile passes them), SCRAPES (1000),
 * HOSTILE_S (10), LINES (1000000).
 */
import { LIMITS } from "../src/metrics/endpoint.ts";
import { Counters } from "../src/metrics/counters.ts";
import { render } from "../src/metrics/exposition.ts";
import { encodeTai64n, parseLine } from "../src/report/parse.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const env = (name: string, fallback: string) => Deno.env.get(name) || fallback;
const DENO = env("DENO", Deno.execPath());
const PERMISSIONS = env("PERMISSIONS", Deno.readTextFileSync(`${ROOT}/permissions`)).trim()
  .split(/\s+/);
const SCRAPES = Number(env("SCRAPES", "1000"));
const HOSTILE_S = Number(env("HOSTILE_S", "10"));
const LINES = Number(env("LINES", "1000000"));
const RECORDER = `${ROOT}/build/recorder`;

const say = (text: string) => console.error(`bench-metrics: ${text}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const PASS = "smtp-delay: info: PASS pid=4711 ip=192.0.2.2 tier=ptr ptr=mail.example.net " +
  "lookup=found delay=0.250 waited=0.262 action=exec memory=passed";
const EARLY = "smtp-delay: info: EARLY pid=0 ip=192.0.2.4 tier=noptr ptr=- lookup=none " +
  "delay=26.000 waited=0.031 action=451 memory=- bytes=24 data=EHLO?spam.example.org??";
const TCPSERVER =
  "tcpserver: ok 4711 mx.example.org:192.0.2.1:25 mail.example.net:192.0.2.2::41234";

/** Median of `runs` timings of `n` calls of `f`, in microseconds per call. */
function micro(f: () => void, n: number, runs = 15): number {
  for (let i = 0; i < n; i++) f(); // warm up the JIT
  const per: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) f();
    per.push(((performance.now() - t0) * 1000) / n);
  }
  return median(per);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** CPU seconds (user + system) of process `pid` so far. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICK;
}

const CLOCK_TICK = Number(
  new TextDecoder().decode(new Deno.Command("getconf", { args: ["CLK_TCK"] }).outputSync().stdout)
    .trim(),
) || 100;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Connects until something answers on `port`. */
async function listening(port: number, what: string, ms = 60_000): Promise<void> {
  const end = performance.now() + ms;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      if (performance.now() > end) throw new Error(`${what} did not listen on ${port}`);
      await sleep(10);
    }
  }
}

/** One GET /metrics; the body's length. */
async function scrape(port: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let n = 0;
  try {
    await conn.write(new TextEncoder().encode("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
    const buf = new Uint8Array(65536);
    for (;;) {
      const got = await conn.read(buf);
      if (got === null) break;
      n += got;
    }
  } finally {
    conn.close();
  }
  return n;
}

/** The PASS ptr count a scrape shows. */
async function countedPasses(port: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let text = "";
  try {
    await conn.write(new TextEncoder().encode("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
    const buf = new Uint8Array(65536);
    for (;;) {
      const got = await conn.read(buf);
      if (got === null) break;
      text += new TextDecoder().decode(buf.subarray(0, got));
    }
  } finally {
    conn.close();
  }
  const m = /^smtp_delay_connections_total\{event="PASS",tier="ptr"\} (\d+)$/m.exec(text);
  return Number(m?.[1]);
}

/** `smtp-delay serve --metrics` on free ports, quiet; its pid, metrics port, and stop(). */
async function startServe(): Promise<{ pid: number; port: number; stop(): Promise<void> }> {
  const port = freePort();
  const child = new Deno.Command(DENO, {
    args: [
      "run",
      ...PERMISSIONS,
      `${ROOT}/main.ts`,
      ...["serve", "-H", "-S", "--store", "none", "--metrics", `127.0.0.1:${port}`],
      ...["127.0.0.1", "0", RECORDER],
    ],
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      NO_COLOR: "1",
      DENO_NO_UPDATE_CHECK: "1",
    },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  await listening(port, "serve --metrics");
  await sleep(500); // past its start-up
  return {
    pid: child.pid,
    port,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** Part 1: per line and per render, in this process. */
function inProcess(): string[] {
  const counters = new Counters();
  const tap = (line: string) => counters.count(parseLine(line));
  const outcome = micro(() => tap(PASS), 20_000);
  const early = micro(() => tap(EARLY), 20_000);
  const other = micro(() => tap(TCPSERVER), 20_000);
  const body = render(counters.families({
    waiting: 1,
    waitingLimit: 1000,
    children: 1,
    childrenLimit: 40,
  }));
  const rendering = micro(() => {
    render(counters.families({ waiting: 1, waitingLimit: 1000, children: 1, childrenLimit: 40 }));
  }, 500);
  return [
    "### 1. The work --metrics adds to serve, in this process (median of 15 rounds)\n",
    "| what | µs |",
    "| --- | --- |",
    `| an outcome line (PASS): parsed and counted | ${outcome.toFixed(2)} |`,
    `| an outcome line (EARLY, with data=) | ${early.toFixed(2)} |`,
    `| another line (tcpserver's ok line, -v): parsed, not counted | ${other.toFixed(2)} |`,
    `| one scrape's body (${body.length} bytes) rendered | ${rendering.toFixed(1)} |`,
    "",
    "A connection of serve writes one outcome line, and with -v five of tcpserver's lines more " +
    `(status, pid, ok, end, status): ${outcome.toFixed(2)} µs without -v, about ` +
    `${(outcome + 5 * other).toFixed(2)} µs with it (the lines above added, not timed together).`,
    "",
  ];
}

/** Part 2: serve's CPU per scrape. */
async function perScrape(): Promise<string[]> {
  const serve = await startServe();
  try {
    await scrape(serve.port);
    const before = await cpuSeconds(serve.pid);
    const t0 = performance.now();
    let bytes = 0;
    for (let i = 0; i < SCRAPES; i++) bytes = await scrape(serve.port);
    const wallS = (performance.now() - t0) / 1000;
    const cpuS = (await cpuSeconds(serve.pid)) - before;
    return [
      "### 2. serve's CPU per scrape\n",
      `${SCRAPES} scrapes one after another (${bytes} bytes each, headers included) took ` +
      `${wallS.toFixed(2)} s: ${(SCRAPES / wallS).toFixed(0)} per second (the endpoint takes ` +
      `${LIMITS.acceptsPerSecond} new connections a second at most); serve used ${
        (cpuS * 1000).toFixed(0)
      } ms of CPU, ` +
      `**${(cpuS * 1000 / SCRAPES).toFixed(3)} ms per scrape** (accept, read, render, write, ` +
      "close). Prometheus scrapes every 15 s by default.",
      "",
    ];
  } finally {
    await serve.stop();
  }
}

/** Part 3: serve's CPU per second alone, under hostile scrapers, under churners alone. */
async function hostile(): Promise<string[]> {
  const serve = await startServe();
  try {
    const idleBefore = await cpuSeconds(serve.pid);
    await sleep(HOSTILE_S * 1000);
    const idleCpu = (await cpuSeconds(serve.pid)) - idleBefore;
    const mixed = await scrapers(serve, true);
    const churn = await scrapers(serve, false);
    const pct = (s: number) => `${(s / HOSTILE_S * 100).toFixed(1)}%`;
    return [
      "### 3. serve under hostile scrapers\n",
      `serve alone for ${HOSTILE_S} s: ${(idleCpu * 1000).toFixed(0)} ms of CPU ` +
      `(${pct(idleCpu)} of a core). Under hostile scrapers for ${HOSTILE_S} s (40 connections ` +
      "that say nothing, 4 that send a byte a millisecond and never finish, 4 that never read, " +
      `one that connected and hung up ${mixed.churned} times): ` +
      `${(mixed.cpuS * 1000).toFixed(0)} ms (**${pct(mixed.cpuS)} of a core**): the slots are ` +
      "held by the silent ones, each until its deadline. Under 8 loops that connect and hang up " +
      `as fast as they can (${churn.churned} times) for ${HOSTILE_S} s: ` +
      `${(churn.cpuS * 1000).toFixed(0)} ms (**${pct(churn.cpuS)} of a core**): the accept ` +
      "rate is the bound.",
      "",
    ];
  } finally {
    await serve.stop();
  }
}

/**
 * HOSTILE_S seconds of hostile scrapers on `serve`'s endpoint: with `mixed`, the silent,
 * trickling, deaf ones and one churner; else 8 churners. serve's CPU meanwhile.
 */
async function scrapers(
  serve: { pid: number; port: number },
  mixed: boolean,
): Promise<{ cpuS: number; churned: number }> {
  let stopped = false;
  const conns = new Set<Deno.Conn>();
  const open = async () => {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: serve.port });
    conns.add(c);
    return c;
  };
  const quietly = (f: () => Promise<void>) => f().catch(() => {});
  let churned = 0;
  const churner = () =>
    quietly(async () => {
      while (!stopped) {
        const c = await Deno.connect({ hostname: "127.0.0.1", port: serve.port });
        c.close();
        churned++;
      }
    });
  const workers = mixed
    ? [
      ...Array.from({ length: 40 }, () => quietly(async () => void await open())),
      ...Array.from({ length: 4 }, () =>
        quietly(async () => {
          while (!stopped) {
            const c = await open();
            c.setNoDelay(true);
            try {
              await c.write(new TextEncoder().encode("GET /metrics HTTP/1.1\r\n"));
              while (!stopped) {
                await c.write(new TextEncoder().encode("X"));
                await sleep(1);
              }
            } catch {
              // closed at the deadline: again
            }
          }
        })),
      ...Array.from({ length: 4 }, () =>
        quietly(async () => {
          const c = await open();
          await c.write(new TextEncoder().encode("GET /metrics HTTP/1.1\r\n\r\n"));
        })),
      churner(),
    ]
    : Array.from({ length: 8 }, churner);
  const before = await cpuSeconds(serve.pid);
  await sleep(HOSTILE_S * 1000);
  const cpu = (await cpuSeconds(serve.pid)) - before;
  stopped = true;
  for (const c of conns) {
    try {
      c.close();
    } catch {
      // closed
    }
  }
  await Promise.all(workers);
  // The endpoint drains what is left in its listen queue: a scrape is answered again.
  await scrape(serve.port);
  return { cpuS: cpu, churned };
}

/** Part 4: the follower reading a directory at start. */
async function follower(): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "smtp-delay-bench-metrics." });
  try {
    // LINES lines as multilog writes them: a stamp, a PASS line and tcpserver's four, in 10 files.
    const files = 10;
    const perFile = Math.ceil(LINES / files);
    let ms = Date.UTC(2026, 11, 1);
    let written = 0;
    let bytes = 0;
    for (let f = 0; f < files; f++) {
      const lines: string[] = [];
      for (let i = 0; i < perFile && written < LINES; i++, written++) {
        ms += 50;
        lines.push(`${encodeTai64n(ms)} ${i % 5 === 0 ? PASS : TCPSERVER}`);
      }
      const text = lines.join("\n") + "\n";
      bytes += text.length;
      const name = f === files - 1 ? "current" : `${encodeTai64n(ms)}.s`;
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    const port = freePort();
    const t0 = performance.now();
    const child = new Deno.Command(DENO, {
      args: ["run", ...PERMISSIONS, `${ROOT}/main.ts`, "metrics", `127.0.0.1:${port}`, dir],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await listening(port, "smtp-delay metrics", 600_000);
      const wallS = (performance.now() - t0) / 1000;
      const cpuS = await cpuSeconds(child.pid);
      const counted = await countedPasses(port);
      if (counted !== Math.ceil(LINES / 5)) {
        throw new Error(`smtp-delay metrics counted ${counted} PASS lines of ${LINES / 5}`);
      }
      return [
        "### 4. smtp-delay metrics reading a directory at start\n",
        `${LINES} lines (${(bytes / 1e6).toFixed(1)} MB, one in five an outcome line, in ` +
        `${files} files): listening after ${wallS.toFixed(2)} s, ${cpuS.toFixed(2)} s of CPU, ` +
        `**${(LINES / wallS / 1000).toFixed(0)}k lines per second** (Deno's start included).`,
        "",
      ];
    } finally {
      child.kill("SIGTERM");
      await child.status;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const version = new TextDecoder().decode(
  (await new Deno.Command(DENO, { args: ["--version"] }).output()).stdout,
).split("\n")[0];
const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
say("in this process");
const out = [
  `## make bench-metrics (${new Date().toISOString().slice(0, 10)}, ` +
  `${navigator.hardwareConcurrency} cores, ${version}, load average ${load} at start)\n`,
  ...inProcess(),
];
say(`${SCRAPES} scrapes`);
out.push(...await perScrape());
say(`${HOSTILE_S} s alone, ${HOSTILE_S} s under hostile scrapers`);
out.push(...await hostile());
say(`the follower reading ${LINES} lines`);
out.push(...await follower());
console.log(out.join("\n"));
