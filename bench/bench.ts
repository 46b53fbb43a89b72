/**
 * `make bench`: each peer in a real tcpserver chain on 127.0.0.1, in front of
 * build/recorder, or (`serve`) as its own listening server in tcpserver's
 * place, driven by the load generator in load.ts; medians of RUNS runs, peers
 * interleaved. Prints markdown tables on stdout (progress on stderr) and
 * writes every figure as JSON to build/bench/.
 *
 * Environment: DENO and PERMISSIONS (the Makefile passes them), RUNS (3),
 * DELAY (3: the delay scenario's delay, seconds), MEMORY_DELAY (10: the memory
 * and crowd scenarios'), CROWD (1000: clients waiting at once in the crowd
 * scenario, twice as many in crowd2), PEERS and SCENARIOS (names, space-separated: a subset, in that
 * order; peer "launcher" is the product as `make install-launcher` installs it, into
 * build/bench/launcher, by this script), EXTRA_PEERS ("name=command words;name=command words": more filters
 * to measure; a command with "{port}" in it is its own server), KEEP=1 (keep
 * the work directories under /tmp: the server's log with the filters' stderr,
 * recorder files, samples, clients), REPORT=build/bench/FILE.json (print the
 * tables of an earlier run again, measuring nothing).
 *
 * DNS: every client is 127.0.0.1, whose PTR Deno.resolveDns answers from
 * /etc/hosts without asking any name server (SMTPDELAY_DNS or not), so the
 * product's and serve's lookups cost no DNS round trip here.
 */
import { type LoadOptions, runLoad } from "./load.ts";
import {
  cpuSeconds,
  perConnection,
  processTree,
  readClockTick,
  type Sample,
  sample,
  type SampleTarget,
  startSampler,
} from "./proc.ts";
import { loadFigures, markdown, type RunRecord } from "./report.ts";
import { type Server, startServer, stopAll } from "./server.ts";
import { verify } from "./verify.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const env = (name: string, fallback: string) => Deno.env.get(name) || fallback;
const DENO = env("DENO", Deno.execPath());
/** The flags of the one permissions file, as `make` passes them. */
const PERMISSIONS = env("PERMISSIONS", Deno.readTextFileSync(`${ROOT}/permissions`)).trim()
  .split(/\s+/);
const RUNS = Number(env("RUNS", "3"));
const DELAY_S = Number(env("DELAY", "3"));
const MEMORY_DELAY_S = Number(env("MEMORY_DELAY", "10"));
const CROWD = Number(env("CROWD", "1000"));
const RECORDER = `${ROOT}/build/recorder`;
/** The shared harness's C filter (ref/smtp-delay-ref.c), built by `make bench`. */
const REFERENCE = `${ROOT}/build/smtp-delay-ref`;

/**
 * A filter to measure: what goes between `tcpserver ... PORT` and the
 * recorder; or, for a filter that is its own server, the whole command with
 * "{port}" where the port goes (the recorder is appended).
 */
interface Peer {
  readonly name: string;
  readonly command: readonly string[];
  /** The command listens by itself, in tcpserver's place (smtp-delay serve). */
  readonly server?: boolean;
}

const denoRun = (...rest: string[]) => [DENO, "run", ...PERMISSIONS, ...rest];

/** Memory settings under which one IP's load is not boxed or slowed (see PEERS). */
const QUIET_MEMORY = ["--strikes", "0", "--rate", "0"];
const STATE_DB = `${ROOT}/build/bench/state.db`;
/** Where peer "launcher" is installed (scripts/install.sh, PREFIX), before its warm-up. */
const LAUNCHER_PREFIX = `${ROOT}/build/bench/launcher`;
/** The Redis server bench.ts starts for product+redis, on a port of its own. */
const REDIS_PORT = 20_000 + Math.floor(Math.random() * 20_000);
const REDIS_URL = `redis://127.0.0.1:${REDIS_PORT}`;

/** Starts redis-server on REDIS_PORT (no persistence); resolves once it answers. */
async function startRedis(): Promise<Deno.ChildProcess> {
  const child = new Deno.Command("redis-server", {
    args: ["--port", String(REDIS_PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  for (let i = 0; i < 100; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port: REDIS_PORT })).close();
      return child;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  child.kill();
  throw new Error("redis-server did not start");
}

const PEERS: Peer[] = [
  { name: "none", command: [] }, // the recorder alone
  { name: "ref", command: [REFERENCE, "-S"] }, // the shared harness's C filter
  { name: "floor", command: denoRun(`${ROOT}/bench/floor.ts`) }, // sleep + execve
  // The product without memory, then with each store. The memory's rules that
  // would change outcomes when every client comes from 127.0.0.1 (the box,
  // the reconnect rate) are off: the store does all its reads and writes.
  { name: "product", command: denoRun(`${ROOT}/main.ts`, "-S", "--store", "none") },
  // The same through the launcher `make install` installs where it cannot
  // compile: sh, then the installed Deno on its prepared module cache.
  { name: "launcher", command: [`${LAUNCHER_PREFIX}/sbin/smtp-delay`, "-S", "--store", "none"] },
  // One process for every connection, in tcpserver's place, with tcpserver's
  // settings in server.ts (-v -R -H -l localhost -b 1024), room for every
  // client of the crowd scenarios in the screening (--waiting: they stay
  // under its 90%, where the stress would shorten the delays) and for every
  // session it hands on (-c); no cap per IP address (--per-ip), as every
  // client is 127.0.0.1.
  {
    name: "serve",
    server: true,
    command: denoRun(
      `${ROOT}/main.ts`,
      ...["serve", "-v", "-R", "-H", "-l", "localhost", "-b", "1024"],
      ...["-c", String(2 * CROWD), "--waiting", String(4 * CROWD), "--per-ip", "0"],
      ...["-S", "--store", "none", "127.0.0.1", "{port}"],
    ),
  },
  {
    name: "product+sqlite",
    command: denoRun(`${ROOT}/main.ts`, "-S", ...QUIET_MEMORY, "--store", `sqlite:${STATE_DB}`),
  },
  {
    name: "product+redis",
    command: denoRun(`${ROOT}/main.ts`, "-S", ...QUIET_MEMORY, "--store", REDIS_URL),
  },
  ...(Deno.env.get("EXTRA_PEERS") ?? "").split(";").filter((s) => s.includes("=")).map((s) => {
    const at = s.indexOf("=");
    const command = s.slice(at + 1).trim().split(/\s+/);
    return { name: s.slice(0, at).trim(), command, server: command.includes("{port}") };
  }),
];

interface Scenario {
  readonly name: string;
  readonly delayS: number;
  readonly patient: number;
  readonly early: number;
  readonly quitters: number;
  readonly concurrency: number;
  /** Sample memory every 200 ms (the delay scenario: connections wait). */
  readonly sampleMemory: boolean;
  /** Whether `peer` runs it (undefined: every peer does). */
  readonly runs?: (peer: Peer) => boolean;
}

const SCENARIOS: Scenario[] = [
  {
    name: "delay",
    delayS: DELAY_S,
    patient: 50,
    early: 50,
    quitters: 20,
    concurrency: 120,
    sampleMemory: true,
  },
  // On 2 cores, 120 Deno start-ups in a burst take longer than a 3 s delay: at
  // the delay scenario's peak some filters are still starting and others have
  // already handed on, so its memory figure mixes both. Here every filter has
  // started well before the first one hands on.
  {
    name: "memory",
    delayS: MEMORY_DELAY_S,
    patient: 50,
    early: 0,
    quitters: 0,
    concurrency: 50,
    sampleMemory: true,
  },
  // CROWD quiet clients at once (all patients, so every byte is checked):
  // what one server process holds. For the servers (serve, EXTRA_PEERS with
  // {port}), none and ref; not for one Deno process per connection (a
  // thousand of them need about 9 GB and 100 s of CPU on 2 cores).
  {
    name: "crowd",
    delayS: MEMORY_DELAY_S,
    patient: CROWD,
    early: 0,
    quitters: 0,
    concurrency: CROWD,
    sampleMemory: true,
    runs: (p) => !!p.server || p.name === "none" || p.name === "ref",
  },
  // Twice the crowd: (crowd2 - crowd) / CROWD is what one more waiting client
  // costs a server, without the heap's one-time growth that the crowd's
  // figure shares out. Servers only: tcpserver runs at most 1000 children (-c).
  {
    name: "crowd2",
    delayS: MEMORY_DELAY_S,
    patient: 2 * CROWD,
    early: 0,
    quitters: 0,
    concurrency: 2 * CROWD,
    sampleMemory: true,
    runs: (p) => !!p.server,
  },
  {
    name: "latency",
    delayS: 0,
    patient: 100,
    early: 0,
    quitters: 0,
    concurrency: 1,
    sampleMemory: false,
  },
  {
    name: "throughput",
    delayS: 0,
    patient: 300,
    early: 0,
    quitters: 0,
    concurrency: 20,
    sampleMemory: false,
  },
];

/** The named subset of `all`, in the order named; all of them when `names` is empty. */
function choose<T extends { name: string }>(
  all: T[],
  names: string | undefined,
  what: string,
): T[] {
  if (!names?.trim()) return all;
  return names.trim().split(/\s+/).map((n) => {
    const found = all.find((x) => x.name === n);
    if (!found) throw new Error(`Unknown ${what} "${n}" (known: ${all.map((x) => x.name)})`);
    return found;
  });
}

const say = (text: string) => console.error(`bench: ${text}`);

/** One measured run of one peer through one scenario. */
async function runOnce(peer: Peer, s: Scenario, run: number): Promise<RunRecord> {
  const work = await Deno.makeTempDir({ prefix: "smtp-delay-bench." });
  const recordDir = `${work}/record`;
  const delay = String(s.delayS);
  let server: Server | undefined;
  let sampler: { stop(): Promise<Sample[]> } | undefined;
  try {
    await Deno.mkdir(recordDir);
    server = await startServer({
      filter: peer.command,
      ownServer: !!peer.server,
      next: RECORDER,
      env: { RECORD_DIR: recordDir, SMTPDELAYd: delay, SMTPDELAYD: delay, SMTPDELAYP: delay },
      logPath: `${work}/tcpserver.log`,
    });
    const loadAvg = (await Deno.readTextFile("/proc/loadavg")).split(" ")[0]!;
    const target: SampleTarget = peer.server
      ? { root: server.pid, exclude: RECORDER, port: server.port }
      : { root: server.pid, exclude: RECORDER };
    const idle = await sample(target, performance.now());
    if (s.sampleMemory) sampler = startSampler(target, 200);
    const o: LoadOptions = {
      port: server.port,
      patient: s.patient,
      early: s.early,
      quitters: s.quitters,
      concurrency: s.concurrency,
      messageBytes: 4096,
      quitAfterMs: Math.max(s.delayS * 500, 50),
      ioTimeoutMs: (s.delayS + 60) * 1000,
      maxMs: 600_000,
      tag: `${peer.name}-${s.name}-${run}`,
      seed: 1,
    };
    const load = await runLoad(o);
    // Every child reaped (tcpserver says "status: 0/"): the recorder files are
    // complete and tcpserver's cutime/cstime hold all the CPU of the run.
    const idleAgain = await server.idle(30_000);
    const samples = (await sampler?.stop()) ?? [];
    const end = await processTree(server.pid);
    const clients = load.results.length;
    const record: RunRecord = {
      peer: peer.name,
      scenario: s.name,
      run,
      delayS: s.delayS,
      clients,
      concurrency: s.concurrency,
      wallMs: Math.round(load.wallMs),
      connPerS: Math.round(clients / (load.wallMs / 1000) * 10) / 10,
      unfinished: load.unfinished,
      ...loadFigures(load),
      verify: await verify(recordDir, load.results),
      memory: perConnection(idle, samples, !!peer.server),
      idle: { pssKb: idle.pssKb, dirtyKb: idle.dirtyKb },
      samples: samples.length,
      cpuMsPerConn: Math.round((cpuSeconds(end) - idle.cpuS) * 1000 / Math.max(clients, 1) * 100) /
        100,
      notIdle: !idleAgain,
      loadAvg: Number(loadAvg),
    };
    if (Deno.env.get("KEEP")) {
      await Deno.writeTextFile(`${work}/samples.json`, JSON.stringify(samples));
      const clients = load.results.map(({ sent, ...r }) => ({ ...r, sentBytes: sent.length }));
      await Deno.writeTextFile(`${work}/clients.json`, JSON.stringify(clients, null, 1));
    }
    return record;
  } finally {
    await sampler?.stop();
    await server?.stop();
    if (Deno.env.get("KEEP")) say(`work dir kept: ${work}`);
    else await Deno.remove(work, { recursive: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The checkout measured: "abc1234" or "abc1234+changes" ("unknown" outside git). */
async function describeCommit(): Promise<string> {
  const git = async (...args: string[]) => {
    const out = await new Deno.Command("git", { args: ["-C", ROOT, ...args], stderr: "null" })
      .output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  };
  try {
    const head = await git("rev-parse", "--short", "HEAD");
    const changes = await git("status", "--porcelain", "--", "main.ts", "src");
    return head ? `${head}${changes ? "+changes" : ""}` : "unknown";
  } catch {
    return "unknown";
  }
}

/** One line per run on stderr, so a long bench shows where it is. */
function progress(r: RunRecord): string {
  const k = r.kinds;
  const parts = [
    `patient ${k.patient.pass}/${k.patient.n}`,
    r.bannered < k.patient.n ? `banner 220 ${r.bannered}/${k.patient.n}` : "",
    k.early.n ? `early rejected ${k.early.reject}/${k.early.n}` : "",
    k.quitter.n ? `quit ${k.quitter.quit}/${k.quitter.n}` : "",
    `lost ${r.verify.lostBytes} B`,
    `banner p50 ${r.bannerMs?.p50.toFixed(1) ?? "-"} ms`,
    r.memory ? `${r.memory.dirtyKb} KB dirty/conn x ${r.memory.waitingConns}` : "",
    `${r.cpuMsPerConn} ms CPU/conn`,
    `${r.connPerS} conn/s`,
    `load average ${r.loadAvg} before`,
    r.notIdle ? "CHILDREN LEFT" : "",
  ];
  return parts.filter(Boolean).join(", ");
}

/** A few unmeasured sessions, so Deno's caches are warm and a broken peer stops the bench. */
async function warmUp(peer: Peer): Promise<void> {
  if (peer.command.length === 0) return;
  const work = await Deno.makeTempDir({ prefix: "smtp-delay-bench-warm." });
  let server: Server | undefined;
  try {
    server = await startServer({
      filter: peer.command,
      ownServer: !!peer.server,
      next: RECORDER,
      env: { SMTPDELAYd: "0", SMTPDELAYD: "0", SMTPDELAYP: "0" },
      logPath: `${work}/tcpserver.log`,
    });
    const load = await runLoad({
      port: server.port,
      patient: 3,
      early: 0,
      quitters: 0,
      concurrency: 1,
      messageBytes: 4096,
      quitAfterMs: 50,
      ioTimeoutMs: 30_000,
      maxMs: 60_000,
      tag: `warm-${peer.name}`,
      seed: 1,
    });
    const passed = load.results.filter((r) => r.outcome === "pass").length;
    if (passed !== 3) {
      const log = await Deno.readTextFile(`${work}/tcpserver.log`).catch(() => "");
      throw new Error(
        `Peer "${peer.name}" fails a plain session (${passed}/3 passed); its log:\n${log}`,
      );
    }
  } finally {
    await server?.stop();
    await Deno.remove(work, { recursive: true });
  }
}

/** Installs peer "launcher" afresh (scripts/install.sh, as `make install-launcher` does). */
async function installLauncher(): Promise<void> {
  await Deno.remove(LAUNCHER_PREFIX, { recursive: true }).catch(() => {});
  const out = await new Deno.Command("bash", {
    args: [`${ROOT}/scripts/install.sh`, "launcher"],
    env: { DENO, PERMISSIONS: PERMISSIONS.join(" "), PREFIX: LAUNCHER_PREFIX, DESTDIR: "" },
    stdin: "null",
  }).output();
  const said = new TextDecoder().decode(out.stderr).trim();
  if (!out.success) throw new Error(`Unable to install the launcher: ${said}`);
  say(said);
}

/** REPORT=FILE: the tables again from a raw JSON file of an earlier run, nothing measured. */
async function reprint(path: string): Promise<void> {
  const raw = JSON.parse(await Deno.readTextFile(path)) as {
    peers: Peer[];
    scenarios: Scenario[];
    records: RunRecord[];
  };
  console.log(
    markdown(raw.records, raw.scenarios.map((s) => s.name), raw.peers.map((p) => p.name)),
  );
}

async function main(): Promise<void> {
  const report = Deno.env.get("REPORT");
  if (report) return await reprint(report);
  let peers = choose(PEERS, Deno.env.get("PEERS"), "peer");
  const scenarios = choose(SCENARIOS, Deno.env.get("SCENARIOS"), "scenario");
  if (!(RUNS >= 1) || !(DELAY_S >= 0) || !(MEMORY_DELAY_S >= 0) || !(CROWD >= 1)) {
    throw new Error("RUNS and CROWD want 1 or more, DELAY and MEMORY_DELAY 0 or more");
  }
  if (peers.some((p) => p.name === "ref") && !(await exists(REFERENCE))) {
    // Built from ../shared/bench by `make bench`; without the harness, no ref.
    if (Deno.env.get("PEERS")) {
      throw new Error(`No "${REFERENCE}": run \`make build/smtp-delay-ref\` first`);
    }
    say(`no ${REFERENCE}: peer "ref" left out`);
    peers = peers.filter((p) => p.name !== "ref");
  }
  if (!(await exists(RECORDER))) {
    throw new Error(`No "${RECORDER}": run \`make build/recorder\` first`);
  }
  await readClockTick();
  const started = new Date();
  const commit = await describeCommit();
  say(`${peers.length} peers x ${scenarios.length} scenarios x ${RUNS} runs, at ${commit}`);
  await Deno.mkdir(`${ROOT}/build/bench`, { recursive: true });
  await Deno.remove(STATE_DB).catch(() => {});
  if (peers.some((p) => p.name.includes("redis"))) redis = await startRedis();
  if (peers.some((p) => p.name === "launcher")) await installLauncher();
  for (const p of peers) await warmUp(p);

  const records: RunRecord[] = [];
  for (let run = 1; run <= RUNS; run++) {
    for (const s of scenarios) {
      for (const p of peers.filter((p) => s.runs?.(p) ?? true)) {
        const t0 = performance.now();
        const r = await runOnce(p, s, run);
        records.push(r);
        const took = ((performance.now() - t0) / 1000).toFixed(1);
        say(`run ${run}/${RUNS} ${s.name} ${p.name} (${took} s): ${progress(r)}`);
      }
    }
  }

  // Others may commit while a long bench runs: then the runs measured more than one checkout.
  const ended = await describeCommit();
  if (ended !== commit) say(`the checkout changed during the run: ${commit}, then ${ended}`);
  const table = markdown(records, scenarios.map((s) => s.name), peers.map((p) => p.name));
  console.log(table);
  const dir = `${ROOT}/build/bench`;
  await Deno.mkdir(dir, { recursive: true });
  const stamp = started.toISOString().replace(/[-:]/g, "").replace(/\..*/, "");
  // The commands as a reader would type them (the flags live in ./permissions only).
  const shown = peers.map((p) => ({
    name: p.name,
    server: !!p.server,
    command: p.command.join(" ").replace(PERMISSIONS.join(" "), "$(cat permissions)")
      .replaceAll(DENO, "$DENO").replaceAll(`${ROOT}/`, ""),
  }));
  const json = JSON.stringify(
    { started, commit, commitAtEnd: ended, runs: RUNS, peers: shown, scenarios, records },
    null,
    1,
  );
  await Deno.writeTextFile(`${dir}/bench-${stamp}.json`, json);
  await Deno.writeTextFile(`${dir}/latest.json`, json);
  await Deno.writeTextFile(`${dir}/latest.md`, table + "\n");
  say(`raw figures: build/bench/bench-${stamp}.json`);
}

const onSignal = () => {
  say("interrupted: stopping the servers");
  redis?.kill();
  stopAll().finally(() => Deno.exit(130));
};
Deno.addSignalListener("SIGINT", onSignal);
Deno.addSignalListener("SIGTERM", onSignal);

let redis: Deno.ChildProcess | undefined;
let code = 0;
try {
  await main();
} catch (e) {
  say(`fatal: ${e instanceof Error ? e.message : String(e)}`);
  code = 111;
} finally {
  await stopAll();
  redis?.kill();
}
Deno.exit(code);
