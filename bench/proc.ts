/**
 * What the benchmark reads from /proc (Linux): a process tree, its CPU time
 * and the memory of its filter processes, sampled while a load runs.
 */

/** One process as /proc/PID/stat shows it. */
interface Stat {
  readonly ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks (reaped children included). */
  readonly ticks: number;
}

/** sysconf(_SC_CLK_TCK): 100 on every Linux this runs on; `getconf CLK_TCK` says. */
let ticksPerSecond = 100;

/** Asks getconf for the clock tick once (keeps 100 if it cannot). */
export async function readClockTick(): Promise<void> {
  try {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stderr: "null" }).output();
    const n = Number(new TextDecoder().decode(out.stdout).trim());
    if (out.success && n > 0) ticksPerSecond = n;
  } catch {
    // no getconf: keep the Linux default
  }
}

async function readStat(pid: number): Promise<Stat | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(`/proc/${pid}/stat`);
  } catch {
    return undefined; // gone
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const n = (i: number) => Number(f[i] ?? 0);
  return { ppid: n(1), ticks: n(11) + n(12) + n(13) + n(14) };
}

/** Every live process: pid -> stat. */
async function allStats(): Promise<Map<number, Stat>> {
  const pids: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (/^[0-9]+$/.test(e.name)) pids.push(Number(e.name));
  }
  const stats = await Promise.all(pids.map(readStat));
  const out = new Map<number, Stat>();
  pids.forEach((pid, i) => {
    const s = stats[i];
    if (s) out.set(pid, s);
  });
  return out;
}

/** `root` and all its descendants: pid -> stat. */
export async function processTree(root: number): Promise<Map<number, Stat>> {
  const all = await allStats();
  const children = new Map<number, number[]>();
  for (const [pid, s] of all) {
    const list = children.get(s.ppid) ?? [];
    list.push(pid);
    children.set(s.ppid, list);
  }
  const tree = new Map<number, Stat>();
  const todo = all.has(root) ? [root] : [];
  while (todo.length > 0) {
    const pid = todo.pop()!;
    if (tree.has(pid)) continue;
    tree.set(pid, all.get(pid)!);
    todo.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** The pids below `root` (root excluded), deepest last. */
export async function descendants(root: number): Promise<number[]> {
  return [...(await processTree(root)).keys()].filter((pid) => pid !== root);
}

/** CPU seconds of a tree: own time of each process plus its reaped children's. */
export function cpuSeconds(tree: Map<number, Stat>): number {
  let ticks = 0;
  for (const s of tree.values()) ticks += s.ticks;
  return ticks / ticksPerSecond;
}

/** Pss, Private (clean + dirty) and Private_Dirty of one process, in kB. */
interface Memory {
  pssKb: number;
  privateKb: number;
  dirtyKb: number;
}

async function rollup(pid: number): Promise<Memory> {
  const m: Memory = { pssKb: 0, privateKb: 0, dirtyKb: 0 };
  let text: string;
  try {
    text = await Deno.readTextFile(`/proc/${pid}/smaps_rollup`);
  } catch {
    return m; // gone, or a kernel thread
  }
  for (const line of text.split("\n")) {
    const match = /^(Pss|Private_Clean|Private_Dirty):\s+([0-9]+) kB/.exec(line);
    if (!match) continue;
    const kb = Number(match[2]);
    if (match[1] === "Pss") m.pssKb += kb;
    else m.privateKb += kb;
    if (match[1] === "Private_Dirty") m.dirtyKb += kb;
  }
  return m;
}

async function exeOf(pid: number): Promise<string> {
  try {
    return await Deno.readLink(`/proc/${pid}/exe`);
  } catch {
    return "";
  }
}

/** ESTABLISHED TCP sockets whose local port is `port` (the server's side of each connection). */
async function establishedOn(port: number): Promise<number> {
  let n = 0;
  for (const name of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = await Deno.readTextFile(name);
    } catch {
      continue; // no IPv6
    }
    for (const line of text.split("\n").slice(1)) {
      // "sl local_address rem_address st ...": "0100007F:0CEA 0100007F:9D21 01"
      const cols = line.trim().split(/\s+/);
      const local = cols[1]?.split(":")[1];
      if (cols[3] === "01" && local && parseInt(local, 16) === port) n++;
    }
  }
  return n;
}

/** One look at the server's tree. */
export interface Sample {
  /** Milliseconds since the sampler started. */
  readonly tMs: number;
  /**
   * Waiting connections. Under tcpserver: filter processes that are direct
   * children of the root, one per connection. An own server: its ESTABLISHED
   * sockets on the port, less the next programs it runs (each holds one).
   */
  readonly conns: number;
  /** Filter processes: every descendant whose executable is not the next program (and an own server). */
  readonly procs: number;
  /** Every process of the tree, root included. */
  readonly tree: number;
  readonly pssKb: number;
  readonly privateKb: number;
  readonly dirtyKb: number;
  /** CPU seconds of the whole tree so far (see cpuSeconds). */
  readonly cpuS: number;
}

/** Whose tree to sample, and how to tell its filter processes and its waiting connections. */
export interface SampleTarget {
  readonly root: number;
  /** The next program's executable: its processes are not the filter's. */
  readonly exclude: string;
  /**
   * Set when the root is an own server (smtp-delay serve) listening on this
   * port: the root is then a filter process too, and its connections are
   * counted from its sockets. Unset: tcpserver, one child per connection.
   */
  readonly port?: number;
}

/**
 * Samples the tree under `t.root`. Filter processes are the live descendants
 * whose executable is not `t.exclude` (the next program, which runs the
 * session after the hand-off and is the same for every peer), and the root
 * itself when it is an own server.
 */
export async function sample(t: SampleTarget, t0Ms: number): Promise<Sample> {
  const { root, exclude, port } = t;
  const tree = await processTree(root);
  const below = [...tree.keys()].filter((pid) => pid !== root);
  const exes = await Promise.all(below.map(exeOf));
  // No executable: a zombie (an ended next program not reaped yet) or gone.
  const mine = below.filter((_, i) => exes[i] !== exclude && exes[i] !== "");
  const next = below.filter((pid, i) => exes[i] === exclude && tree.get(pid)!.ppid === root);
  if (port !== undefined && tree.has(root)) mine.push(root);
  const [mems, sockets] = await Promise.all([
    Promise.all(mine.map(rollup)),
    port === undefined ? Promise.resolve(0) : establishedOn(port),
  ]);
  const sum = (k: keyof Memory) => mems.reduce((a, m) => a + m[k], 0);
  return {
    tMs: Math.round(performance.now() - t0Ms),
    conns: port === undefined
      ? mine.filter((pid) => tree.get(pid)!.ppid === root).length
      : Math.max(sockets - next.length, 0),
    procs: mine.length,
    tree: tree.size,
    pssKb: sum("pssKb"),
    privateKb: sum("privateKb"),
    dirtyKb: sum("dirtyKb"),
    cpuS: cpuSeconds(tree),
  };
}

/** What the sampler worker is asked to do. */
export interface SamplerRequest {
  readonly target: SampleTarget;
  readonly intervalMs: number;
}

/**
 * Samples every `intervalMs` until stop(), which returns every sample taken.
 * The sampling runs in a worker (sampler_worker.ts): reading smaps_rollup of
 * a hundred starting Deno processes takes long enough to hold up the load
 * generator's timers for seconds (quitters then left 3 to 6 s late instead of
 * DELAY/2) if it shares their thread.
 */
export function startSampler(
  target: SampleTarget,
  intervalMs: number,
): { stop(): Promise<Sample[]> } {
  const worker = new Worker(new URL("./sampler_worker.ts", import.meta.url).href, {
    type: "module",
  });
  const done = new Promise<Sample[]>((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<Sample[]>) => resolve(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(`Sampler failed: ${e.message}`));
    };
  });
  const request: SamplerRequest = { target, intervalMs };
  worker.postMessage(request);
  let stopping: Promise<Sample[]> | undefined;
  return {
    stop() {
      stopping ??= (async () => {
        worker.postMessage("stop");
        try {
          return await done;
        } finally {
          worker.terminate();
        }
      })();
      return stopping;
    },
  };
}

/** Memory per waiting connection: (peak - idle) / connections at the peak. */
export interface PerConnection {
  readonly waitingConns: number;
  readonly pssKb: number;
  readonly privateKb: number;
  readonly dirtyKb: number;
  readonly peak: Sample;
  /** The most Private_Dirty the filter processes held over the run, less the idle sample's: KB in all. */
  readonly maxDirtyKb: number;
}

/**
 * The peak is the sample with the most Private_Dirty (as the shared harness
 * does) or, `byConns`, the one with the most waiting connections (the most
 * Private_Dirty among equals): an own server's heap does not shrink when
 * its clients leave, so its Private_Dirty may top out after they have gone.
 * Undefined when no filter process was ever seen (no filter, or no wait).
 */
export function perConnection(
  idle: Sample,
  samples: readonly Sample[],
  byConns = false,
): PerConnection | undefined {
  let peak: Sample | undefined;
  let maxDirtyKb = 0;
  for (const s of samples) {
    maxDirtyKb = Math.max(maxDirtyKb, s.dirtyKb - idle.dirtyKb);
    const more = !peak ||
      (byConns
        ? s.conns > peak.conns || (s.conns === peak.conns && s.dirtyKb > peak.dirtyKb)
        : s.dirtyKb > peak.dirtyKb);
    if (more) peak = s;
  }
  if (!peak || peak.conns - idle.conns <= 0) return undefined;
  const conns = peak.conns - idle.conns;
  const per = (k: "pssKb" | "privateKb" | "dirtyKb") =>
    Math.round((peak[k] - idle[k]) / conns * 10) / 10;
  return {
    waitingConns: conns,
    pssKb: per("pssKb"),
    privateKb: per("privateKb"),
    dirtyKb: per("dirtyKb"),
    peak,
    maxDirtyKb,
  };
}
