/**
 * One run's figures (RunRecord), the median over runs, and the markdown
 * tables `make bench` prints.
 */
import type { ClientResult, Kind, LoadResult } from "./load.ts";
import type { PerConnection } from "./proc.ts";
import type { Verify } from "./verify.ts";

export interface Percentiles {
  readonly n: number;
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/** As the shared harness picks them: the value at index floor(q * n). */
export function percentiles(xs: readonly number[]): Percentiles | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const pick = (q: number) => round(s[Math.min(s.length - 1, Math.floor(q * s.length))]!, 2);
  return {
    n: s.length,
    min: round(s[0]!, 2),
    p50: pick(0.5),
    p90: pick(0.9),
    p99: pick(0.99),
    max: round(s[s.length - 1]!, 2),
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export interface KindStats {
  n: number;
  pass: number;
  reject: number;
  error: number;
  quit: number;
  /** Reply codes seen (early talkers, quitters). */
  codes: Record<string, number>;
  /** Reasons of errors and rejects. */
  why: Record<string, number>;
}

export interface RunRecord {
  readonly peer: string;
  readonly scenario: string;
  readonly run: number;
  readonly delayS: number;
  readonly clients: number;
  readonly concurrency: number;
  readonly wallMs: number;
  readonly connPerS: number;
  readonly unfinished: number;
  readonly kinds: Record<Kind, KindStats>;
  /** Patients that got a 220 banner. */
  readonly bannered: number;
  readonly bannerMs: Percentiles | undefined;
  readonly sessionMs: Percentiles | undefined;
  readonly earlyReplyMs: Percentiles | undefined;
  readonly verify: Verify;
  /** Memory per waiting connection (sampled scenarios with something waiting). */
  readonly memory: PerConnection | undefined;
  /** The filter processes' memory before the load (an own server's: the server at rest). */
  readonly idle?: { readonly pssKb: number; readonly dirtyKb: number };
  readonly samples: number;
  /** CPU of the tcpserver tree over the run, per client. */
  readonly cpuMsPerConn: number;
  /** The tree still had children when the run ended (then they were killed). */
  readonly notIdle: boolean;
  /** The 1-minute load average of the machine before the run (Deno's threads count too). */
  readonly loadAvg: number;
}

export function kindStats(results: readonly ClientResult[], kind: Kind): KindStats {
  const s: KindStats = { n: 0, pass: 0, reject: 0, error: 0, quit: 0, codes: {}, why: {} };
  for (const r of results) {
    if (r.kind !== kind) continue;
    s.n++;
    s[r.outcome]++;
    if (r.code !== undefined) s.codes[r.code] = (s.codes[r.code] ?? 0) + 1;
    if (r.why !== undefined) s.why[r.why] = (s.why[r.why] ?? 0) + 1;
  }
  return s;
}

export function loadFigures(load: LoadResult) {
  const rs = load.results;
  const ms = (k: "sessionMs" | "replyMs") => rs.flatMap((r) => (r[k] === undefined ? [] : [r[k]]));
  return {
    kinds: {
      patient: kindStats(rs, "patient"),
      early: kindStats(rs, "early"),
      quitter: kindStats(rs, "quitter"),
    },
    bannered: rs.filter((r) => r.kind === "patient" && r.bannerCode === 220).length,
    // Connect to the 220 banner: a patient closed without one has no banner time.
    bannerMs: percentiles(
      rs.flatMap((r) => r.bannerCode === 220 && r.bannerMs !== undefined ? [r.bannerMs] : []),
    ),
    sessionMs: percentiles(ms("sessionMs")),
    earlyReplyMs: percentiles(ms("replyMs")),
  };
}

// ---- over runs -------------------------------------------------------------

export function median(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

type Pick = (r: RunRecord) => number | undefined;

function med(rs: readonly RunRecord[], pick: Pick): number | undefined {
  return median(rs.flatMap((r) => {
    const x = pick(r);
    return x === undefined ? [] : [x];
  }));
}

function fixed(x: number | undefined, digits: number): string {
  return x === undefined ? "-" : x.toFixed(digits);
}

/** A count over runs: "50" when every run agrees, "48-50" when not. */
function count(rs: readonly RunRecord[], pick: (r: RunRecord) => number): string {
  const xs = rs.map(pick).sort((a, b) => a - b);
  if (xs.length === 0) return "-";
  return xs[0] === xs[xs.length - 1] ? `${xs[0]}` : `${xs[0]}-${xs[xs.length - 1]}`;
}

function codes(rs: readonly RunRecord[]): string {
  const seen = new Set<string>();
  for (const r of rs) Object.keys(r.kinds.early.codes).forEach((c) => seen.add(c));
  return [...seen].sort().join(",") || "-";
}

function row(cells: readonly string[]): string {
  return `| ${cells.join(" | ")} |`;
}

function header(cells: readonly string[]): string {
  return `${row(cells)}\n|${"---|".repeat(cells.length)}`;
}

const pct = (rs: readonly RunRecord[], p: "p50" | "p90" | "p99", scale: number, d: number) =>
  fixed(med(rs, (r) => r.bannerMs && r.bannerMs[p] * scale), d);

function delayTable(byPeer: Map<string, RunRecord[]>): string {
  const lines = [header([
    "peer",
    "patient pass",
    "early rejected (code)",
    "early let through",
    "quitters quit",
    "lost bytes",
    "early bytes at recorder",
    "empty recorder runs",
    "banner p50 / p90 / p99 s",
    "early reply p50 ms",
    "waiting conns",
    "Pss KB/conn",
    "Private_Dirty KB/conn",
    "CPU ms/conn",
    "conn/s",
  ])];
  for (const [peer, rs] of byPeer) {
    const k = (kind: Kind, o: keyof KindStats) => count(rs, (r) => r.kinds[kind][o] as number);
    lines.push(row([
      peer,
      `${k("patient", "pass")}/${k("patient", "n")}`,
      `${k("early", "reject")}/${k("early", "n")} (${codes(rs)})`,
      k("early", "pass"),
      `${k("quitter", "quit")}/${k("quitter", "n")}`,
      count(rs, (r) => r.verify.lostBytes),
      count(rs, (r) => r.verify.earlyReached),
      count(rs, (r) => r.verify.emptyRuns),
      `${pct(rs, "p50", 1e-3, 3)} / ${pct(rs, "p90", 1e-3, 3)} / ${pct(rs, "p99", 1e-3, 3)}`,
      fixed(med(rs, (r) => r.earlyReplyMs?.p50), 1),
      fixed(med(rs, (r) => r.memory?.waitingConns), 0),
      fixed(med(rs, (r) => r.memory?.pssKb), 0),
      fixed(med(rs, (r) => r.memory?.dirtyKb), 0),
      fixed(med(rs, (r) => r.cpuMsPerConn), 1),
      fixed(med(rs, (r) => r.connPerS), 1),
    ]));
  }
  return lines.join("\n");
}

function startTable(byPeer: Map<string, RunRecord[]>): string {
  const base = byPeer.get("none");
  const baseBanner = base && med(base, (r) => r.bannerMs?.p50);
  const baseCpu = base && med(base, (r) => r.cpuMsPerConn);
  const lines = [header([
    "peer",
    "patient pass",
    "lost bytes",
    "banner p50 / p90 / p99 ms",
    "added banner p50 ms",
    "CPU ms/conn",
    "added CPU ms/conn",
    "conn/s",
  ])];
  for (const [peer, rs] of byPeer) {
    const banner = med(rs, (r) => r.bannerMs?.p50);
    const cpu = med(rs, (r) => r.cpuMsPerConn);
    lines.push(row([
      peer,
      `${count(rs, (r) => r.kinds.patient.pass)}/${count(rs, (r) => r.kinds.patient.n)}`,
      count(rs, (r) => r.verify.lostBytes),
      `${pct(rs, "p50", 1, 1)} / ${pct(rs, "p90", 1, 1)} / ${pct(rs, "p99", 1, 1)}`,
      baseBanner === undefined || banner === undefined ? "-" : fixed(banner - baseBanner, 1),
      fixed(cpu, 1),
      baseCpu === undefined || cpu === undefined ? "-" : fixed(cpu - baseCpu, 1),
      fixed(med(rs, (r) => r.connPerS), 1),
    ]));
  }
  return lines.join("\n");
}

/** "+12%" of `x` over `floor`, and whether that is within `limit` percent. */
function against(x: number | undefined, floor: number | undefined, limit = 15): string {
  if (x === undefined || floor === undefined || floor <= 0) return "-";
  const p = (x / floor - 1) * 100;
  return `${p >= 0 ? "+" : ""}${p.toFixed(0)}% (${p <= limit ? "within" : "over"} ${limit}%)`;
}

/** The product against the floor: the targets of the issue. */
function targets(all: readonly RunRecord[], product: string, floor: string): string {
  const of = (peer: string, scenario: string) =>
    all.filter((r) => r.peer === peer && r.scenario === scenario);
  const lines: string[] = [];
  const line = (what: string, pick: Pick, scenario: string, digits: number, minus?: string) => {
    const none = minus ? med(of(minus, scenario), pick) : 0;
    const p = med(of(product, scenario), pick);
    const f = med(of(floor, scenario), pick);
    if (p === undefined || f === undefined || none === undefined) return;
    const pp = p - none;
    const ff = f - none;
    lines.push(
      row([
        what,
        scenario,
        fixed(pp, digits),
        fixed(ff, digits),
        fixed(pp - ff, digits),
        against(
          pp,
          ff,
        ),
      ]),
    );
  };
  for (const s of ["memory", "delay"]) {
    line("Private_Dirty KB per waiting conn", (r) => r.memory?.dirtyKb, s, 0);
    line("Pss KB per waiting conn", (r) => r.memory?.pssKb, s, 0);
  }
  // Not the delay scenario: there the floor also runs the recorder for every
  // early talker and quitter, and the product does not. The memory scenario
  // is the one with a delay (the product looks the PTR up there).
  for (const s of ["latency", "throughput", "memory"]) {
    line("CPU ms per conn, over none", (r) => r.cpuMsPerConn, s, 1, "none");
  }
  line("banner p50 ms at 0 s, over none", (r) => r.bannerMs?.p50, "latency", 1, "none");
  if (lines.length === 0) return "";
  return [
    header(["measure", "scenario", product, floor, "difference", `${product} vs ${floor}`]),
    ...lines,
  ].join("\n");
}

/** "yes" / "no" / "-" (nothing to compare). */
const yesNo = (ok: boolean | undefined) => ok === undefined ? "-" : ok ? "yes" : "no";

/**
 * A server (`serve`) against tcpserver + the C reference (`ref`), measured
 * in the same run: the targets of the one-process server.
 */
function serverTargets(all: readonly RunRecord[], server: string, ref: string): string {
  const of = (peer: string, scenario: string) =>
    all.filter((r) => r.peer === peer && r.scenario === scenario);
  const lines: string[] = [];
  /** One row: the medians of both peers, and whether the server's meets `met` (none: "-"). */
  const line = (
    what: string,
    scenario: string,
    pick: Pick,
    digits: number,
    met?: (server: number, ref: number | undefined) => boolean,
  ) => {
    const x = med(of(server, scenario), pick);
    if (x === undefined) return;
    const y = med(of(ref, scenario), pick);
    lines.push(row([what, scenario, fixed(x, digits), fixed(y, digits), yesNo(met?.(x, y))]));
  };
  const notAbove = (x: number, y: number | undefined) => y !== undefined && x <= y;
  const notBelow = (x: number, y: number | undefined) => y !== undefined && x >= y;
  /** Every client of that kind (the first run's count). */
  const every = (scenario: string, kind: Kind) => {
    const n = of(server, scenario)[0]?.kinds[kind].n ?? 0;
    return (x: number) => x >= n;
  };

  const n = of(server, "crowd")[0]?.clients ?? 1000;
  const atOnce = `clients waiting at once (peak; want ${n} or more)`;
  line(atOnce, "crowd", (r) => r.memory?.waitingConns, 0, (x) => x >= n);
  const bannered = "patients that got their 220 banner (want all)";
  line(bannered, "crowd", (r) => r.bannered, 0, every("crowd", "patient"));
  // The target is for a crowd; with 50 clients the server's first-use growth
  // (code compiled, heap grown) is shared out among few.
  for (const s of ["crowd", "crowd2", "memory"]) {
    const met = s === "memory" ? undefined : (x: number) => x < 20;
    const want = s === "memory" ? "" : " (want under 20)";
    line(`Private_Dirty KB per waiting client${want}`, s, (r) => r.memory?.dirtyKb, 1, met);
    line(`Pss KB per waiting client${want}`, s, (r) => r.memory?.pssKb, 1, met);
  }
  // What one more waiting client costs: crowd2 holds CROWD clients more than crowd.
  const added = (k: "dirtyKb" | "pssKb") => {
    const total = (scenario: string) =>
      med(of(server, scenario), (r) => r.memory && r.memory[k] * r.memory.waitingConns);
    const conns = (scenario: string) => med(of(server, scenario), (r) => r.memory?.waitingConns);
    const [a, b, na, nb] = [total("crowd"), total("crowd2"), conns("crowd"), conns("crowd2")];
    return a === undefined || b === undefined || na === undefined || nb === undefined || nb <= na
      ? undefined
      : (b - a) / (nb - na);
  };
  for (const k of ["dirtyKb", "pssKb"] as const) {
    const x = added(k);
    if (x === undefined) continue;
    const what = k === "dirtyKb" ? "Private_Dirty" : "Pss";
    lines.push(
      row([`${what} KB per added waiting client`, "crowd to crowd2", fixed(x, 1), "-", "-"]),
    );
  }
  const atRest = "Private_Dirty MB of the filter processes at rest";
  line(atRest, "crowd", (r) => r.idle && r.idle.dirtyKb / 1024, 1);
  for (const s of ["crowd", "crowd2"]) {
    const peak = "Private_Dirty MB of the filter processes, most clients waiting";
    line(peak, s, (r) => r.memory && r.memory.peak.dirtyKb / 1024, 1);
  }
  for (const s of ["latency", "throughput"]) {
    line("CPU ms per connection (want no more than ref)", s, (r) => r.cpuMsPerConn, 2, notAbove);
    line("connections per second (want no fewer than ref)", s, (r) => r.connPerS, 1, notBelow);
    line("banner p50 ms", s, (r) => r.bannerMs?.p50, 1, notAbove);
  }
  for (const p of ["p50", "p90", "p99"] as const) {
    const late = `banner ${p} s, 120-client burst (want no later than ref)`;
    line(late, "delay", (r) => r.bannerMs && r.bannerMs[p] / 1000, 3, notAbove);
  }
  line(bannered, "delay", (r) => r.bannered, 0, every("delay", "patient"));
  line(
    "patients that passed (want all)",
    "delay",
    (r) => r.kinds.patient.pass,
    0,
    every("delay", "patient"),
  );
  line(
    "early talkers rejected (want all)",
    "delay",
    (r) => r.kinds.early.reject,
    0,
    every("delay", "early"),
  );
  const quit = "quitters that left unanswered (want all)";
  line(quit, "delay", (r) => r.kinds.quitter.quit, 0, every("delay", "quitter"));
  const mine = all.filter((r) => r.peer === server);
  if (mine.length > 0) {
    const lost = Math.max(...mine.map((r) => r.verify.lostBytes));
    const refLost = all.filter((r) => r.peer === ref).map((r) => r.verify.lostBytes);
    lines.push(row([
      "lost bytes, worst run of any scenario (want 0)",
      "all",
      `${lost}`,
      refLost.length ? `${Math.max(...refLost)}` : "-",
      yesNo(lost === 0),
    ]));
  }
  if (lines.length === 0) return "";
  return [header(["measure", "scenario", server, ref, "met"]), ...lines].join("\n");
}

/** Every table, in the order of the scenarios and peers given. */
export function markdown(
  all: readonly RunRecord[],
  scenarios: readonly string[],
  peers: readonly string[],
): string {
  const out: string[] = [];
  for (const s of scenarios) {
    const byPeer = new Map<string, RunRecord[]>();
    for (const p of peers) {
      const rs = all.filter((r) => r.scenario === s && r.peer === p);
      if (rs.length > 0) byPeer.set(p, rs);
    }
    if (byPeer.size === 0) continue;
    const first = [...byPeer.values()][0]![0]!;
    const runs = Math.max(...[...byPeer.values()].map((rs) => rs.length));
    const kinds = Object.entries(first.kinds)
      .filter(([, k]) => k.n > 0)
      .map(([name, k]) => `${k.n} ${name}`)
      .join(" + ");
    out.push(
      `### ${s}: ${kinds}, ${first.concurrency} at once, delay ${first.delayS} s ` +
        `(median of ${runs} run${runs === 1 ? "" : "s"})`,
      "",
      first.delayS > 0 ? delayTable(byPeer) : startTable(byPeer),
      "",
    );
  }
  const t = targets(all, "product", "floor");
  if (t) out.push("### product against floor (target: within 15%)", "", t, "");
  const st = peers.includes("serve") ? serverTargets(all, "serve", "ref") : "";
  if (st) {
    out.push(
      "### serve against tcpserver + the C reference (ref), same run (medians)",
      "",
      st,
      "",
    );
  }
  return out.join("\n");
}
