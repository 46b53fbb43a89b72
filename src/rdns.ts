/** The only DNS caller: the client's PTR name, within a deadline. */
import type { NameServer } from "./config.ts";
import { type Ip, reverseName } from "./ip.ts";

/**
 * How the name was found. `host`: TCPREMOTEHOST. `found`: our PTR query.
 * `none`: the DNS says there is none. `timeout` / `error`: the lookup failed
 * (counted as no name, logged as a failure). `skipped`: no time to look.
 */
export type Lookup =
  | { kind: "host"; name: string }
  | { kind: "found"; name: string }
  | { kind: "none" }
  | { kind: "timeout" }
  | { kind: "error"; reason: string }
  | { kind: "skipped" };

/** The name a lookup found, if any. */
export function nameOf(lookup: Lookup): string | undefined {
  return lookup.kind === "host" || lookup.kind === "found" ? lookup.name : undefined;
}

/** Asks for the PTR of `ip`; never takes longer than `timeoutMs` and never throws. */
export async function lookupPtr(
  ip: Ip,
  nameServer: NameServer | undefined,
  timeoutMs: number,
): Promise<Lookup> {
  if (timeoutMs <= 0) return { kind: "skipped" };
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const names = await Deno.resolveDns(
      reverseName(ip),
      "PTR",
      nameServer ? { nameServer, signal } : { signal },
    );
    const name = names[0]?.replace(/\.$/, "").toLowerCase();
    return name ? { kind: "found", name } : { kind: "none" };
  } catch (e) {
    if (signal.aborted) return { kind: "timeout" };
    if (e instanceof Deno.errors.NotFound) return { kind: "none" };
    return { kind: "error", reason: e instanceof Error ? e.message : String(e) };
  }
}
