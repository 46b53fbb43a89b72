/**
 * `make bench-lists`: what the DNS lists (--dnsbl) cost a connection, with
 * and without the memory's cache of their answers, in both modes:
 *
 * 1. the per-connection filter under a real tcpserver (-x rules.cdb giving
 *    each variant its own TEST-NET client, 192.0.2.x, as tests/e2e does:
 *    Deno answers 127.x's PTR by itself), in front of build/recorder; its
 *    CPU per connection is the user + system time of the filter's process
 *    (and of the recorder it becomes), from wait4 (WAIT4, around it); wall
 *    time from connect to the verdict (the recorder's banner, or the lists'
 *    421); `waited=` of the outcome line (the filter's own time from its
 *    start to the verdict);
 * 2. `smtp-delay serve` in tcpserver's place: its CPU per connection (every
 *    thread's run time from /proc/PID/task/TID/schedstat, in ns), the same
 *    wall times;
 * 3. the start without lists: which modules of src/lists/ a start reads and
 *    runs (strace's openat: Deno reads the source of every module of the
 *    graph, dynamic imports included, and the transpiled code of those it
 *    runs), and the filter before the lists (see beforeTree) as a variant
 *    of part 1.
 *
 * The list server is tests/fixtures/fake_dns.ts on 127.0.0.1 (SMTPDELAY_DNS),
 * answering every list query LIST_MS late (a PTR at once): three zones; a
 * clean client has NXDOMAIN in each (the zone's SOA giving a 300 s negative
 * TTL, so the memory keeps it), a listed one 127.0.0.2 in the first. Every
 * client's PTR is found: tier ptr, delay -d DELAY. The variants are run in
 * turn, one connection at a time, WARMUP connections of each first (they
 * fill the cache of the variants with one).
 *
 * Prints markdown on stdout (progress on stderr) and writes it to
 * bench/results/lists.md. Environment: DENO, PERMISSIONS (the Makefile passes
 * them), RUNS (40: connections of each filter variant), SERVE_RUNS (60),
 * WARMUP (2), LIST_MS (50), DELAY (0.1 s), BEFORE (a tree to run as the
 * filter "before the lists"), PYTHON (the interpreter WAIT4 runs in), KEEP=1
 * (keep the work directory under /tmp: logs, rules, state).
 */
import { type Answer, NXDOMAIN, reverse4, startFakeDns } from "../tests/fixtures/fake_dns.ts";
import { tcprules } from "../tests/fixtures/tcprules.ts";
import { type Server, startServer, stopAll } from "./server.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const env = (name: string, fallback: string) => Deno.env.get(name) || fallback;
const DENO = env("DENO", Deno.execPath());
/** The flags of the one permissions file, as `make` passes them. */
const PERMISSIONS = env("PERMISSIONS", Deno.readTextFileSync(`${ROOT}/permissions`)).trim()
  .split(/\s+/);
const RUNS = Number(env("RUNS", "40"));
const SERVE_RUNS = Number(env("SERVE_RUNS", "60"));
const WARMUP = Number(env("WARMUP", "2"));
const LIST_MS = Number(env("LIST_MS", "50"));
const DELAY = env("DELAY", "0.1");
const RECORDER = `${ROOT}/build/recorder`;
/** The Python interpreter itself (python3 on PATH may be a shell script: pyenv's shim). */
const PYTHON = Deno.env.get("PYTHON") ?? new TextDecoder().decode(
  (await new Deno.Command("python3", { args: ["-c", "import sys; print(sys.executable)"] })
    .output()).stdout,
).trim();

/**
 * Runs its arguments as a child, with the signals tcpserver gave (Python
 * ignores SIGPIPE and SIGXFSZ: put back), waits for it with wait4 and
 * appends its user + system ms to $LISTS_TIMES. Not bash and `times`:
 * tcpserver's child starts with SIGCHLD blocked, and under it bash's
 * `times` counts some 600 ms for a child as small as /bin/true.
 */
const WAIT4 = `
import os, signal, sys
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
with open(os.environ["LISTS_TIMES"], "a") as f:
    f.write("%.3f\\n" % ((usage.ru_utime + usage.ru_stime) * 1000))
sys.exit(os.waitstatus_to_exitcode(status))
`;

const say = (text: string) => console.error(`bench-lists: ${text}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The three zones every variant with lists asks, a weight of 1 each. */
const ZONES = ["bl1.test", "bl2.test", "bl3.test"];
const LISTS = ZONES.flatMap((zone) => ["--dnsbl", zone]);
/** The memory's rules that would change outcomes for one address connecting again and again. */
const QUIET_MEMORY = ["--strikes", "0", "--rate", "0"];

/** What a variant's client is: handed on after the delay, or refused by the lists at once. */
type Kind = "clean" | "listed";

interface Variant {
  readonly name: string;
  /** The client's address (TEST-NET), one per variant: the DNS counts its queries. */
  readonly ip: string;
  readonly kind: Kind;
  /** The filter's options after main.ts (or serve's, after serve's own). */
  readonly args: readonly string[];
  /** The variant it is compared with (its CPU less that one's). */
  readonly base?: string;
  /** The tree whose main.ts runs (ROOT unless told). */
  readonly tree?: string;
  /** Has a sqlite store: its database, made anew. */
  readonly db?: string;
}

/** One connection's figures. */
interface Run {
  cpuMs: number;
  wallMs: number;
  queries: number;
}

let work = "";

function variants(mode: "filter" | "serve", before: string | undefined): Variant[] {
  const db = (name: string) => `${work}/${mode}-${name}.db`;
  const common = ["-S", "-d", DELAY];
  const none = ["--store", "none"];
  const sqlite = (name: string) => [...QUIET_MEMORY, "--store", `sqlite:${db(name)}`];
  const list: Variant[] = [
    { name: "no lists, --store none", ip: "192.0.2.10", kind: "clean", args: [...common, ...none] },
    {
      name: "3 lists, --store none (asked every time)",
      ip: "192.0.2.11",
      kind: "clean",
      args: [...common, ...none, ...LISTS],
      base: "no lists, --store none",
    },
    {
      name: "no lists, sqlite",
      ip: "192.0.2.12",
      kind: "clean",
      args: [...common, ...sqlite("a")],
      db: db("a"),
    },
    {
      name: "3 lists, sqlite, cache warm",
      ip: "192.0.2.13",
      kind: "clean",
      args: [...common, ...sqlite("b"), ...LISTS],
      base: "no lists, sqlite",
      db: db("b"),
    },
    {
      name: "3 lists, --store none, listed",
      ip: "192.0.2.20",
      kind: "listed",
      args: [...common, ...none, ...LISTS],
    },
    {
      name: "3 lists, sqlite, cache warm, listed",
      ip: "192.0.2.21",
      kind: "listed",
      args: [...common, ...sqlite("c"), ...LISTS],
      db: db("c"),
    },
  ];
  if (mode === "filter" && before) {
    list.push({
      name: "no lists, --store none, before the lists",
      ip: "192.0.2.14",
      kind: "clean",
      args: [...common, ...none],
      tree: before,
      base: "no lists, --store none",
    });
  }
  return list;
}

/** The reversed address, as the lists are asked about it ("10.2.0.192"). */
const reversed = (ip: string) => ip.split(".").reverse().join(".");

/** The fake DNS's answers, counting the questions it gets (respond() looks each up once). */
class Counted extends Map<string, Answer> {
  readonly asked = new Map<string, number>();
  override get(name: string): Answer | undefined {
    this.asked.set(name, (this.asked.get(name) ?? 0) + 1);
    return super.get(name);
  }
  /** Queries about `ip` so far, zone by zone. */
  zoneQueries(ip: string): number[] {
    return ZONES.map((zone) => this.asked.get(`${reversed(ip)}.${zone}`) ?? 0);
  }
  /** List queries about `ip` so far. */
  listQueries(ip: string): number {
    return ZONES.reduce((n, zone) => n + (this.asked.get(`${reversed(ip)}.${zone}`) ?? 0), 0);
  }
}

function answers(ips: readonly { ip: string; kind: Kind }[]): Counted {
  const table = new Counted();
  for (const { ip, kind } of ips) {
    table.set(reverse4(ip), { names: ["mail.example.net"] });
    for (const [i, zone] of ZONES.entries()) {
      const name = `${reversed(ip)}.${zone}`;
      table.set(
        name,
        kind === "listed" && i === 0
          ? { addresses: ["127.0.0.2"], ttl: 300, afterMs: LIST_MS }
          : { rcode: NXDOMAIN, soaTtl: 300, afterMs: LIST_MS },
      );
    }
  }
  return table;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * One client: connects, reads the first whole reply (the verdict: the
 * recorder's 220, or the lists' 421), says QUIT to a 220, reads to the end.
 * Its wall time to the verdict, and the code.
 */
async function client(port: number): Promise<{ wallMs: number; code: number }> {
  const t0 = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), 10_000);
  try {
    const buf = new Uint8Array(4096);
    let text = "";
    let wallMs = -1;
    let quit = false;
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n));
      if (wallMs < 0 && /^\d{3} [^\n]*\n/m.test(text)) {
        wallMs = performance.now() - t0;
        if (text.startsWith("220") && !quit) {
          quit = true;
          await conn.write(encoder.encode("QUIT\r\n"));
        }
      }
    }
    if (wallMs < 0) throw new Error(`No reply: got "${text}"`);
    return { wallMs, code: Number(text.slice(0, 3)) };
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed by the timer
    }
  }
}

/** The code a variant's client must see. */
const wanted = (v: Variant) => v.kind === "listed" ? 421 : 220;

/** The event word of its outcome line. */
const event = (v: Variant) => v.kind === "listed" ? "LISTED" : "PASS";

/** An outcome line's event, waited= (ms) and score= ("" without lists). */
function outcomes(log: string): { event: string; waitedMs: number; score: string }[] {
  const out = [];
  for (const line of log.split("\n")) {
    const m = /^smtp-delay: info: ([A-Z]+) .* waited=([0-9.]+) (?:.* score=(\S+))?/.exec(line);
    if (m) out.push({ event: m[1]!, waitedMs: Number(m[2]) * 1000, score: m[3] ?? "" });
  }
  return out;
}

/** Warning lines of a log (a zone that timed out, a store that failed): none expected. */
const warnings = (log: string) => log.split("\n").filter((l) => l.includes(": warning: "));

/** WAIT4's lines: user + system ms of each connection's process. */
function timesMs(text: string): number[] {
  return text.split("\n").filter((l) => l.trim() !== "").map(Number);
}

async function readOr(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return "";
  }
}

/** Waits until `path` holds `count` records of `times`. */
async function timesRecorded(path: string, count: number): Promise<number[]> {
  const end = performance.now() + 10_000;
  for (;;) {
    const text = await readOr(path);
    if (text.endsWith("\n")) {
      const got = timesMs(text);
      if (got.length >= count) return got;
    }
    if (performance.now() > end) throw new Error(`No CPU figure in "${path}" after 10 s`);
    await sleep(2);
  }
}

/** Every thread's run time so far, in ns (threads gone meanwhile are missed: see perServe). */
async function threadsNs(pid: number): Promise<number> {
  let ns = 0;
  for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
    const text = await readOr(`/proc/${pid}/task/${task.name}/schedstat`);
    ns += Number(text.split(" ")[0] ?? 0);
  }
  return ns;
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

interface Started {
  readonly variant: Variant;
  readonly server: Server;
  readonly logPath: string;
  readonly cpuPath: string;
  readonly runs: Run[];
  done: number;
  /** Each zone's queries when the warm-up was over. */
  warm: number[];
}

/** Starts each variant's server: tcpserver and WAIT4 around the filter, or serve. */
async function startAll(
  mode: "filter" | "serve",
  list: readonly Variant[],
  dnsAddress: string,
): Promise<Started[]> {
  const started: Started[] = [];
  for (const [i, v] of list.entries()) {
    const rules = `${work}/${mode}-${i}.cdb`;
    await tcprules(rules, `:allow,TCPREMOTEIP="${v.ip}"\n`);
    if (v.db) await Deno.remove(v.db).catch(() => {});
    const logPath = `${work}/${mode}-${i}.log`;
    const cpuPath = `${work}/${mode}-${i}.times`;
    const main = `${v.tree ?? ROOT}/main.ts`;
    const command = mode === "filter"
      ? [
        ...["tcpserver", "-v", "-R", "-H", "-l", "localhost", "-x", rules, "127.0.0.1", "{port}"],
        // wait4's rusage: the filter's CPU and the recorder's it becomes, in µs.
        ...[PYTHON, "-I", "-S", "-c", WAIT4],
        ...[DENO, "run", ...PERMISSIONS, main, ...v.args],
      ]
      : [
        DENO,
        "run",
        ...PERMISSIONS,
        main,
        ...["serve", "-v", "-R", "-H", "-l", "localhost", "-x", rules, ...v.args],
        ...["127.0.0.1", "{port}"],
      ];
    const server = await startServer({
      filter: command,
      ownServer: true,
      next: RECORDER,
      env: { SMTPDELAY_DNS: dnsAddress, LISTS_TIMES: cpuPath },
      logPath,
    });
    started.push({ variant: v, server, logPath, cpuPath, runs: [], done: 0, warm: [] });
  }
  return started;
}

/** One connection to `s`, its figures kept unless `warmup`. */
async function once(
  mode: "filter" | "serve",
  s: Started,
  dns: Counted,
  warmup: boolean,
): Promise<void> {
  const v = s.variant;
  const asked = dns.listQueries(v.ip);
  const threadsBefore = mode === "serve" ? await threadsNs(s.server.pid) : 0;
  const { wallMs, code } = await client(s.server.port);
  if (code !== wanted(v)) throw new Error(`${v.name}: got ${code}, want ${wanted(v)}`);
  let cpuMs: number;
  if (mode === "filter") {
    s.done++;
    cpuMs = (await timesRecorded(s.cpuPath, s.done))[s.done - 1]!;
  } else {
    await sleep(30); // serve's work after the client's end: the child reaped, the memory written
    cpuMs = (await threadsNs(s.server.pid) - threadsBefore) / 1e6;
  }
  if (!warmup) s.runs.push({ cpuMs, wallMs, queries: dns.listQueries(v.ip) - asked });
}

/** Runs every variant RUNS times in turn (WARMUP first); the table's rows. */
async function measure(
  mode: "filter" | "serve",
  list: readonly Variant[],
  runs: number,
  dns: Counted,
  dnsAddress: string,
): Promise<string[]> {
  const started = await startAll(mode, list, dnsAddress);
  try {
    for (let w = 0; w < WARMUP; w++) {
      for (const s of started) await once(mode, s, dns, true);
    }
    for (const s of started) s.warm = dns.zoneQueries(s.variant.ip);
    for (let r = 0; r < runs; r++) {
      if (r % 10 === 0) say(`${mode}: round ${r + 1} of ${runs}`);
      // A different variant first each round: none always follows the same one.
      for (let k = 0; k < started.length; k++) {
        await once(mode, started[(r + k) % started.length]!, dns, false);
      }
    }
  } finally {
    await Promise.all(started.map((s) => s.server.stop()));
  }
  const rows: string[] = [];
  const cpuOf = new Map<string, number>();
  for (const s of started) cpuOf.set(s.variant.name, median(s.runs.map((r) => r.cpuMs)));
  const problems: string[] = [];
  for (const s of started) {
    const v = s.variant;
    const log = await Deno.readTextFile(s.logPath);
    const seen = outcomes(log).slice(WARMUP);
    const odd = seen.filter((o) => o.event !== event(v));
    if (seen.length !== runs || odd.length > 0) {
      problems.push(`${v.name}: ${seen.length} outcome lines, ${odd.length} not ${event(v)}`);
    }
    for (const w of warnings(log)) problems.push(`${v.name}: ${w}`);
    const again = dns.zoneQueries(v.ip).map((n, i) => n - s.warm[i]!);
    if (v.db && again.some((n) => n > 0)) {
      const zones = ZONES.flatMap((zone, i) => again[i]! > 0 ? [`${zone} ${again[i]}`] : []);
      problems.push(`${v.name}: asked again with the cache warm: ${zones.join(", ")} times`);
    }
    const cpu = s.runs.map((r) => r.cpuMs);
    const base = v.base === undefined ? undefined : cpuOf.get(v.base);
    const diff = base === undefined
      ? ""
      : `${median(cpu) - base >= 0 ? "+" : ""}${(median(cpu) - base).toFixed(1)}`;
    const queries = s.runs.reduce((n, r) => n + r.queries, 0) / s.runs.length;
    const scores = [...new Set(seen.map((o) => o.score))].join(", ");
    rows.push(
      `| ${v.name} | ${v.kind} | ${queries.toFixed(2)} | ${median(cpu).toFixed(1)} | ` +
        `${mean(cpu).toFixed(1)} | ${diff} | ${median(s.runs.map((r) => r.wallMs)).toFixed(1)} | ` +
        `${median(seen.map((o) => o.waitedMs)).toFixed(0)} | ${scores || "-"} |`,
    );
  }
  if (problems.length > 0) {
    rows.push("", "Unexpected in this run:", "", ...problems.slice(0, 20).map((p) => `- ${p}`));
  }
  return rows;
}

const HEADER = [
  "| variant | client | list queries per connection | CPU ms, median | mean | vs its base | " +
  "connect to verdict ms, median | waited= ms, median | score= |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
];

/**
 * Part 3: the src/lists/ modules a start of the filter reads (sources: the
 * module graph) and runs (transpiled code), without lists and with them.
 */
async function modulesLoaded(dnsAddress: string): Promise<string[]> {
  const which = async (args: readonly string[]) => {
    const trace = `${work}/strace-${args.length}.txt`;
    const child = new Deno.Command("strace", {
      args: [
        ...["-f", "-qq", "-e", "trace=openat", "-o", trace],
        ...[DENO, "run", ...PERMISSIONS, `${ROOT}/main.ts`, "-d", "0", "--store", "none", ...args],
        "/bin/true",
      ],
      env: { TCPREMOTEIP: "192.0.2.10", SMTPDELAY_DNS: dnsAddress, NO_COLOR: "1" },
      stdin: "piped", // open and quiet: no early talk, no hang-up
      stdout: "null",
      stderr: "null",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const status = await child.status;
    clearTimeout(timer);
    await child.stdin.close().catch(() => {});
    if (!status.success) throw new Error(`strace of the filter exited ${status.code}`);
    const text = await Deno.readTextFile(trace);
    const files = (suffix: string) =>
      [
        ...new Set(
          [...text.matchAll(new RegExp(`"[^"]*/src/lists/([a-z_]+\\.ts)${suffix}"`, "g"))]
            .map((m) => m[1]!),
        ),
      ].sort().join(", ") || "none";
    return { sources: files(""), code: files("\\.js") };
  };
  const without = await which([]);
  const withLists = await which(LISTS);
  return [
    "| start of the filter (strace -e openat) | src/lists/ sources read | src/lists/ code run |",
    "| --- | --- | --- |",
    `| no lists | ${without.sources} | ${without.code} |`,
    `| 3 lists | ${withLists.sources} | ${withLists.code} |`,
  ];
}

/**
 * The tree to run as "before": BEFORE's, else a `git archive` of the commit
 * before the first that touched src/lists/ (HEAD while the lists are not
 * committed).
 */
async function beforeTree(): Promise<{ dir: string; what: string } | undefined> {
  const given = Deno.env.get("BEFORE");
  if (given) return { dir: given, what: given };
  const git = async (...args: string[]) => {
    const out = await new Deno.Command("git", { args: ["-C", ROOT, ...args], stderr: "null" })
      .output();
    return out.success ? decoder.decode(out.stdout).trim() : undefined;
  };
  const first = (await git("rev-list", "--reverse", "HEAD", "--", "src/lists"))?.split("\n")[0];
  const rev = await git("rev-parse", "--short", first ? `${first}^` : "HEAD");
  if (!rev) return undefined;
  const dir = `${work}/before`;
  await Deno.mkdir(dir, { recursive: true });
  const archive = await new Deno.Command("bash", {
    args: ["-c", `git -C "${ROOT}" archive "${rev}" | tar -x -C "${dir}"`],
  }).output();
  if (!archive.success) return undefined;
  const subject = await git("log", "-1", "--format=%s", rev);
  return { dir, what: `${rev} ("${subject?.slice(0, 60)}..."), a git archive of it` };
}

async function main(): Promise<void> {
  work = await Deno.makeTempDir({ prefix: "smtp-delay-bench-lists." });
  const before = await beforeTree();
  const filterVariants = variants("filter", before?.dir);
  const serveVariants = variants("serve", undefined);
  const dns = answers([...filterVariants, ...serveVariants]);
  const fake = await startFakeDns(dns);
  try {
    const version = new TextDecoder().decode(
      (await new Deno.Command(DENO, { args: ["--version"] }).output()).stdout,
    ).split("\n")[0];
    const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
    const out = [
      "# What the DNS lists cost a connection\n",
      `\`make bench-lists\` (bench/lists.ts), ${new Date().toISOString().slice(0, 10)}, ` +
      `${navigator.hardwareConcurrency} cores, ${version}, load average ${load} at start. ` +
      `Three zones (--dnsbl bl1.test --dnsbl bl2.test --dnsbl bl3.test) on a list server ` +
      `that answers every query ${LIST_MS} ms late (tests/fixtures/fake_dns.ts, SMTPDELAY_DNS); ` +
      `a clean client is in none (NXDOMAIN, 300 s negative TTL), a listed one in bl1.test ` +
      `(127.0.0.2, TTL 300); every client's PTR is found at once (tier ptr, -S -d ${DELAY}). ` +
      "One connection at a time, variants in turn; sqlite's variants with --strikes 0 --rate 0, " +
      `their cache filled by ${WARMUP} connections first. "waited=" is the outcome line's: ` +
      "the screening's time from its start to the verdict; connect to verdict adds the " +
      "process's start (the filter) and the client's connect.\n",
    ];
    say(`the filter under tcpserver, ${RUNS} connections of each variant`);
    out.push(
      `## 1. The filter under tcpserver (${RUNS} connections each)\n`,
      "CPU: user + system of the filter's process and the recorder it becomes (wait4's " +
        "rusage).\n",
      ...HEADER,
      ...await measure("filter", filterVariants, RUNS, dns, fake.address),
      "",
    );
    if (before) out.push(`"before the lists" is ${before.what}, run with the same options.\n`);
    say(`serve, ${SERVE_RUNS} connections of each variant`);
    out.push(
      `## 2. serve in tcpserver's place (${SERVE_RUNS} connections each)\n`,
      "CPU: serve's threads (/proc/PID/task/*/schedstat), from before the connect to 30 ms " +
        "after the client's end; the recorder's own is not in it.\n",
      ...HEADER,
      ...await measure("serve", serveVariants, SERVE_RUNS, dns, fake.address),
      "",
    );
    say("the modules a start loads");
    out.push(
      "## 3. The modules of src/lists/ a start of the filter loads\n",
      "Deno reads the source of every module of the graph, the dynamic imports' included " +
        "(sources read), and the transpiled code of the modules it runs (code run).\n",
      ...await modulesLoaded(fake.address),
      "",
    );
    const text = out.join("\n");
    console.log(text);
    await Deno.writeTextFile(`${ROOT}/bench/results/lists.md`, text);
  } finally {
    await stopAll();
    await fake.stop();
    if (Deno.env.get("KEEP") === "1") say(`kept ${work}`);
    else await Deno.remove(work, { recursive: true });
  }
}

await main();
