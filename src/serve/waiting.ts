/**
 * The waiting room: the clients in the screening. A load balancer's
 * connection (--proxy) first has its PROXY header read (proxy.ts), whose
 * client is the client from then on. Each is watched through the server's
 * epoll set (one-shot: its first byte or its hang-up settles it), looked up
 * in the rules (and by name, with -h), screened as the per-connection
 * filter screens (src/screen.ts), and then, answered or let go here, or
 * handed to the children (children.ts) when it passed.
 */
import { act } from "../act.ts";
import type { Follow } from "../lists/ask.ts";
import { type Client, readClient } from "../client.ts";
import type { Config } from "../config.ts";
import { formatIp, type Ip } from "../ip.ts";
import { type Address, EPOLLIN, EPOLLONESHOT, EPOLLRDHUP, type Libc } from "../libc.ts";
import * as log from "../log.ts";
import type { EventLoop } from "../loop.ts";
import type { Lookup } from "../rdns.ts";
import { type Exemptions, lookupWhileWatching, screen } from "../screen.ts";
import { UsageError } from "../usage_error.ts";
import { interpret, type Watch, type Watched } from "../watch.ts";
import type { Admitted } from "./admission.ts";
import type { Passed } from "./children.ts";
import type { Holder } from "./holder.ts";
import { type Connection, connectionVars, denyLine } from "./lines.ts";
import type { ServeConfig } from "./options.ts";
import { HEADER_DEADLINE_MS, proxyLine, readHeader } from "./proxy.ts";
import type { Rules } from "./rules_file.ts";
import type { Settings } from "./settings.ts";

const now = () => performance.now();

/** A client in the screening: its socket, and the watch that epoll feeds. */
class Waiting implements Watch {
  seen: Watched = { kind: "quiet" };
  private readonly wakers = new Set<() => void>();
  readonly startMs = now();

  constructor(readonly fd: number, private readonly libc: Libc) {}

  /** epoll said the socket is readable or hung up. */
  settle(revents: number): void {
    if (this.seen.kind !== "quiet") return;
    this.seen = interpret(revents, this.libc.bytesWaiting(this.fd), now() - this.startMs);
    for (const wake of [...this.wakers]) wake();
  }

  waitAsync(ms: number, until?: Promise<unknown>): Promise<Watched> {
    if (this.seen.kind !== "quiet" || ms <= 0) return Promise.resolve(this.waitSync(0));
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve(this.seen);
      };
      const timer = setTimeout(done, Math.ceil(ms));
      this.wakers.add(done);
      void until?.then(done);
    });
  }

  /** Only `waitSync(0)`: a look without waiting (the server never blocks). */
  waitSync(_ms: number): Watched {
    if (this.seen.kind === "quiet") {
      const revents = this.libc.readable(this.fd, 0);
      if (revents !== 0) this.settle(revents);
    }
    return this.seen;
  }
}

/** What the waiting room works with: the server's parts it hands to and answers through. */
export interface RoomParts {
  readonly options: ServeConfig;
  /** The run file's Config: for tcpserver's own lookup (-h). */
  readonly base: Config;
  readonly loop: EventLoop;
  readonly libc: Libc;
  readonly settings: Settings;
  readonly holder: Holder;
  readonly rules: Rules | undefined;
  /** The server's environment (baseEnv), which every client's inherits. */
  readonly baseEnv: Readonly<Record<string, string>>;
  /** 421 to a client whose rules cannot be read (admission's BUSY line). */
  busy(fd: number, ip: string, why: string): void;
  /** A proxied connection's client is `ip`: counted for --per-ip; false when at the cap. */
  countAs(id: number, ip: Ip): boolean;
  /** A client that passed: a child starts for it, now or when one ends. */
  handOn(passed: Passed): void;
  /** A connection that got no child is over. */
  release(id: number): void;
  /** The clients waiting changed: stress mode may change. */
  changed(): void;
}

export class WaitingRoom {
  /** The lists' sockets, watched by the server's event loop: no thread per client. */
  private readonly follow: Follow = (fd, _ms, ready) => {
    this.parts.loop.add(fd, EPOLLIN, ready);
    return {
      stop: () => this.parts.loop.remove(fd),
      ended: Promise.resolve(),
    };
  };

  /** Their sockets: from the accept (a proxied one's header not read yet) to the hand-off. */
  private readonly clients = new Set<number>();

  constructor(private readonly parts: RoomParts) {}

  /** How many clients are in the screening. */
  get size(): number {
    return this.clients.size;
  }

  /** Takes a client admitted: from here on it is watched, until it is handed on or let go. */
  take(client: Admitted): void {
    this.clients.add(client.fd);
    this.screen(client).catch((e) => {
      log.warning(`unable to serve a client: ${log.reason(e)}`);
    });
  }

  /**
   * The client's address and the server's: the socket's, or those of a load
   * balancer's PROXY header (read first, within its deadline), for whose
   * client the connection counts from then on. Undefined: the connection is
   * dropped (no valid header: a PROXY line) or refused (--per-ip: BUSY).
   */
  private async endsOf(
    { fd, remote, id, proxied }: Admitted,
  ): Promise<{ remote: Address; local: Address } | undefined> {
    const { libc } = this.parts;
    if (!proxied) return { remote, local: libc.localAddress(fd) };
    const read = await readHeader(libc, this.parts.loop, fd, HEADER_DEADLINE_MS, now);
    if (read.kind === "failed") {
      log.event(proxyLine(remote.ip, read));
      return undefined;
    }
    const ends = read.header.kind === "proxied"
      ? { remote: read.header.source, local: read.header.destination }
      : { remote, local: libc.localAddress(fd) };
    if (!this.parts.countAs(id, ends.remote.ip)) {
      this.parts.busy(fd, formatIp(ends.remote.ip), "per-ip");
      return undefined;
    }
    return ends;
  }

  /** One client's way through the room: its header, rules, the screening, then a child or an answer. */
  private async screen(admitted: Admitted): Promise<void> {
    const { fd, id, stressed } = admitted;
    const { options, libc, settings } = this.parts;
    let passed: Passed | undefined;
    try {
      const ends = await this.endsOf(admitted);
      if (!ends) return;
      const { remote, local } = ends;
      // Watched from here: the bytes after a header are the client's own, early if they came.
      const w = new Waiting(fd, libc);
      this.parts.loop.add(fd, EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, (r) => w.settle(r));
      const conn: Connection = {
        local: { ip: formatIp(local.ip), port: local.port, host: undefined },
        remote: { ip: formatIp(remote.ip), port: remote.port, host: undefined },
        v6: local.ip.family === 6,
      };
      const localName = settings.localName(conn.local.ip);
      // -h: tcpserver's lookup, done once and shared with the screening.
      let looked: Lookup | undefined;
      if (options.lookupRemote) {
        looked = await lookupWhileWatching(remote.ip, this.parts.base, w);
        if (looked?.kind === "found") conn.remote.host = looked.name;
      }
      const rule = this.parts.rules?.lookup(conn.remote.ip, conn.remote.host);
      if (rule?.kind === "unreadable") {
        log.warning(
          `unable to read ${options.rulesFile} (${conn.remote.ip} answered 421): ${rule.reason}`,
        );
        this.parts.busy(fd, conn.remote.ip, rule.fds ? "fds" : "rules");
        return;
      }
      conn.local.host = await localName;
      if (rule?.kind === "deny") {
        if (options.verbosity >= 2) log.tcpserver(denyLine(0, conn));
        return;
      }
      // Only this connection's own variables are kept per client; the rest is the base's.
      const own = connectionVars(conn, rule?.env ?? {});
      const env: Record<string, string> = Object.assign(Object.create(this.parts.baseEnv), own);
      // What the rules' variables make of the screening, checked as the filter checks its own.
      let config: Config;
      let client: Client;
      let patterns: RegExp[] | undefined;
      let allow: Exemptions | undefined;
      try {
        config = settings.configOf(env, own, stressed);
        client = readClient(env);
        patterns = settings.patternsOf(config);
        allow = await settings.allowOf(config);
      } catch (e) {
        if (!(e instanceof UsageError)) throw e;
        log.warning(`unable to screen ${conn.remote.ip} (connection dropped): ${e.message}`);
        return;
      }
      const screened = await screen({
        config,
        client,
        relayClient: env.RELAYCLIENT !== undefined,
        patterns,
        allow,
        watcher: w,
        hold: (ms, until) => w.waitAsync(ms, until),
        pause: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.ceil(ms)))),
        send: (text) => void libc.writeAll(fd, new TextEncoder().encode(text)),
        remember: () => this.parts.holder.remember(config, client.ip, id),
        now,
        roll: Math.random() * 100,
        asker: { libc, follow: this.follow },
        ...(options.lookupRemote && looked?.kind !== "found" && looked ? { looked } : {}),
      });
      if (screened.verdict.kind === "pass") {
        passed = { fd, id, screened, config, own, conn, ip: client.ipText, startMs: w.startMs };
      } else {
        const ip = client.ipText;
        const never = () => Promise.reject(new Error("no program for a client let go"));
        await act(screened, config, {
          input: fd,
          output: fd,
          ip,
          pid: 0,
          inPlace: false,
          warnEachClient: false,
          start: never,
        }, libc);
      }
    } finally {
      // Out of the epoll set before the fd is closed or handed on: its number will be reused.
      this.parts.loop.remove(fd);
      this.clients.delete(fd);
      if (!passed) {
        this.parts.release(id);
        libc.close(fd);
      }
      this.parts.changed();
    }
    if (passed) this.parts.handOn(passed);
  }
}
