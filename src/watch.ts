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
  /**
   * Waits until the client talks or hangs up, or `ms` pass, or `until`
   * resolves, on a helper thread: the event loop runs meanwhile (for the DNS
   * lookups). Resolves with the state then; `quiet` means the time is up (or
   * `until` came).
   */
  waitAsync(ms: number, until?: Promise<unknown>): Promise<Watched>;
  /**
   * The same, blocking this thread: for when there is nothing else to do.
   * `waitSync(0)` looks once without waiting. No timer is involved: in Deno
   * the first setTimeout() of a process costs more CPU than all of this
   * filter's own work (see README, Performance).
   */
  waitSync(ms: number): Watched;
}

/**
 * Starts watching `fd`; `now` is the clock (ms) that times count on. Once the
 * client was seen early or closed, that is the answer for good.
 */
export function watch(
  libc: Pick<Libc, "waitReadable" | "readable" | "bytesWaiting">,
  fd: number,
  now: () => number,
): Watch {
  const start = now();
  let seen: Watched = { kind: "quiet" };
  const settle = (revents: number): void => {
    if (seen.kind === "quiet" && revents !== 0) {
      seen = interpret(revents, libc.bytesWaiting(fd), now() - start);
    }
  };
  // Each polls until the deadline (poll may return early: EINTR, rounding),
  // and not at all once the client has acted.
  const left = (end: number) => Math.max(0, Math.ceil(end - now()));
  return {
    waitAsync(ms, until) {
      const end = now() + ms;
      let stopped = false;
      const polling = (async () => {
        while (seen.kind === "quiet" && !stopped) {
          settle(await libc.waitReadable(fd, left(end)));
          if (now() >= end) break;
        }
        return seen;
      })();
      if (!until) return polling;
      // poll(2) on the helper thread cannot be cut short: it runs out its time, then stops.
      return Promise.race([
        polling,
        until.then(() => {
          stopped = true;
          return seen;
        }),
      ]);
    },
    waitSync(ms) {
      const end = now() + ms;
      while (seen.kind === "quiet") {
        settle(libc.readable(fd, left(end)));
        if (now() >= end) break;
      }
      return seen;
    },
  };
}
