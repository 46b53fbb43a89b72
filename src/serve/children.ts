/**
 * The children: a session for each client that passed. A child is started
 * (through act.ts, as the filter hands a client on) when fewer than -c run,
 * else when one ends; it gets the client's socket as fd 0/1, or one end of a
 * socket pair when a cap needs a relay. Each running child is watched through
 * a pidfd in the server's epoll set, capped by --max-session, and reaped,
 * with tcpserver's pid, ok, end and status lines.
 */
import { act } from "../act.ts";
import type { Config } from "../config.ts";
import { EPOLLIN, type Libc, SysError } from "../libc.ts";
import * as log from "../log.ts";
import type { EventLoop } from "../loop.ts";
import { relay } from "../relay.ts";
import type { Screened } from "../screen.ts";
import { interpret } from "../watch.ts";
import { childEnv, type Connection, endLine, okLine, pidLine } from "./lines.ts";
import type { ServeConfig } from "./options.ts";

const now = () => performance.now();

const SIGTERM = 15;

/** A client that passed its screening, waiting for its child. */
export interface Passed {
  readonly fd: number;
  readonly id: number;
  readonly screened: Screened;
  readonly config: Config;
  /** This connection's own variables (tcpserver's and the rules'). */
  readonly own: Readonly<Record<string, string>>;
  readonly conn: Connection;
  /** The client's address, as the log writes it. */
  readonly ip: string;
  /** When the connection was accepted: the session cap counts from there. */
  readonly startMs: number;
}

/** A running child: the session of a client that passed. */
interface Child {
  readonly pid: number;
  readonly pidfd: number;
  readonly id: number;
  /** The session cap's timer (no relay). */
  readonly timer: ReturnType<typeof setTimeout> | undefined;
}

export class Children {
  private readonly running = new Map<number, Child>();
  /** Clients that passed while -c children were running: handed on as children end. */
  private readonly queue: Passed[] = [];
  /** Sessions being relayed (caps that need to see the traffic). */
  private relays = 0;
  /** Children being started (their departure being recorded): they count against -c. */
  private starting = 0;

  /**
   * `baseVars`: the server's environment as [name, NAME=VALUE]; `release`:
   * a connection is over (its child ended, or it never got one).
   */
  constructor(
    private readonly options: ServeConfig,
    private readonly loop: EventLoop,
    private readonly libc: Libc,
    private readonly baseVars: ReadonlyArray<readonly [string, string]>,
    private readonly release: (id: number) => void,
  ) {}

  /** How many children run. */
  get size(): number {
    return this.running.size;
  }

  /** Whether anything must still be waited for at a SIGTERM: queued clients, relayed sessions. */
  get busy(): boolean {
    return this.queue.length > 0 || this.relays > 0;
  }

  /** tcpserver's `status: N/MAX` line (with -v). */
  status(): void {
    if (this.options.verbosity >= 2) {
      log.tcpserver(`status: ${this.running.size}/${this.options.maxChildren}`);
    }
  }

  /** A client passed: its child starts now, or when one ends (-c). */
  handOn(passed: Passed): void {
    if (this.room()) this.startLogged(passed);
    else this.queue.push(passed);
  }

  /** Fewer than -c children run or are being started. */
  private room(): boolean {
    return this.running.size + this.starting < this.options.maxChildren;
  }

  /** start(), a failure of which costs this client only, never serve (an unhandled rejection). */
  private startLogged(p: Passed): void {
    // Its descriptor is not closed here: where start() failed, it may be closed and reused.
    this.start(p).catch((e) => log.warning(`unable to serve a client: ${log.reason(e)}`));
  }

  private async start(p: Passed): Promise<void> {
    this.starting++;
    try {
      await this.startNow(p);
    } finally {
      this.starting--;
    }
  }

  private async startNow(p: Passed): Promise<void> {
    const { libc } = this;
    // A client that hung up while it waited for a free child (-c) starts nothing.
    const revents = libc.readable(p.fd, 0);
    const seen = revents === 0
      ? undefined
      : interpret(revents, libc.bytesWaiting(p.fd), now() - p.startMs);
    const screened: Screened = seen?.kind === "closed"
      ? { ...p.screened, verdict: { kind: "drop", event: "closed" }, watched: seen }
      : p.screened;
    let mine = -1;
    const acted = await act(screened, p.config, {
      input: p.fd,
      output: p.fd,
      ip: p.ip,
      pid: 0,
      inPlace: false,
      warnEachClient: false,
      start: (exports, relayed) => {
        const env = childEnv(this.baseVars, p.own, exports);
        try {
          if (!relayed) {
            return Promise.resolve({ pid: libc.spawn(p.config.program, env, p.fd, p.fd) });
          }
          const [ours, theirs] = libc.socketPair();
          mine = ours;
          try {
            return Promise.resolve({ pid: libc.spawn(p.config.program, env, theirs, theirs) });
          } finally {
            libc.close(theirs);
          }
        } catch (e) {
          if (!(e instanceof SysError)) throw e;
          return Promise.resolve({ failed: e.message });
        }
      },
    }, libc);
    if (acted.kind !== "started") {
      if (acted.kind === "failed") {
        log.warning(`unable to run ${log.clean(p.config.program[0])}: ${acted.reason}`);
      }
      libc.close(p.fd);
      if (mine >= 0) libc.close(mine);
      this.release(p.id);
      return;
    }
    this.watch(p, acted.pid, mine);
  }

  /** A child started: its session's cap or relay, its pidfd in the loop, its lines. */
  private watch(p: Passed, pid: number, mine: number): void {
    const { libc } = this;
    const { caps } = p.config;
    const logEnd = (why: string, fromClient?: number, fromChild?: number) =>
      log.end({ pid, ip: p.ip, why, fromClient, fromChild, ms: now() - p.startMs });
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (mine >= 0) {
      this.relays++;
      const ends = { clientIn: p.fd, clientOut: p.fd, child: mine };
      relay(this.loop, libc, ends, { caps, now, startMs: p.startMs })
        .then((end) => {
          libc.close(p.fd);
          libc.close(mine);
          this.relays--;
          logEnd(end.why, end.fromClient, end.fromChild);
        });
    } else {
      libc.close(p.fd);
      if (caps.maxSessionMs > 0) {
        // No relay: the session cap is a signal to the child. Whole ms: setTimeout drops a
        // fraction, and would fire early.
        const leftMs = Math.max(0, Math.ceil(p.startMs + caps.maxSessionMs - now()));
        timer = setTimeout(() => {
          libc.kill(pid, SIGTERM);
          logEnd("session");
        }, leftMs);
      }
    }
    let pidfd: number;
    try {
      pidfd = libc.pidfd(pid);
    } catch (e) {
      // No pidfd (out of descriptors): the child is reaped by polling, once a second, so that
      // its connection is released (--per-ip, the memory's open count) and no zombie is left.
      log.warning(log.reason(e));
      const poll = setInterval(() => {
        if (libc.reap(pid) === undefined) return;
        clearInterval(poll);
        clearTimeout(timer);
        this.release(p.id);
      }, 1000);
      return;
    }
    const child: Child = { pid, pidfd, id: p.id, timer };
    this.running.set(pidfd, child);
    this.loop.add(pidfd, EPOLLIN, () => this.ended(child));
    this.status();
    if (this.options.verbosity >= 2) {
      log.tcpserver(pidLine(pid, p.conn));
      log.tcpserver(okLine(pid, p.conn));
    }
  }

  private ended(child: Child): void {
    const status = this.libc.reap(child.pid);
    if (status === undefined) return; // not yet (spurious wake-up)
    this.loop.remove(child.pidfd);
    this.libc.close(child.pidfd);
    clearTimeout(child.timer);
    this.running.delete(child.pidfd);
    this.release(child.id);
    if (this.options.verbosity >= 2) log.tcpserver(endLine(child.pid, status));
    this.status();
    while (this.queue.length > 0 && this.room()) this.startLogged(this.queue.shift()!);
  }
}
