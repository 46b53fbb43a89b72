/**
 * End-to-end fixtures: a real dnsmasq answering PTR queries; the screening in
 * its two modes, the filter under a real tcpserver with a tcprules cdb
 * (Server) or `smtp-delay serve` in tcpserver's place (ServeServer), both
 * run from source with the permission flags of `make dist`; and clients that
 * connect from their own 127.0.0.x.
 *
 * Every wait is bounded; nothing sleeps to synchronise: tests wait for a log
 * line, a reply or a file. Every test cleans up what it started (E2E turns
 * Deno's sanitizers on to check it): the processes are awaited, their pipes
 * read to the end, the clients' sockets closed, the timers cleared, and a
 * poll stops when it gives up.
 */
import assert from "node:assert/strict";
import net from "node:net";
import dgram from "node:dgram";
import { PERMISSIONS, ROOT, runFileEnv } from "../fixtures/source.ts";
import { tcprules } from "../fixtures/tcprules.ts";

/**
 * Deno: the Makefile's (a path relative to the checkout, or a name on PATH)
 * made absolute, for scripts that run it from another directory.
 */
const DENO =
  ((given) =>
    given === undefined
      ? `${ROOT}.tools/node_modules/.bin/deno`
      : given.includes("/") && !given.startsWith("/")
      ? `${Deno.cwd()}/${given}`
      : given)(Deno.env.get("DENO"));

/** The filter as tcpserver runs it: `deno run FLAGS main.ts`. */
export const FILTER = [DENO, "run", ...PERMISSIONS, `${ROOT}main.ts`];
export const RECORDER = `${ROOT}build/recorder`;

/**
 * The options of every e2e test: Deno's op and resource sanitizers on (off by
 * default since Deno 2.8), so that a test fails when it leaves a process, a
 * pipe, a socket or a timer behind. A test that cannot be clean turns one off
 * and says why.
 */
export const E2E = { sanitizeOps: true, sanitizeResources: true } as const;

/** How long any single wait may take before the test fails. */
export const TIMEOUT_MS = 10_000;

const decoder = new TextDecoder();

/** A message, or the function that makes it when it is needed (what was logged by then). */
export type What = string | (() => string);

const said = (what: What) => typeof what === "string" ? what : what();

/** Rejects after `ms` with `what` in the message; the timer is cleared either way. */
export function within<T>(ms: number, what: What, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${said(what)}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Calls `probe` every `everyMs` until it returns a value, and returns it;
 * fails after `ms` with `what` in the message. The loop ends with the
 * failure: nothing polls on into the next test.
 */
export async function poll<T>(
  what: What,
  probe: () => Promise<T | undefined> | T | undefined,
  everyMs = 10,
  ms = TIMEOUT_MS,
): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const got = await probe();
    if (got !== undefined) return got;
    if (performance.now() >= end) throw new Error(`timed out after ${ms} ms: ${said(what)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * A pipe from a child process, read line by line to its end as it comes (a
 * pipe left unread stays open, and can fill and block the writer). It ends
 * when every process holding its other end is gone: the child, and those
 * that inherited it from the child (under tcpserver, the chain of each
 * connection).
 */
export class Pipe {
  /** The lines so far (and, once the pipe ended, what followed the last newline). */
  readonly lines: string[] = [];
  private rest = "";
  private ended = false;
  private waiters: Array<() => void> = [];
  private readonly reader: ReadableStreamDefaultReader<string>;
  private readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    this.done = this.pump();
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await this.reader.read();
        if (done) break;
        const parts = (this.rest + value).split("\n");
        this.rest = parts.pop()!;
        this.lines.push(...parts);
        this.wake();
      }
    } catch {
      // cancelled (see close), or the pipe failed: its end either way
    }
    if (this.rest) this.lines.push(this.rest);
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `ready()` holds, at most TIMEOUT_MS; fails if the pipe ends first. */
  async until(ready: () => boolean, what: What): Promise<void> {
    await within(
      TIMEOUT_MS,
      what,
      (async () => {
        while (!ready()) {
          if (this.ended) throw new Error(`the pipe ended before ${said(what)}`);
          await new Promise<void>((wake) => this.waiters.push(wake));
        }
      })(),
    );
  }

  /**
   * Waits for the end, at most TIMEOUT_MS, then stops reading (a process
   * that writes on gets EPIPE). False when it had to stop.
   */
  async close(): Promise<boolean> {
    try {
      await within(TIMEOUT_MS, "the end of a pipe", this.done);
      return true;
    } catch {
      await this.reader.cancel();
      await this.done;
      return false;
    }
  }
}

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Test clients and the names dnsmasq serves for the TEST-NET address each one is given. */
export const PTR: Record<string, string> = {
  "192.0.2.2": "mail.example.net",
  "192.0.2.3": "dsl-192-0-2-3.pool.example.net",
  "2001:db8::25": "mx6.example.net",
};

export interface Dns {
  readonly address: string; // IP:PORT, as SMTPDELAY_DNS wants it
  stop(): Promise<void>;
}

function ip6Arpa(bytesHex: string): string {
  return [...bytesHex].reverse().join(".") + ".ip6.arpa";
}

/**
 * dnsmasq on a loopback port, authoritative for 2.0.192.in-addr.arpa and
 * 2001:db8::/32's reverse zone: names in PTR, NXDOMAIN for the rest.
 * `extra`: more of dnsmasq's options (a test's own records).
 */
export async function startDns(extra: readonly string[] = []): Promise<Dns> {
  const port = freePort(); // dnsmasq wants UDP and TCP on it; the TCP check is good enough here
  const records = Object.entries(PTR).map(([ip, name]) => {
    const rev = ip.includes(":")
      ? ip6Arpa("20010db8000000000000000000000025")
      : ip.split(".").reverse().join(".") + ".in-addr.arpa";
    return `--ptr-record=${rev},${name}`;
  });
  const child = new Deno.Command("dnsmasq", {
    args: [
      "--no-daemon",
      "--conf-file=/dev/null",
      `--port=${port}`,
      "--listen-address=127.0.0.1",
      "--bind-interfaces",
      "--no-resolv",
      "--no-hosts",
      "--user=root",
      "--pid-file=",
      "--local=/2.0.192.in-addr.arpa/",
      "--local=/8.b.d.0.1.0.0.2.ip6.arpa/",
      ...records,
      ...extra,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // dnsmasq says "started" once it listens, "exiting" at SIGTERM.
  const stderr = new Pipe(child.stderr);
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // gone already
    }
    await child.status;
    await stderr.close();
  };
  try {
    await stderr.until(
      () => stderr.lines.some((l) => l.includes("started")),
      () => `dnsmasq to start: ${stderr.lines.join("\n")}`,
    );
    // Then check that it answers.
    const answer = await Deno.resolveDns("2.2.0.192.in-addr.arpa", "PTR", {
      nameServer: { ipAddr: "127.0.0.1", port },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    if (answer[0] !== "mail.example.net.") throw new Error(`dnsmasq answers ${answer}`);
  } catch (e) {
    await stop();
    throw e;
  }
  return { address: `127.0.0.1:${port}`, stop };
}

/** A UDP port that swallows queries and never answers: a dead resolver. */
export function blackHole(): Promise<Dns> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket("udp4");
    socket.on("message", () => {});
    socket.bind(0, "127.0.0.1", () => {
      resolve({
        address: `127.0.0.1:${socket.address().port}`,
        stop: () => new Promise<void>((closed) => socket.close(() => closed())),
      });
    });
  });
}

/** One tcprules line: the client's 127.0.0.x and the variables tcpserver sets for it. */
export interface Rule {
  readonly from: string;
  readonly env: Readonly<Record<string, string>>;
}

/** A Rule as a tcprules line (`127.0.0.2:allow,TCPREMOTEIP="192.0.2.2"`); strings as they are. */
export function ruleLine(rule: Rule | string): string {
  if (typeof rule === "string") return rule;
  return `${rule.from}:allow` + Object.entries(rule.env).map(([k, v]) => `,${k}="${v}"`).join("");
}

/** Writes `lines` (tcprules syntax, one rule each) into the cdb `path` with tcprules. */
export async function writeRules(path: string, lines: readonly string[]): Promise<void> {
  await tcprules(path, lines.join("\n") + "\n");
}

/** What the next program was handed. */
export interface Handed {
  readonly info: { [key: string]: string };
  readonly env: { [name: string]: string };
  readonly input: Uint8Array;
}

/** What the recorder wrote in `records` for `pid`, or undefined when it never ran under that pid. */
export async function readRecord(records: string, pid: number): Promise<Handed | undefined> {
  const base = `${records}/${pid}`;
  let info: string;
  try {
    info = await Deno.readTextFile(`${base}.info`);
  } catch {
    return undefined;
  }
  const env: { [name: string]: string } = {};
  for (const entry of (await Deno.readTextFile(`${base}.env`)).split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  const fields: { [key: string]: string } = {};
  for (const line of info.trim().split("\n")) {
    const eq = line.indexOf("=");
    fields[line.slice(0, eq)] = line.slice(eq + 1).trim();
  }
  return { info: fields, env, input: await Deno.readFile(`${base}.in`) };
}

/**
 * A fresh directory for one server: `records` for the recorder and, unless
 * `rules` is undefined, the cdb `rules.cdb` of `rules` then ":allow".
 */
async function serverDir(
  prefix: string,
  rules: ReadonlyArray<Rule | string> | undefined,
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  await Deno.mkdir(`${dir}/records`);
  if (rules) await writeRules(`${dir}/rules.cdb`, [...rules.map(ruleLine), ":allow"]);
  return dir;
}

/**
 * The environment a server in `dir` starts with: a run file's (empty but for
 * a few variables), the recorder's directory, no memory unless a test asks,
 * then `env`.
 */
export function serverEnv(
  dir: string,
  env: Readonly<Record<string, string>> = {},
): Record<string, string> {
  return runFileEnv({ RECORD_DIR: `${dir}/records`, SMTPDELAY_STORE: "none", ...env });
}

/** The servers running, by port: a client that connects notes where the log stood. */
const running = new Map<number, Logged>();
/** Where a server's log stood when a client began to connect, by `serverPort:clientPort`. */
const connectMarks = new Map<string, number>();

/**
 * What Server and ServeServer share: the process, the log lines of a running
 * server (its stderr, line by line), waits on them, the recorder's files, and
 * how a connection that must start nothing is checked.
 */
export abstract class Logged {
  /** Where the recorder writes its files. */
  readonly records: string;
  /** The server's exit status, once it exited. */
  readonly exited: Promise<Deno.CommandStatus>;
  /** The clients connected to it (Peer.connect adds them): stop() closes them. */
  readonly peers = new Set<Peer>();
  /** Its stderr: its log and that of every process it started. */
  private readonly log: Pipe;

  protected constructor(
    readonly port: number,
    private readonly child: Deno.ChildProcess,
    readonly dir: string,
    /** Another pipe of the child's, read to its end (serve's stdout). */
    private readonly out?: Pipe,
  ) {
    this.records = `${dir}/records`;
    this.exited = child.status;
    this.log = new Pipe(child.stderr);
    running.set(port, this);
    this.exited.finally(() => running.get(port) === this && running.delete(port));
  }

  /** The log lines so far, the server's and its children's (its stderr, line by line). */
  get lines(): string[] {
    return this.log.lines;
  }

  /**
   * The server's own pid: tcpserver's, or serve's (the Deno process). It is
   * the parent of what starts for a connection: the filter under tcpserver,
   * and the next program when the filter exec'd it; serve's child.
   */
  get pid(): number {
    return this.child.pid;
  }

  /** The first log line matching `re` at index `from` or later (waits for it). */
  async waitLog(re: RegExp, what = String(re), from = 0): Promise<string> {
    let at = from;
    await this.log.until(() => {
      for (; at < this.lines.length; at++) if (re.test(this.lines[at]!)) return true;
      return false;
    }, () => `log line ${what}\n${this.lines.join("\n")}`);
    return this.lines[at]!;
  }

  /**
   * The pid started for the connection from local port `clientPort` (its
   * `ok` line), looking from where the log stood when that client began to
   * connect (a client that connects many times may be given a port again:
   * the older connection's line is not this one's), or from line `from`.
   */
  async pidOf(clientPort: number, from = connectMarks.get(`${this.port}:${clientPort}`) ?? 0) {
    const line = await this.waitLog(
      new RegExp(`^tcpserver: ok (\\d+) .*::${clientPort}$`),
      `ok line for port ${clientPort}`,
      from,
    );
    return Number(line.split(" ")[2]);
  }

  /**
   * Waits until that connection's process ended; returns its exit code (from
   * the wait status tcpserver logs), or minus the signal that killed it.
   */
  async endOf(pid: number): Promise<number> {
    const line = await this.waitLog(new RegExp(`^tcpserver: end ${pid} status `));
    const status = Number(line.split(" ").pop());
    return (status & 0x7f) === 0 ? status >> 8 : -(status & 0x7f);
  }

  /** Log lines the chain wrote for `pid` (the filter's lines carry pid=PID). */
  linesOf(pid: number, prefix = "smtp-delay:"): string[] {
    return this.lines.filter((l) =>
      l.startsWith(prefix) && (l.includes(` pid=${pid} `) || l.includes(` pid ${pid}:`))
    );
  }

  /** What the recorder wrote for `pid`, or undefined when it never ran under that pid. */
  async record(pid: number): Promise<Handed | undefined> {
    return await readRecord(this.records, pid);
  }

  /** How many times the recorder ran. */
  async recorderRuns(): Promise<number> {
    let n = 0;
    for await (const e of Deno.readDir(this.records)) if (e.name.endsWith(".info")) n++;
    return n;
  }

  /**
   * Waits until the client on local port `clientPort` sits in the screening:
   * the filter polls its fd 0, or serve holds its socket.
   */
  abstract inScreening(clientPort: number): Promise<void>;

  /**
   * Runs `session`, a client whose connection must start no next program,
   * checks that none started, and returns the outcome line it logged
   * (`event`: EARLY, CLOSED, REFUSED...) and the pid that line must carry.
   */
  abstract startsNothing(
    event: string,
    session: () => Promise<Peer>,
  ): Promise<{ line: string; pid: number }>;

  /**
   * Closes the clients still connected, sends SIGTERM and waits for the
   * server to exit (serve hands its waiting clients on first); SIGKILL if it
   * has not after TIMEOUT_MS (the SIGTERM tests check the exit itself). Then
   * reads its log to the end, which comes once the processes it started
   * (the chains, the sessions) are gone too; removes the server's directory.
   */
  async stop(): Promise<void> {
    await Promise.all([...this.peers].map((peer) => peer.shut()));
    const signal = (name: Deno.Signal) => {
      try {
        this.child.kill(name);
      } catch {
        // already gone
      }
    };
    signal("SIGTERM");
    const timer = setTimeout(() => signal("SIGKILL"), TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
    await this.log.close();
    await this.out?.close();
    await Deno.remove(this.dir, { recursive: true });
  }

  /** Sends the server a signal. */
  kill(signal: Deno.Signal): void {
    this.child.kill(signal);
  }
}

export interface ServerOptions {
  /** The chain after tcpserver, before the recorder: e.g. [...FILTER, "-S"]. */
  readonly chain: readonly string[];
  /** Per-client variables, through a tcprules cdb. */
  readonly rules?: readonly Rule[];
  /** Variables of the run file (the environment tcpserver starts with). */
  readonly env?: Readonly<Record<string, string>>;
  /** The last program; the recorder unless told otherwise. */
  readonly last?: readonly string[];
}

/**
 * A tcpserver on 127.0.0.1 and what it logged (its stderr is the chain's
 * too), under an empty environment, as djb's tests run it.
 */
export class Server extends Logged {
  static async start(options: ServerOptions): Promise<Server> {
    const dir = await serverDir("smtp-delay-e2e-", options.rules ?? []);
    const port = freePort();
    const child = new Deno.Command("tcpserver", {
      args: [
        "-v",
        "-R",
        "-H",
        "-x",
        `${dir}/rules.cdb`,
        "-c",
        "200",
        "127.0.0.1",
        String(port),
        ...options.chain,
        ...(options.last ?? [RECORDER]),
      ],
      clearEnv: true,
      env: serverEnv(dir, options.env),
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const server = new Server(port, child, dir);
    await server.waitLog(/^tcpserver: status: 0\//).catch(async (e) => {
      await server.stop();
      throw e;
    });
    return server;
  }

  /** Under tcpserver: the filter started for the client sits in poll(2) on fd 0. */
  async inScreening(clientPort: number): Promise<void> {
    await watching(await this.pidOf(clientPort));
  }

  /**
   * Under tcpserver the filter is the process started: its line carries its
   * pid, it exits 0, and the recorder never runs under that pid. The line is
   * every line of that pid, joined: a pattern with ^ and $ wants just one.
   */
  async startsNothing(
    _event: string,
    session: () => Promise<Peer>,
  ): Promise<{ line: string; pid: number }> {
    const client = await session();
    const pid = await this.pidOf(client.localPort);
    assert.equal(await this.endOf(pid), 0, "the filter exits 0");
    assert.equal(await this.record(pid), undefined, "the recorder did not run");
    return { line: this.linesOf(pid).join("\n"), pid };
  }
}

export interface ServeOptions {
  /**
   * serve's options, before HOST PORT: tcpserver's, the screening's and its
   * own (the harness adds -1, -v unless `quiet`, and -x with the rules).
   */
  readonly args: readonly string[];
  /** Rules (Rule, or a tcprules line such as "127.0.0.9:deny"); ":allow" ends them. */
  readonly rules?: ReadonlyArray<Rule | string>;
  /** No -x at all. */
  readonly noRules?: boolean;
  /** Variables of the run file, over the empty environment's few. */
  readonly env?: Readonly<Record<string, string>>;
  /** The next program; the recorder unless told otherwise. */
  readonly last?: readonly string[];
  /** A command that runs serve, e.g. ["prlimit", "--nofile=40:40"]. */
  readonly wrap?: readonly string[];
  /** Leave -v out (then no tcpserver lines: pidOf and endOf wait in vain). */
  readonly quiet?: boolean;
}

/**
 * `smtp-delay serve` on 127.0.0.1 (port 0, printed by -1), under an empty
 * environment, with the recorder as the next program; the same methods as
 * Server. Its tcpserver lines carry the child's pid, which is the
 * recorder's: serve starts it with no process in between.
 */
export class ServeServer extends Logged {
  get rulesFile(): string {
    return `${this.dir}/rules.cdb`;
  }

  static async start(options: ServeOptions): Promise<ServeServer> {
    const dir = await serverDir(
      "smtp-delay-serve-",
      options.noRules ? undefined : options.rules ?? [],
    );
    const child = new Deno.Command(options.wrap?.[0] ?? FILTER[0]!, {
      args: [
        ...(options.wrap ? [...options.wrap.slice(1), FILTER[0]!] : []),
        ...FILTER.slice(1),
        "serve",
        "-1",
        ...(options.quiet ? [] : ["-v"]),
        ...(options.noRules ? [] : ["-x", `${dir}/rules.cdb`]),
        ...options.args,
        "127.0.0.1",
        "0",
        ...(options.last ?? [RECORDER]),
      ],
      clearEnv: true,
      env: serverEnv(dir, options.env),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // -1: the port on stdout, once it listens.
    const stdout = new Pipe(child.stdout);
    try {
      await stdout.until(() => stdout.lines.length > 0, "serve to print its port");
    } catch (e) {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone
      }
      const err = await new Response(child.stderr).text();
      await child.status;
      await stdout.close();
      await Deno.remove(dir, { recursive: true });
      throw new Error(`${(e as Error).message}\n${err}`);
    }
    const out = stdout.lines[0]!;
    const server = new ServeServer(Number(out), child, dir, stdout);
    if (!/^[0-9]+$/.test(out)) {
      await server.stop();
      throw new Error(`serve -1 printed ${JSON.stringify(out)}`);
    }
    if (!options.quiet) {
      await server.waitLog(/^tcpserver: status: 0\//).catch(async (e) => {
        await server.stop();
        throw e;
      });
    }
    return server;
  }

  /** In serve: serve holds the client's socket (see holds). */
  async inScreening(clientPort: number): Promise<void> {
    await this.holds(clientPort);
  }

  /**
   * serve starts no process: the line (the first `event` line after the
   * session began) carries pid=0, and no `tcpserver: ok` line nor recorder
   * run follows.
   */
  async startsNothing(
    event: string,
    session: () => Promise<Peer>,
  ): Promise<{ line: string; pid: number }> {
    const runs = await this.recorderRuns();
    const from = this.lines.length;
    await session();
    const line = await this.waitLog(new RegExp(`^smtp-delay: info: ${event} `), event, from);
    assert.equal(await this.recorderRuns(), runs, "the recorder did not run");
    assert.ok(
      !this.lines.slice(from).some((l) => l.startsWith("tcpserver: ok ")),
      this.lines.join("\n"),
    );
    return { line, pid: 0 };
  }

  /**
   * Sends SIGHUP and returns the counts of the RELOAD line it logs: a probe
   * of serve's state that changes nothing but re-reading its files.
   */
  async reload(): Promise<{ waiting: number; children: number }> {
    const from = this.lines.length;
    this.kill("SIGHUP");
    const line = await this.waitLog(/^smtp-delay: info: RELOAD /, "RELOAD", from);
    const m = /^smtp-delay: info: RELOAD waiting=(\d+) children=(\d+)$/.exec(line);
    if (!m) throw new Error(`RELOAD line ${JSON.stringify(line)}`);
    return { waiting: Number(m[1]), children: Number(m[2]) };
  }

  /**
   * Whether serve holds the server side of the connection from local port
   * `clientPort` (accepted: in the screening or queued; not yet handed on).
   */
  async isHolding(clientPort: number): Promise<boolean> {
    const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, "0");
    const table = await Deno.readTextFile("/proc/net/tcp");
    const inodes = new Set<string>();
    for (const row of table.split("\n").slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f[1]?.endsWith(`:${hex(this.port)}`) && f[2]?.endsWith(`:${hex(clientPort)}`)) {
        inodes.add(`socket:[${f[9]}]`);
      }
    }
    if (inodes.size === 0) return false;
    try {
      for await (const e of Deno.readDir(`/proc/${this.pid}/fd`)) {
        const link = await Deno.readLink(`/proc/${this.pid}/fd/${e.name}`).catch(() => "");
        if (inodes.has(link)) return true;
      }
    } catch {
      // serve is gone
    }
    return false;
  }

  /** Waits until serve holds the client on local port `clientPort` (see isHolding). */
  async holds(clientPort: number): Promise<void> {
    await poll(
      `serve to hold the client on port ${clientPort}`,
      async () => await this.isHolding(clientPort) || undefined,
      5,
    );
  }
}

/** The two ways to run the screening: the filter under tcpserver, or `smtp-delay serve`. */
export type Mode = "filter" | "serve";
export const MODES: readonly Mode[] = ["filter", "serve"];

/** A server of either mode. */
export type AnyServer = Server | ServeServer;

export interface ModeOptions {
  /** The screening's options: after FILTER under tcpserver, after `serve -H` in serve. */
  readonly args: readonly string[];
  /** Per-client variables, through a tcprules cdb. */
  readonly rules?: readonly Rule[];
  /** Variables of the run file. */
  readonly env?: Readonly<Record<string, string>>;
  /** What runs after the screening; the recorder unless told otherwise. */
  readonly last?: readonly string[];
}

/** Starts a server of `mode`: the same screening, clients, variables and next program. */
export async function startServer(mode: Mode, options: ModeOptions): Promise<AnyServer> {
  const { args, ...rest } = options;
  return mode === "filter"
    ? await Server.start({ chain: [...FILTER, ...args], ...rest })
    : await ServeServer.start({ args: ["-H", ...args], ...rest });
}

/**
 * A TCP client, its received bytes buffered: from any address (IPv6 too),
 * able to half-close (FIN, still reading) and to reset (RST); it tells when
 * the server's end arrived.
 */
export class Peer {
  readonly received: number[] = [];
  /**
   * performance.now() when the connection was asked for: before the server
   * could accept it and start its clock (a delay, a cap), so a lower bound on
   * a server's time holds from here; the client's "connect" event may come
   * after the server's accept.
   */
  readonly connectedAt: number;
  /** performance.now() when the first byte arrived. */
  firstByteAt: number | undefined;
  /** performance.now() when the server's FIN (or a close or an error) arrived. */
  endedAt: number | undefined;
  /** The local port, as connected (the socket forgets it once closed). */
  readonly localPort: number;
  /** The local address, as connected. */
  readonly localAddress: string;
  /** Resolves once the socket is closed (closed here, or by the server's end). */
  readonly closed: Promise<void>;
  private waiters: Array<() => void> = [];

  private constructor(private readonly socket: net.Socket, connectedAt: number) {
    this.connectedAt = connectedAt;
    this.localPort = socket.localPort!;
    this.localAddress = socket.localAddress!;
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("data", (d: Uint8Array) => {
      this.firstByteAt ??= performance.now();
      this.received.push(...d);
      this.wake();
    });
    for (const event of ["end", "close", "error"]) {
      socket.on(event, () => {
        this.endedAt ??= performance.now();
        this.wake();
      });
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Connects to `host`:`port`, from the address `from` when given. */
  static connect(host: string, port: number, from?: string): Promise<Peer> {
    return within(
      TIMEOUT_MS,
      `connect to ${host} port ${port}${from === undefined ? "" : ` from ${from}`}`,
      new Promise((resolve, reject) => {
        const askedAt = performance.now();
        const server = running.get(port);
        const mark = server?.lines.length;
        const socket = net.createConnection({
          host,
          port,
          ...(from === undefined ? {} : { localAddress: from }),
        });
        socket.once("connect", () => {
          if (mark !== undefined) connectMarks.set(`${port}:${socket.localPort}`, mark);
          const peer = new Peer(socket, askedAt);
          server?.peers.add(peer);
          resolve(peer);
        });
        socket.once("error", reject);
      }),
    );
  }

  /** The server's end arrived (or the socket failed). */
  get ended(): boolean {
    return this.endedAt !== undefined;
  }

  get text(): string {
    return decoder.decode(new Uint8Array(this.received));
  }

  send(data: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.write(data, (e?: Error | null) => e ? reject(e) : resolve())
    );
  }

  /** Half-close: sends FIN, keeps reading. */
  endOutput(): void {
    this.socket.end();
  }

  /** Resets the connection (SO_LINGER 0, then close: RST). */
  reset(): void {
    this.socket.resetAndDestroy();
  }

  close(): void {
    this.socket.destroy();
  }

  /** Closes the socket and waits until it is (its resource released). */
  async shut(): Promise<void> {
    this.socket.destroy();
    await within(TIMEOUT_MS, `the socket from port ${this.localPort} to close`, this.closed);
  }

  /** Waits until `ready()` holds; fails if the server ends first. */
  async wait(ready: () => boolean, what: string): Promise<void> {
    await within(
      TIMEOUT_MS,
      `${what}, got ${JSON.stringify(this.text)}`,
      (async () => {
        while (!ready()) {
          if (this.ended) throw new Error(`ended before ${what}: got ${JSON.stringify(this.text)}`);
          await new Promise<void>((wake) => this.waiters.push(wake));
        }
      })(),
    );
  }

  /** Waits until the text received matches `re`; returns the match. */
  async until(re: RegExp): Promise<string> {
    await this.wait(() => re.test(this.text), String(re));
    return re.exec(this.text)![0];
  }

  /** Waits for the server's end; returns everything received. */
  async untilEnd(): Promise<string> {
    await within(
      TIMEOUT_MS,
      `the end, got ${JSON.stringify(this.text)}`,
      (async () => {
        while (!this.ended) await new Promise<void>((wake) => this.waiters.push(wake));
      })(),
    );
    return this.text;
  }
}

/** A test client: a Peer from a chosen 127.0.0.x to the server on 127.0.0.1. */
export type Client = Peer;
export const Client = {
  /** Connects from `from` (a 127.0.0.x, which tcprules tells apart) to 127.0.0.1 `port`. */
  connect(port: number, from: string): Promise<Client> {
    return Peer.connect("127.0.0.1", port, from);
  },
};

/** Connects from `from` and waits for the recorder's banner; the client and its pid. */
export async function greeted(
  server: Logged,
  from: string,
): Promise<{ client: Client; pid: number }> {
  const client = await Client.connect(server.port, from);
  await client.until(/^220 recorder ESMTP\r\n/);
  return { client, pid: await server.pidOf(client.localPort) };
}

/** The final lines of the SMTP replies received so far ("250 ok", not "250-x"). */
export function finalReplies(text: string): string[] {
  return text.match(/^[0-9]{3} [^\r\n]*(?=\r\n)/gm) ?? [];
}

/**
 * A patient SMTP session: waits for the 220 banner, then sends each command
 * and waits for its reply (EHLO, MAIL, RCPT, DATA, `message` and the dot,
 * QUIT). Returns every byte it sent, for comparing with what the next program
 * read.
 */
export async function patient(client: Client, message: Uint8Array): Promise<Uint8Array> {
  const enc = new TextEncoder();
  const sent: number[] = [];
  let replies = 1;
  const command = async (data: Uint8Array, code: string) => {
    sent.push(...data);
    await client.send(data);
    replies++;
    await client.wait(() => finalReplies(client.text).length >= replies, `reply ${replies}`);
    const last = finalReplies(client.text)[replies - 1]!;
    if (!last.startsWith(code)) throw new Error(`wanted ${code}, got ${JSON.stringify(last)}`);
  };
  await client.until(/^220 [^\r\n]*\r\n/);
  await command(enc.encode("EHLO client.example.org\r\n"), "250");
  await command(enc.encode("MAIL FROM:<a@example.org>\r\n"), "250");
  await command(enc.encode("RCPT TO:<b@example.net>\r\n"), "250");
  await command(enc.encode("DATA\r\n"), "354");
  await command(new Uint8Array([...message, ...enc.encode(".\r\n")]), "250");
  await command(enc.encode("QUIT\r\n"), "221");
  return new Uint8Array(sent);
}

/** A message body of `size` bytes with every byte value but bare CR/LF, in CRLF lines. */
export function messageBody(size: number, seed: number): Uint8Array {
  const out: number[] = [];
  let x = seed;
  while (out.length < size) {
    for (let i = 0; i < 70 && out.length < size; i++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      let b = x % 256;
      if (b === 13 || b === 10 || (i === 0 && b === 46)) b = 65; // no bare CR/LF, no leading dot
      out.push(b);
    }
    out.push(13, 10);
  }
  return new Uint8Array(out);
}

/**
 * Waits until a thread of process `pid` sits in poll(2) (syscall 7 on
 * x86_64), which is where the filter watches fd 0 during its delay.
 */
export async function watching(pid: number): Promise<void> {
  const inPoll = async () => {
    try {
      for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
        const call = await Deno.readTextFile(`/proc/${pid}/task/${task.name}/syscall`);
        if (call.startsWith("7 ")) return true;
      }
    } catch {
      // not there yet, or gone
    }
    return false;
  };
  await poll(`pid ${pid} to poll fd 0`, async () => await inPoll() || undefined);
}

/** Runs a command to its end; returns its status and output. */
export async function run(
  cmd: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await within(
    TIMEOUT_MS * 3,
    cmd.join(" "),
    new Deno.Command(cmd[0]!, { args: cmd.slice(1), env, stdin: "null" }).output(),
  );
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** A redis-server on a free loopback port, without persistence. */
export async function startRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = freePort();
  const child = new Deno.Command("redis-server", {
    args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    child.kill("SIGKILL");
    await child.status;
  };
  const pong = async () => {
    let conn: Deno.Conn | undefined;
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(new TextEncoder().encode("PING\r\n"));
      const buf = new Uint8Array(16);
      const n = await conn.read(buf);
      return n && decoder.decode(buf.subarray(0, n)).startsWith("+PONG") || undefined;
    } catch {
      return undefined; // not listening yet
    } finally {
      conn?.close();
    }
  };
  await poll("redis-server to answer", pong, 20).catch(async (e) => {
    await stop();
    throw e;
  });
  return { url: `redis://127.0.0.1:${port}`, stop };
}

let baseline: Promise<string> | undefined;

/**
 * The fds the recorder has when tcpserver runs it with no filter (0 1 2, plus
 * any tcpserver inherited); found once per test file.
 */
export function baselineFds(): Promise<string> {
  return baseline ??= (async () => {
    const bare = await Server.start({ chain: [] });
    try {
      const { pid } = await banner(bare, "127.0.0.2");
      return (await bare.record(pid))!.info.fds!;
    } finally {
      await bare.stop();
    }
  })();
}

/** Connects, waits for the recorder's banner, closes; returns seconds to banner and the pid. */
export async function banner(
  server: Logged,
  from: string,
): Promise<{ seconds: number; pid: number }> {
  const { client, pid } = await greeted(server, from);
  client.close();
  await server.endOf(pid);
  return { seconds: (client.firstByteAt! - client.connectedAt) / 1000, pid };
}
/**
 * What kind of socket fd `fd` of process `pid` is: "unix", "tcp" or "tcp6"
 * (found by its inode in /proc/net/*), "other", or undefined when the
 * process or fd is gone.
 */
export async function socketKind(pid: number, fd: number): Promise<string | undefined> {
  let link: string;
  try {
    link = await Deno.readLink(`/proc/${pid}/fd/${fd}`);
  } catch {
    return undefined;
  }
  const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
  if (inode === undefined) return "other";
  for (const [kind, column] of [["unix", 6], ["tcp", 9], ["tcp6", 9]] as const) {
    const table = await Deno.readTextFile(`/proc/net/${kind}`);
    for (const row of table.split("\n").slice(1)) {
      if (row.trim().split(/\s+/)[column] === inode) return kind;
    }
  }
  return "other";
}
