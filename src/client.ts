/** tcpserver's environment -> the Client. Pure: takes the environment as a Record. */
import { UsageError } from "./usage_error.ts";
import { formatIp, type Ip, parseIp } from "./ip.ts";

export interface Client {
  readonly ip: Ip;
  /** The address as logged and exported: dotted quad or full IPv6. */
  readonly ipText: string;
  /** TCPREMOTEHOST (lowercase, no trailing dot) when tcpserver found a name; else undefined. */
  readonly host: string | undefined;
}

/** Reads TCPREMOTEIP (required, an IPv4 or IPv6 address) and TCPREMOTEHOST. */
export function readClient(env: Readonly<Record<string, string | undefined>>): Client {
  const text = env.TCPREMOTEIP;
  if (text === undefined || text === "") {
    throw new UsageError("TCPREMOTEIP is not set (run me under tcpserver)");
  }
  const ip = parseIp(text);
  if (!ip) throw new UsageError(`TCPREMOTEIP wants an IP address, got "${text.slice(0, 100)}"`);
  const host = env.TCPREMOTEHOST?.toLowerCase().replace(/\.$/, "");
  return Object.freeze({ ip, ipText: formatIp(ip), host: host === "" ? undefined : host });
}
