/**
 * The relay: when a cap needs to see the traffic (--max-idle,
 * --max-bytes-per-second), the next program gets one end of a socket pair
 * instead of the client, and the bytes are copied both ways here, in order,
 * through one bounded buffer per direction (nothing is read that cannot be
 * written on: the client's sending is held by TCP, not by our memory).
 *
 * Half-closes go through: the client's end of input becomes the child's
 * (shutdown), and the child's end of output ends the session (the client
 * gets FIN). A reset or a cap closes both sides.
 */
import type { Caps } from "./config.ts";
import { EventLoop } from "./loop.ts";
import { EAGAIN, EINTR, EPOLLIN, EPOLLONESHOT, EPOLLOUT, type Libc } from "./libc.ts";

/** The fds a relay copies between. `clientIn` and `clientOut` may be one socket. */
export interface RelayEnds {
  readonly clientIn: number;
  readonly clientOut: number;
  readonly child: number;
}

/** Why a relayed session ended. */
export type RelayWhy = "eof" | "idle" | "session" | "reset";

export interface RelayEnd {
  readonly why: RelayWhy;
  /** Bytes read from the client and from the child. */
  readonly fromClient: number;
  readonly fromChild: number;
}

/** Bytes held per direction. */
const BUFFER_BYTES = 16_384;

/** One direction: bytes read from `src`, waiting to be written to `dst`. */
class Pipe {
  readonly buf = new Uint8Array(BUFFER_BYTES);
  start = 0;
  end = 0;
  /** `src` has ended (or failed): nothing more will be read. */
  srcDone = false;
  /** Everything was written and `dst` was told the end. */
  done = false;
  total = 0;

  constructor(readonly src: number, readonly dst: number) {}

  get pending(): number {
    return this.end - this.start;
  }
}

/** A session's caps, and the clock they count on from the session's start. */
export interface Session {
  readonly caps: Caps;
  readonly now: () => number;
  /** When the session began (the connection's start): the session cap counts from there. */
  readonly startMs: number;
}

/**
 * Copies between the client and the child until the child's output ends, a
 * side resets, or a cap runs out; resolves then, with every fd of `ends`
 * out of the loop (the caller closes them).
 */
export function relay(
  loop: EventLoop,
  libc: Libc,
  ends: RelayEnds,
  { caps, now, startMs }: Session,
): Promise<RelayEnd> {
  const up = new Pipe(ends.clientIn, ends.child);
  const down = new Pipe(ends.child, ends.clientOut);
  const pipes = [up, down];
  const fds = [...new Set([ends.clientIn, ends.clientOut, ends.child])];
  for (const fd of fds) libc.setNonBlocking(fd);
  let last = now();
  let finished = false;
  let tokens = caps.maxBytesPerSecond;
  let refilledAt = now();
  const timers: Array<ReturnType<typeof setTimeout>> = [];
  let refill: ReturnType<typeof setTimeout> | undefined;
  let resolve!: (end: RelayEnd) => void;
  const result = new Promise<RelayEnd>((r) => resolve = r);

  const finish = (why: RelayWhy) => {
    if (finished) return;
    finished = true;
    for (const t of timers) clearTimeout(t);
    if (refill !== undefined) clearTimeout(refill);
    for (const fd of fds) loop.remove(fd);
    resolve({ why, fromClient: up.total, fromChild: down.total });
  };

  /** Whether `pipe` may read now: room in its buffer, and (upward) tokens. */
  const mayRead = (pipe: Pipe) =>
    !pipe.srcDone && pipe.pending === 0 &&
    (pipe !== up || caps.maxBytesPerSecond === 0 || tokens >= 1);

  const interest = (fd: number) => {
    let events = 0;
    for (const pipe of pipes) {
      if (pipe.src === fd && mayRead(pipe)) events |= EPOLLIN;
      if (pipe.dst === fd && pipe.pending > 0) events |= EPOLLOUT;
    }
    return events;
  };
  // Every fd is one-shot: an event disarms it until rearm() asks for what is
  // wanted now, so that a hung-up fd we cannot act on yet does not spin.
  const DISARMED = -1;
  const armed = new Map<number, number>();
  const rearm = () => {
    if (finished) return;
    for (const fd of fds) {
      const want = interest(fd);
      const current = armed.get(fd)!;
      if (want !== 0 ? current !== want : current > 0) {
        loop.modify(fd, want | EPOLLONESHOT);
        armed.set(fd, want);
      }
    }
  };

  /** Writes what is pending; after the end of `src`, passes the end on. False: `dst` is gone. */
  const flush = (pipe: Pipe): boolean => {
    while (pipe.pending > 0) {
      const n = libc.write(pipe.dst, pipe.buf.subarray(pipe.start, pipe.end));
      if (n === -EAGAIN || n === -EINTR) return true;
      if (n < 0) return false;
      pipe.start += n;
      last = now();
    }
    pipe.start = pipe.end = 0;
    if (pipe.srcDone && !pipe.done) {
      pipe.done = true;
      libc.endWrite(pipe.dst);
    }
    return true;
  };

  /** Reads what `src` has (when it may) and writes it on. */
  const pump = (pipe: Pipe): "ok" | "unreadable" | "unwritable" => {
    if (!mayRead(pipe)) return "ok";
    const room = pipe === up && caps.maxBytesPerSecond > 0
      ? Math.min(BUFFER_BYTES, Math.floor(tokens))
      : BUFFER_BYTES;
    const n = libc.read(pipe.src, pipe.buf.subarray(0, room));
    if (n === -EAGAIN || n === -EINTR) return "ok";
    if (n < 0) return "unreadable"; // a reset
    if (n === 0) {
      pipe.srcDone = true;
    } else {
      pipe.start = 0;
      pipe.end = n;
      pipe.total += n;
      last = now();
      if (pipe === up && caps.maxBytesPerSecond > 0) {
        tokens -= n;
      }
    }
    return flush(pipe) ? "ok" : "unwritable";
  };

  /** The child no longer reads: what the client sends has nowhere to go, and is left unread. */
  const discard = (pipe: Pipe) => {
    pipe.srcDone = pipe.done = true;
    pipe.start = pipe.end = 0;
  };

  /** The bucket holds one second of bytes and refills continuously. */
  const refresh = () => {
    const t = now();
    tokens = Math.min(
      caps.maxBytesPerSecond,
      tokens + ((t - refilledAt) * caps.maxBytesPerSecond) / 1000,
    );
    refilledAt = t;
  };

  /** Out of tokens: reading waits until there is at least one byte's worth. */
  const scheduleRefill = () => {
    if (refill !== undefined) return;
    const waitMs = Math.max(10, Math.ceil(((1 - tokens) * 1000) / caps.maxBytesPerSecond));
    refill = setTimeout(() => {
      refill = undefined;
      step();
    }, waitMs);
  };

  const step = () => {
    if (finished) return;
    if (caps.maxBytesPerSecond > 0) refresh();
    if (!up.done) {
      if (!flush(up)) discard(up);
      else {
        const got = pump(up);
        if (got === "unreadable") return finish("reset"); // the client reset
        if (got === "unwritable") discard(up);
      }
    }
    if (!flush(down) || pump(down) !== "ok") return finish("reset");
    if (down.done) return finish("eof"); // the child said all it will say, and it was sent
    if (caps.maxBytesPerSecond > 0 && !up.srcDone && tokens < 1) scheduleRefill();
    rearm();
  };

  const onEvent = (fd: number) => () => {
    armed.set(fd, DISARMED);
    step();
  };
  for (const fd of fds) {
    loop.add(fd, EPOLLONESHOT, onEvent(fd));
    armed.set(fd, 0);
  }
  /**
   * Ends the relay with `why` once `dueMs()` has come by `now`. setTimeout
   * drops the fraction of a delay and keeps its own clock, so its timer may
   * fire a little early: the cap is checked again then, and the timer set
   * again for what is left.
   */
  const endWhenDue = (why: RelayWhy, dueMs: () => number) => {
    const check = () => {
      const leftMs = dueMs() - now();
      if (leftMs <= 0) return finish(why);
      timers.push(setTimeout(check, Math.ceil(leftMs)));
    };
    timers.push(setTimeout(check, Math.max(0, Math.ceil(dueMs() - now()))));
  };
  if (caps.maxSessionMs > 0) endWhenDue("session", () => startMs + caps.maxSessionMs);
  if (caps.maxIdleMs > 0) endWhenDue("idle", () => last + caps.maxIdleMs);
  step();
  return result;
}

/**
 * The per-connection filter as a relay (a cap needs the traffic): starts
 * `program` on one end of a socket pair with `env` (NAME=VALUE strings) as
 * its environment, relays between fd 0/1 and it, and waits for it to end.
 * Resolves with the relay's end, the child's pid and its wait status.
 * Throws SysError when the program cannot be started.
 */
export async function relayed(
  libc: Libc,
  { program, env }: { program: readonly string[]; env: readonly string[] },
  session: Session,
): Promise<{ end: RelayEnd; pid: number; status: number }> {
  const [mine, theirs] = libc.socketPair();
  let pid: number;
  try {
    pid = libc.spawn(program, env, theirs, theirs);
  } finally {
    libc.close(theirs);
  }
  const loop = new EventLoop(libc);
  const pidfd = libc.pidfd(pid);
  let status: number | undefined;
  loop.add(pidfd, EPOLLIN, () => {
    status ??= libc.reap(pid);
    if (status === undefined) return; // not yet (a spurious wake-up)
    // An ended process's pidfd stays readable: watched on while the relay
    // goes on (something the child left behind holds its socket), it would
    // wake the loop at once, again and again.
    loop.remove(pidfd);
    libc.close(pidfd);
    loop.wake();
  });
  let end: RelayEnd | undefined;
  relay(loop, libc, { clientIn: 0, clientOut: 1, child: mine }, session).then((e) => {
    end = e;
    libc.close(mine); // the child sees the end of its input, if it had not yet
    loop.wake();
  });
  await loop.run(() => end === undefined || status === undefined);
  return { end: end!, pid, status: status! };
}
