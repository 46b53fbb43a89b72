/**
 * The lists' DNS queries: one UDP socket per client asked about, connected
 * to the name server (SMTPDELAY_DNS, else the first `nameserver` of
 * /etc/resolv.conf), on a port the kernel picks; one A query per zone, sent
 * at once, each with an id of its own; an answer counts only with its
 * query's id and question (wire.ts). How the socket is watched is the
 * mode's (Follow): the filter polls it on a helper thread, serve adds it to
 * its event loop. No retry: the name server (a local cache) retries for us.
 */
import type { NameServer } from "../config.ts";
import { type Ip, parseIp } from "../ip.ts";
import { parseResolvConf, readResolvConf } from "../resolv_conf.ts";
import { EAGAIN, EINTR, type Libc } from "../libc.ts";
import { type Answer, decodeAnswer, encodeQuery } from "./wire.ts";

/**
 * Calls `ready` each time `fd` is readable, for `ms` at most, until stopped;
 * `ended` resolves once nothing watches `fd` any more (it may be closed then).
 */
export type Follow = (
  fd: number,
  ms: number,
  ready: () => void,
) => { stop(): void; readonly ended: Promise<void> };

/**
 * The filter's Follow: poll(2) on a helper thread, again after each
 * answer, until `ms` pass or stop() (which takes effect when the poll in
 * progress returns: it cannot be cut short, so the fd stays open until then).
 */
export function polled(libc: Pick<Libc, "waitReadable">): Follow {
  return (fd, ms, ready) => {
    let stopped = false;
    const end = performance.now() + ms;
    const ended = (async () => {
      while (!stopped) {
        const left = end - performance.now();
        if (left <= 0) break;
        const revents = await libc.waitReadable(fd, Math.ceil(left));
        if (revents !== 0 && !stopped) ready();
      }
    })();
    return {
      stop() {
        stopped = true;
      },
      ended,
    };
  };
}

/** The queries in flight. */
export interface Asking {
  /** Stops listening for answers (the socket closes once nothing watches it). */
  stop(): void;
  /** Resolves once the socket is closed. */
  readonly closed: Promise<void>;
}

/** One zone's query. */
export interface Query {
  readonly zone: string;
  /** The name asked: the client's reversed address, then the zone. */
  readonly name: string;
}

/** Where the queries go. */
export interface ListServer {
  readonly ip: Ip;
  readonly port: number;
}

/**
 * The name server: SMTPDELAY_DNS's, else the first of resolv.conf's text
 * (read from /etc/resolv.conf unless given), else 127.0.0.1.
 */
export function listServer(
  nameServer: NameServer | undefined,
  resolvConf = nameServer ? "" : readResolvConf(),
): ListServer {
  const { ipAddr, port } = nameServer ?? parseResolvConf(resolvConf)[0]!;
  return { ip: parseIp(ipAddr)!, port };
}

/** `count` ids, distinct and unpredictable. */
function ids(count: number): number[] {
  const out = new Set<number>();
  while (out.size < count) {
    for (const id of crypto.getRandomValues(new Uint16Array(count))) {
      if (out.size < count) out.add(id);
    }
  }
  return [...out];
}

/** Largest answer read: a UDP answer without EDNS is 512 bytes at most. */
const MAX_ANSWER = 4096;

export type Datagrams = Pick<
  Libc,
  "datagramSocket" | "sendDatagram" | "receiveDatagram" | "errorText" | "close" | "waitReadable"
>;

/**
 * Sends every query to `server` and calls `heard` once per zone whose
 * answer comes (an error included), for `ms` at most or until `stop()`.
 * A failure to make the socket or send a query is heard as that zone's
 * error at once.
 */
export function ask(
  libc: Datagrams,
  server: ListServer,
  queries: readonly Query[],
  follow: Follow,
  ms: number,
  heard: (zone: string, answer: Answer) => void,
): Asking {
  let fd: number;
  try {
    fd = libc.datagramSocket(server.ip, server.port);
  } catch (e) {
    for (const { zone } of queries) heard(zone, { kind: "error", reason: (e as Error).message });
    return { stop() {}, closed: Promise.resolve() };
  }
  const waiting = new Map<number, Query>();
  const idList = ids(queries.length);
  let failed = 0;
  for (const [i, query] of queries.entries()) {
    const sent = libc.sendDatagram(fd, encodeQuery(idList[i]!, query.name));
    if (sent >= 0) {
      waiting.set(idList[i]!, query);
      continue;
    }
    // The socket's error (an earlier query's ICMP, ECONNREFUSED, comes back
    // from a later send) or the system's: the name server is not to be had.
    failed = -sent;
    break;
  }
  if (failed) {
    libc.close(fd);
    for (const { zone } of queries) {
      heard(zone, { kind: "error", reason: `unable to send: ${libc.errorText(failed)}` });
    }
    return { stop() {}, closed: Promise.resolve() };
  }
  const buf = new Uint8Array(MAX_ANSWER);
  let watching: ReturnType<Follow> | undefined;
  let closed!: () => void;
  const socketClosed = new Promise<void>((resolve) => closed = resolve);
  /** Once: nothing watches the socket any more, then it is closed. */
  const stop = () => {
    if (!watching) return;
    const ended = watching.ended;
    watching.stop();
    watching = undefined;
    void ended.then(() => {
      libc.close(fd);
      closed();
    });
  };
  const ready = () => {
    while (watching) {
      const n = libc.receiveDatagram(fd, buf);
      if (n === -EINTR) continue;
      if (n < 0 && n !== -EAGAIN) {
        // An ICMP error (ECONNREFUSED: nothing listens there) ends every query.
        for (const [id, query] of waiting) {
          waiting.delete(id);
          heard(query.zone, { kind: "error", reason: `unable to receive: ${libc.errorText(-n)}` });
        }
      }
      if (n < 0) break;
      const packet = buf.subarray(0, n);
      const id = n >= 2 ? (packet[0]! << 8) | packet[1]! : -1;
      const query = waiting.get(id);
      const answer = query && decodeAnswer(packet, id, query.name);
      if (!query || !answer) continue; // not an answer to a query of ours: as if never sent
      waiting.delete(id);
      heard(query.zone, answer);
    }
    if (waiting.size === 0) stop();
  };
  watching = follow(fd, ms, ready);
  return { stop, closed: socketClosed };
}
