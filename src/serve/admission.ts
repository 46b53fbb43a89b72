/**
 * Admission, the listening socket's side of serve: accepts clients in
 * batches, answers 421 at once those it has no room for (`--waiting`,
 * `--per-ip`, no file descriptor left), counts each client's connections
 * by key (an IPv4 address, an IPv6 /64) until they end, and says when serve
 * enters and leaves stress mode. A connection from a load balancer of
 * `--proxy` is counted for its client once the waiting room has read the
 * client's address from its header (`countAs`), not for the balancer.
 */
import { answer } from "../handoff.ts";
import { keyOf } from "../history.ts";
import { formatIp, type Ip } from "../ip.ts";
import {
  type Address,
  EAGAIN,
  EINTR,
  EMFILE,
  ENFILE,
  ENOBUFS,
  ENOMEM,
  EPOLLIN,
  type Libc,
} from "../libc.ts";
import * as log from "../log.ts";
import type { EventLoop } from "../loop.ts";
import { reply } from "../reply.ts";
import type { ServeConfig } from "./options.ts";
import { trusts } from "./proxy.ts";

/** Most connections accepted per wake-up, so that waiting clients are served too. */
const ACCEPT_BATCH = 64;

/** The answer to a client the server has no room for. */
const FULL_TEXT = "Too many connections waiting; try again later (#4.3.2)";

/** How long accepting pauses when not even the spare file descriptor is left. */
const PAUSE_MS = 100;

/** A client let in: its socket, its peer, its connection id, and the stress it found. */
export interface Admitted {
  readonly fd: number;
  readonly remote: Address;
  readonly id: number;
  /** Serve was in stress mode when this client arrived. */
  readonly stressed: boolean;
  /**
   * It comes from a load balancer of --proxy: a PROXY header comes first,
   * and the connection counts for no key until `countAs`.
   */
  readonly proxied: boolean;
}

export class Admission {
  /**
   * Connection ids (waiting, or running a child) and their clients' keys;
   * undefined while a proxied connection's client is not known yet.
   */
  private readonly open = new Map<number, string | undefined>();
  /** Connections open per key, for --per-ip. */
  private readonly perKey = new Map<string, number>();
  private nextId = 1;
  private spare: number;
  private stressed = false;
  private stopped = false;

  /**
   * `waiting()`: how many clients are in the screening now; `admit`: takes a
   * client let in (it is counted until `release`).
   */
  constructor(
    private readonly options: ServeConfig,
    private readonly listener: number,
    private readonly loop: EventLoop,
    private readonly libc: Libc,
    private readonly waiting: () => number,
    private readonly admit: (client: Admitted) => void,
  ) {
    this.spare = libc.spareFd();
    loop.add(listener, EPOLLIN, () => this.acceptSome());
  }

  /** Stops accepting (SIGTERM): the listening socket is closed. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.loop.remove(this.listener);
    this.libc.close(this.listener);
  }

  /** Whether connection `id` is open: waiting, queued, or running a child. */
  isOpen(id: number): boolean {
    return this.open.has(id);
  }

  /** Connection `id` is over: it no longer counts for its key. */
  release(id: number): void {
    if (!this.open.has(id)) return;
    const key = this.open.get(id);
    this.open.delete(id);
    if (key === undefined) return;
    const n = (this.perKey.get(key) ?? 1) - 1;
    if (n > 0) this.perKey.set(key, n);
    else this.perKey.delete(key);
  }

  /**
   * Stress mode from the clients waiting now: on at `--stress` percent of
   * `--waiting`, off below three quarters of that.
   */
  updateStress(): void {
    const limit = this.options.maxWaiting;
    const percent = this.options.stressPercent;
    if (percent === 0) return;
    const high = (limit * percent) / 100;
    const waiting = this.waiting();
    if (!this.stressed && waiting >= high) {
      this.stressed = true;
      log.event(`STRESS on waiting=${waiting} limit=${limit}`);
    } else if (this.stressed && waiting < high * 0.75) {
      this.stressed = false;
      log.event(`STRESS off waiting=${waiting} limit=${limit}`);
    }
  }

  /**
   * A proxied connection's client is `ip` (from its header): it counts for
   * that client's key from now on. False when the key is at --per-ip
   * already: the caller answers BUSY and closes.
   */
  countAs(id: number, ip: Ip): boolean {
    if (!this.open.has(id) || this.open.get(id) !== undefined) return true;
    const key = keyOf(ip);
    if (this.full(key)) return false;
    this.open.set(id, key);
    this.perKey.set(key, (this.perKey.get(key) ?? 0) + 1);
    return true;
  }

  /** Whether `key` has --per-ip connections open already. */
  private full(key: string): boolean {
    return this.options.maxPerIp > 0 && (this.perKey.get(key) ?? 0) >= this.options.maxPerIp;
  }

  /** 421 and FIN (the caller closes): no room, or no rules to trust. */
  busy(fd: number, ip: string, why: string): void {
    answer(this.libc, reply(421, FULL_TEXT), fd, fd);
    log.event(`BUSY ip=${log.clean(ip)} why=${why} waiting=${this.waiting()} action=421`);
  }

  private acceptSome(): void {
    for (let n = 0; n < ACCEPT_BATCH && !this.stopped; n++) {
      const got = this.libc.accept(this.listener);
      if ("errno" in got) {
        if (got.errno === EAGAIN || got.errno === EINTR) return;
        if ([EMFILE, ENFILE, ENOBUFS, ENOMEM].includes(got.errno)) this.outOfFds(got.errno);
        return;
      }
      if (this.waiting() >= this.options.maxWaiting) {
        this.refuse(got.fd, got.remote, "waiting");
        continue;
      }
      // A load balancer's connection is counted for its client, once the header names it.
      const proxied = this.options.proxy !== undefined && trusts(this.options.proxy, got.remote.ip);
      const key = proxied ? undefined : keyOf(got.remote.ip);
      if (key !== undefined && this.full(key)) {
        this.refuse(got.fd, got.remote, "per-ip");
        continue;
      }
      const id = this.nextId++;
      this.open.set(id, key);
      if (key !== undefined) this.perKey.set(key, (this.perKey.get(key) ?? 0) + 1);
      // Stress is what this client found on arrival; its own arrival may start it for the next.
      const stressed = this.stressed;
      this.admit({ fd: got.fd, remote: got.remote, id, stressed, proxied });
      this.updateStress();
    }
  }

  /** The fd table is full: give back the spare fd, take the client, refuse it, keep the spare. */
  private outOfFds(errno: number): void {
    if (this.spare >= 0) this.libc.close(this.spare);
    const got = this.libc.accept(this.listener);
    if (!("errno" in got)) this.refuse(got.fd, got.remote, "fds");
    this.spare = this.libc.spareFd();
    log.warning(`unable to accept: out of file descriptors or memory (errno ${errno})`);
    if (this.spare < 0 && !this.stopped) {
      // Not even the spare: stop listening for a moment rather than spin on the listener.
      this.loop.remove(this.listener);
      setTimeout(() => {
        if (this.stopped) return;
        this.spare = this.libc.spareFd();
        this.loop.add(this.listener, EPOLLIN, () => this.acceptSome());
      }, PAUSE_MS);
    }
  }

  /** 421 at once and close: no room. */
  private refuse(fd: number, remote: Address, why: string): void {
    this.busy(fd, formatIp(remote.ip), why);
    this.libc.close(fd);
  }
}
