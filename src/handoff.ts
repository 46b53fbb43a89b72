/**
 * The end of the filter's part: exec the next program (the only place that
 * runs one), or answer the client and stop.
 */
import type { Libc } from "./libc.ts";

/** The calls an answer makes. */
export type Answering = Pick<Libc, "bytesWaiting" | "readWaiting" | "writeAll" | "shutdownWrite">;

/** Most client bytes read (and dropped) before and after a reply. */
const MAX_DRAIN = 65536;

/**
 * Sets `env` in the environment and execs `program` in this process (same
 * pid, fds 0/1/2 untouched, no byte read), with an alarm in `alarmSeconds`
 * when that is not 0 (the session cap: the alarm survives exec, and its
 * signal ends the session). Returns only on failure, with the reason.
 */
export function handOn(
  libc: Pick<Libc, "alarm" | "exec">,
  program: readonly string[],
  env: Readonly<Record<string, string>>,
  alarmSeconds = 0,
): string {
  for (const [name, value] of Object.entries(env)) Deno.env.set(name, value);
  libc.alarm(alarmSeconds);
  const why = libc.exec(program);
  libc.alarm(0);
  return why;
}

/**
 * Writes `reply` to the client (`output`, fd 1) and ends the conversation:
 * the bytes already waiting on `input` (fd 0) are read first and after (so
 * that closing does not reset the connection under the reply), then FIN.
 * Returns the first bytes the client had sent, for the log.
 */
export function answer(libc: Answering, reply: string, input = 0, output = 1): Uint8Array {
  const drain = (): Uint8Array => {
    const waiting = libc.bytesWaiting(input);
    return waiting > 0 ? libc.readWaiting(input, Math.min(waiting, MAX_DRAIN)) : new Uint8Array();
  };
  const sent = drain();
  libc.writeAll(output, new TextEncoder().encode(reply));
  libc.shutdownWrite(output);
  drain();
  return sent;
}
