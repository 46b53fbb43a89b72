/**
 * resolv.conf(5): the name servers the system's resolver asks, for the
 * lists and for `allowlist spf` when SMTPDELAY_DNS names none.
 */
import type { NameServer } from "./config.ts";
import { parseIp } from "./ip.ts";

/**
 * The name servers of resolv.conf's text: its `nameserver` lines with an
 * address, at most 3 as libc reads them; 127.0.0.1 when none.
 */
export function parseResolvConf(text: string): NameServer[] {
  const servers: NameServer[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+([0-9a-fA-F.:]+)\s*(?:[#;].*)?$/.exec(line);
    if (m && parseIp(m[1]!) && servers.length < 3) servers.push({ ipAddr: m[1]!, port: 53 });
  }
  return servers.length > 0 ? servers : [{ ipAddr: "127.0.0.1", port: 53 }];
}

/** The text of /etc/resolv.conf, "" when it cannot be read (libc then asks 127.0.0.1). */
export function readResolvConf(path = "/etc/resolv.conf"): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}
