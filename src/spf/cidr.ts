/**
 * Address ranges for the allowlist, pure: a network as the run of numbers
 * it covers, runs merged and subtracted, and written back as the fewest
 * CIDRs that cover them exactly, host bits clear, IPv6 in RFC 5952's short
 * form (ip.ts's formatIpShort), in the form src/allow.ts reads.
 */
import { formatIpShort, type Ip } from "../ip.ts";

export type Family = 4 | 6;

/** A run of addresses of one family, `first` and `last` included. */
export interface Range {
  readonly family: Family;
  readonly first: bigint;
  readonly last: bigint;
}

/** A network as the allowlist writes it: its first address (no host bit set) and prefix length. */
export interface Cidr {
  readonly ip: Ip;
  readonly bits: number;
}

/** Address length in bits, by family. */
export const WIDTH: Readonly<Record<Family, number>> = { 4: 32, 6: 128 };

/** IPv4-mapped IPv6, ::ffff:0:0/96, as a number: the allowlist reads these addresses as IPv4. */
const MAPPED = 0xffffn << 32n;

function toNumber(bytes: Uint8Array): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

function toIp(family: Family, n: bigint): Ip {
  const bytes = new Uint8Array(family === 4 ? 4 : 16);
  for (let i = bytes.length - 1; i >= 0; i--, n >>= 8n) bytes[i] = Number(n & 0xffn);
  return { family, bytes };
}

/**
 * The run of a network given by any address in it and a prefix length (its
 * host bits ignored, as RFC 7208 5.6 says). A network inside ::ffff:0:0/96
 * is the IPv4 network it maps, as src/allow.ts reads such an address.
 */
export function netRange(family: Family, bytes: Uint8Array, bits: number): Range {
  const width = WIDTH[family];
  if (bits < 0 || bits > width || bytes.length * 8 !== width) {
    throw new RangeError(`not a network: ${bytes.length} bytes /${bits}`);
  }
  const hostMask = (1n << BigInt(width - bits)) - 1n;
  const first = toNumber(bytes) & ~hostMask;
  if (family === 6 && bits >= 96 && first >> 32n === 0xffffn) {
    return netRange(4, toIp(4, first - MAPPED).bytes, bits - 96);
  }
  return { family, first, last: first | hostMask };
}

/** Every address of a family. */
export function everything(family: Family): Range {
  return { family, first: 0n, last: (1n << BigInt(WIDTH[family])) - 1n };
}

function compare(a: Range, b: Range): number {
  return a.family - b.family || (a.first < b.first ? -1 : a.first > b.first ? 1 : 0);
}

/** The runs merged: sorted (IPv4 first, then by address), overlapping and adjacent runs joined. */
export function union(ranges: Iterable<Range>): Range[] {
  const out: Range[] = [];
  for (const r of [...ranges].sort(compare)) {
    const last = out.at(-1);
    if (last && last.family === r.family && r.first <= last.last + 1n) {
      if (r.last > last.last) out[out.length - 1] = { ...last, last: r.last };
    } else {
      out.push(r);
    }
  }
  return out;
}

/** The addresses of `from` that are in no run of `minus`, merged. */
export function subtract(from: Iterable<Range>, minus: Iterable<Range>): Range[] {
  const cut = union(minus);
  const out: Range[] = [];
  for (const r of union(from)) {
    let first = r.first;
    for (const c of cut) {
      if (c.family !== r.family || c.last < first || c.first > r.last) continue;
      if (c.first > first) out.push({ family: r.family, first, last: c.first - 1n });
      first = c.last + 1n;
      if (first > r.last) break;
    }
    if (first <= r.last) out.push({ family: r.family, first, last: r.last });
  }
  return out;
}

/** True when the runs hold every address of `family`. */
export function coversAll(ranges: Iterable<Range>, family: Family): boolean {
  const all = everything(family);
  return union(ranges).some((r) => r.family === family && r.first === 0n && r.last === all.last);
}

/** How many addresses the runs hold (both families counted). */
export function size(ranges: Iterable<Range>): bigint {
  return union(ranges).reduce((n, r) => n + r.last - r.first + 1n, 0n);
}

/**
 * The fewest CIDRs that cover the runs exactly, in order. A block inside
 * ::ffff:0:0/96 (which only a wider IPv6 run can reach) is written as the
 * IPv4 block it maps, which is how src/allow.ts would read it.
 */
export function toCidrs(ranges: Iterable<Range>): Cidr[] {
  const out: Cidr[] = [];
  for (const r of union(ranges)) {
    const width = WIDTH[r.family];
    for (let first = r.first; first <= r.last;) {
      let bits = width;
      let size = 1n;
      while (bits > 0 && (first & (size * 2n - 1n)) === 0n && first + size * 2n - 1n <= r.last) {
        size *= 2n;
        bits--;
      }
      const mapped = r.family === 6 && bits >= 96 && first >> 32n === 0xffffn;
      out.push(
        mapped
          ? { ip: toIp(4, first - MAPPED), bits: bits - 96 }
          : { ip: toIp(r.family, first), bits },
      );
      first += size;
    }
  }
  return out;
}

/** `192.0.2.0/24`, `2001:db8::/32`: always with the prefix length. */
export function formatCidr(cidr: Cidr): string {
  return `${formatIpShort(cidr.ip)}/${cidr.bits}`;
}
