/**
 * The allowlist: clients exempt from everything (no delay, no limits, never
 * penalised). Pure. One entry per line: an address or CIDR, IPv4 or IPv6
 * (`192.0.2.0/24`, `2001:db8::/32`, `198.51.100.7`), or an rDNS suffix
 * (`.example.net` or `example.net`: the name itself and every name under it;
 * a name's last label is never all digits, so tcprules-style `192.0.2.` is an
 * error, not a name).
 * `#` starts a comment. main imports this module only when there is an
 * allowlist.
 */
import { UsageError } from "./usage_error.ts";
import { type Ip, parseIp } from "./ip.ts";
import { reason } from "./log.ts";

export interface Allowlist {
  readonly nets: ReadonlyArray<{ readonly ip: Ip; readonly bits: number }>;
  readonly suffixes: readonly string[];
}

const NAME = /^\.?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/;

/** Parses allowlist text; a line that is neither an address, a CIDR nor a name is a UsageError. */
export function parseAllowlist(text: string, source: string): Allowlist {
  const nets: Array<{ ip: Ip; bits: number }> = [];
  const suffixes: string[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*/, "").trim().toLowerCase();
    if (line === "") return;
    const [address, prefix, extra] = line.split("/");
    const ip = parseIp(address!);
    if (ip && extra === undefined) {
      const max = ip.family === 4 ? 32 : 128;
      const bits = prefix === undefined ? max : /^[0-9]{1,3}$/.test(prefix) ? Number(prefix) : NaN;
      if (bits >= 0 && bits <= max) return void nets.push({ ip, bits });
    } else if (prefix === undefined && NAME.test(line) && !/(^|\.)[0-9]+\.?$/.test(line)) {
      return void suffixes.push(line.replace(/^\./, "").replace(/\.$/, ""));
    }
    throw new UsageError(
      `${source} line ${i + 1} is not an address, CIDR or name: "${raw.trim()}"`,
    );
  });
  return { nets, suffixes };
}

function inNet(ip: Ip, net: { ip: Ip; bits: number }): boolean {
  if (ip.family !== net.ip.family) return false;
  for (let bit = 0; bit < net.bits; bit += 8) {
    const left = net.bits - bit;
    const mask = left >= 8 ? 0xff : (0xff << (8 - left)) & 0xff;
    if ((ip.bytes[bit / 8]! & mask) !== (net.ip.bytes[bit / 8]! & mask)) return false;
  }
  return true;
}

/** True when the address is in one of the networks. */
export function allowsIp(list: Allowlist, ip: Ip): boolean {
  return list.nets.some((net) => inNet(ip, net));
}

/** The allowlist file at `path`, read and parsed; a UsageError when it cannot be. */
export function loadAllowlist(path: string): Allowlist {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new UsageError(`unable to read allowlist "${path}": ${reason(e)}`);
  }
  return parseAllowlist(text, `allowlist "${path}"`);
}

/** True when `name` is one of the suffixes or a name under one. */
export function allowsName(list: Allowlist, name: string | undefined): boolean {
  if (!name) return false;
  const lower = name.toLowerCase().replace(/\.$/, "");
  return list.suffixes.some((suffix) => lower === suffix || lower.endsWith("." + suffix));
}
