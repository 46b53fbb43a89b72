/** The only DNS caller: the client's PTR name, until the caller says stop. */
import type { NameServer } from "./config.ts";
import { type Ip, reverseName } from "./ip.ts";

/**
 * How the name was found. `host`: TCPREMOTEHOST. `found`: our PTR query.
 * `none`: the DNS says there is none. `timeout` / `error`: the lookup failed
 * (counted as no name, logged as a failure). `skipped`: no time to look
 * (counted as no name). `unneeded`: no tier either.
 */
export type Lookup =
  | { kind: "host"; name: string }
  | { kind: "found"; name: string }
  | { kind: "none" }
  | { kind: "timeout" }
  | { kind: "error"; reason: string }
  | { kind: "skipped" }
  /** The verdict needs no name: an exempt client, or one the memory refuses at once. */
  | { kind: "unneeded" };

/** The name a lookup found, if any. */
export function nameOf(lookup: Lookup): string | undefined {
  return lookup.kind === "host" || lookup.kind === "found" ? lookup.name : undefined;
}

/**
 * A name as Deno's resolver writes it back to its bytes, one character
 * each, ASCII letters in lowercase, so that what the log and SMTPDELAY_PTR
 * clean (a byte outside 33..126 becomes `?`) is the byte the DNS sent, not
 * Deno's escape. Deno 2.9.6 writes a presentation format (`\X` for a special
 * byte, a final dot) whose `\DDD` is octal, where RFC 1035's is decimal
 * (`\012` is a newline): tests/rdns_test.ts pins it against the resolver.
 */
export function fromPresentation(text: string): string {
  const tokens = [...text.matchAll(/\\[0-7]{3}|\\[^]|[^]/g)].map(([token]) => token);
  if (tokens.at(-1) === ".") tokens.pop();
  return tokens.map((token) =>
    token.length === 4 ? String.fromCharCode(parseInt(token.slice(1), 8) & 0xff) : token.at(-1)!
  ).join("").replace(/[A-Z]/g, (upper) => upper.toLowerCase());
}

/**
 * Asks for the PTR of `ip`; never throws. The caller ends the wait with
 * `stop` (the result is then `timeout`): the deadline is the caller's, so
 * that no timer is needed.
 */
export async function lookupPtr(
  ip: Ip,
  nameServer: NameServer | undefined,
  stop: AbortSignal,
): Promise<Lookup> {
  try {
    const names = await Deno.resolveDns(
      reverseName(ip),
      "PTR",
      nameServer ? { nameServer, signal: stop } : { signal: stop },
    );
    const name = names[0] === undefined ? undefined : fromPresentation(names[0]);
    return name ? { kind: "found", name } : { kind: "none" };
  } catch (e) {
    if (stop.aborted) return { kind: "timeout" };
    if (e instanceof Deno.errors.NotFound) return { kind: "none" };
    return { kind: "error", reason: e instanceof Error ? e.message : String(e) };
  }
}
