/** IP address text <-> bytes. Pure. */

/** An address as tcpserver gives it, parsed. IPv4-mapped IPv6 is IPv4. */
export type Ip = { family: 4; bytes: Uint8Array } | { family: 6; bytes: Uint8Array };

const OCTET = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;
const GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseV4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined;
  return Uint8Array.from(parts, Number);
}

function parseV6(text: string): Uint8Array | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string, last: boolean): number[] | undefined => {
    if (half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (last && i === parts.length - 1 && part.includes(".")) {
        const v4 = parseV4(part);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (GROUP.test(part)) {
        out.push(parseInt(part, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0]!, halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1]!, true) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

const V4_MAPPED = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/** An address from its 4 or 16 bytes (a socket's); an IPv4-mapped IPv6 address is IPv4. */
export function ipFromBytes(bytes: Uint8Array): Ip {
  if (bytes.length === 4) return { family: 4, bytes };
  if (V4_MAPPED.every((b, i) => bytes[i] === b)) return { family: 4, bytes: bytes.slice(12) };
  return { family: 6, bytes };
}

/** Parses dotted IPv4 or IPv6 text (an optional %zone is dropped); undefined if malformed. */
export function parseIp(text: string): Ip | undefined {
  if (text.length > 64) return undefined;
  const v4 = parseV4(text);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = parseV6(text.replace(/%[0-9A-Za-z_.-]+$/, ""));
  return v6 && ipFromBytes(v6);
}

/** Canonical text: dotted quad, or the full lowercase IPv6 form without zero compression. */
export function formatIp(ip: Ip): string {
  if (ip.family === 4) return ip.bytes.join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) {
    groups.push(((ip.bytes[i]! << 8) | ip.bytes[i + 1]!).toString(16));
  }
  return groups.join(":");
}

/**
 * The short IPv6 text of RFC 5952: the longest run of two or more zero
 * groups (the first, on a tie) written `::` (`2001:db8::`, `::1`); IPv4 as
 * formatIp.
 */
export function formatIpShort(ip: Ip): string {
  const groups = formatIp(ip).split(":");
  if (ip.family === 4) return groups[0]!;
  let best = { at: -1, length: 1 };
  for (let i = 0; i < groups.length;) {
    let j = i;
    while (j < groups.length && groups[j] === "0") j++;
    if (j - i > best.length) best = { at: i, length: j - i };
    i = j > i ? j : i + 1;
  }
  if (best.at < 0) return groups.join(":");
  const head = groups.slice(0, best.at).join(":");
  const tail = groups.slice(best.at + best.length).join(":");
  return `${head}::${tail}`;
}

/**
 * The address's labels in reverse, as PTR and DNSBL queries name it: the
 * four octets (`4.3.2.1` for 1.2.3.4), or the 32 nibbles of IPv6, lowest first.
 */
export function reversedLabels(ip: Ip): string {
  if (ip.family === 4) return [...ip.bytes].reverse().join(".");
  const nibbles: string[] = [];
  for (const b of ip.bytes) nibbles.push((b >> 4).toString(16), (b & 0xf).toString(16));
  return nibbles.reverse().join(".");
}

/** The name a PTR query asks for: d.c.b.a.in-addr.arpa or the ip6.arpa nibbles. */
export function reverseName(ip: Ip): string {
  return reversedLabels(ip) + (ip.family === 4 ? ".in-addr.arpa" : ".ip6.arpa");
}
