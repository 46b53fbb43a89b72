/**
 * The banner wait on fd 0: is the client quiet, early (bytes waiting) or
 * closed (hung up)? Never reads a byte: poll(2) says something happened and
 * FIONREAD says whether it is data or the end, on sockets and pipes alike.
 */
import { type Libc, POLLNVAL } from "./libc.ts";

/** What the client did so far. `afterMs` counts from the start of the watch. */
export type Watched =
  | { kind: "quiet" }
  | { kind: "early"; bytes: number; afterMs: number }
  | { kind: "closed"; afterMs: number };

/**
 * Reads poll's revents and FIONREAD's count. Pure. Bytes waiting: early, even
 * if the client also hung up. Readable with nothing waiting: the end of the
 * stream. An fd that cannot count its bytes (-1) but is readable counts as
 * early (with bytes -1), so that nobody slips through unseen.
 */
export function interpret(
  revents: number,
  waiting: number,
  afterMs: number,
): Watched {
  if (revents === 0) return { kind: "quiet" };
  if (revents & POLLNVAL) return { kind: "closed", afterMs };
  if (waiting === 0) return { kind: "closed", afterMs };
  return { kind: "early", bytes: waiting, afterMs };
}

export interface Watch {
  /** Settles when the client talks or hangs up; stays pending while it is quiet. */
  readonly event: Promise<Watched>;
  /** The state now: the settled event, else one more check that does not wait. */
  current(): Watched;
}

/** Starts watching `fd` at once; `now` is the clock the times count on (ms). */
export function watch(libc: Libc, fd: number, now: () => number): Watch {
  const start = now();
  let seen: Watched = { kind: "quiet" };
  const check = (revents: number): Watched => {
    if (seen.kind === "quiet") {
      seen = interpret(revents, revents ? libc.bytesWaiting(fd) : 0, now() - start);
    }
    return seen;
  };
  const wait = async (): Promise<Watched> => {
    let revents = 0;
    while (revents === 0) revents = await libc.waitReadable(fd, -1); // 0: EINTR, poll again
    return check(revents);
  };
  const event = wait();
  return {
    event,
    current: () => check(seen.kind === "quiet" ? libc.readableNow(fd) : 0),
  };
}
