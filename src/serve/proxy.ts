/**
 * The PROXY protocol (HAProxy's, versions 1 and 2), serve's `--proxy`: a
 * connection from a trusted load balancer starts with a header that names
 * the client it relays, and that client is the one serve screens. Here are
 * the trusted networks (`--proxy CIDR,...`), the parser (pure: bytes ->
 * incomplete, bad or a header) and the reading of exactly one header from a
 * client's socket, within a deadline, through the server's event loop.
 *
 * Never a byte of the session behind the header is read: what waits is
 * peeked (MSG_PEEK) and only the bytes that belong to the header are taken,
 * so that a client who talks at once, in the header's own segment, is still
 * early to the screening.
 */
import { allowsIp } from "../allow.ts";
import { formatIp, type Ip, ipFromBytes, parseIp } from "../ip.ts";
import { type Address, EPOLLIN, EPOLLRDHUP, type Libc, POLLERR, POLLHUP } from "../libc.ts";
import type { EventLoop } from "../loop.ts";
import { clean, seconds } from "../log.ts";
import { UsageError } from "../usage_error.ts";

/**
 * How long a trusted connection has to send its header whole: the spec asks
 * at least 3 s (a TCP retransmission); postscreen's default is 5 s.
 */
export const HEADER_DEADLINE_MS = 5000;

/**
 * The longest header taken, in bytes: the smallest TCP segment every host
 * takes (576 - 40), which the spec says a header always fits in, and
 * Postfix's own limit. A v1 line is at most 107 bytes; a v2 header whose
 * length field says more than this is refused before it is read.
 */
export const MAX_HEADER_BYTES = 536;

/** A v1 line's longest length, its CRLF included (`PROXY UNKNOWN` and two full IPv6 addresses). */
export const MAX_V1_BYTES = 107;

/** The 12 bytes that start a v2 header. */
const V2_SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
const V1_PREFIX = [0x50, 0x52, 0x4f, 0x58, 0x59, 0x20]; // "PROXY "
const CR = 0x0d;
const LF = 0x0a;

/** A network: an address and the bits of its prefix. */
export interface Net {
  readonly ip: Ip;
  readonly bits: number;
}

/**
 * `--proxy`'s value: addresses or CIDRs, IPv4 or IPv6, comma-separated
 * (`127.0.0.1,10.0.0.0/8,2001:db8::/32`); a UsageError for anything else.
 */
export function parseNets(text: string, what: string): Net[] {
  return text.split(",").map((word) => {
    const [address, prefix, extra] = word.trim().split("/");
    const ip = /^[0-9a-fA-F:.]+$/.test(address ?? "") ? parseIp(address!) : undefined;
    const max = ip?.family === 4 ? 32 : 128;
    const bits = prefix === undefined ? max : /^[0-9]{1,3}$/.test(prefix) ? Number(prefix) : NaN;
    if (!ip || extra !== undefined || !(bits >= 0 && bits <= max)) {
      throw new UsageError(
        `${what} wants addresses or CIDRs separated by commas, as 10.0.0.0/8,2001:db8::/32, ` +
          `got "${text}"`,
      );
    }
    return { ip, bits };
  });
}

/** Whether `ip` is in one of `nets` (an IPv4-mapped IPv6 address is the IPv4 one). */
export function trusts(nets: readonly Net[], ip: Ip): boolean {
  return allowsIp({ nets, suffixes: [] }, ip);
}

/**
 * What a header says: `local`, use the connection's own addresses (v1's
 * UNKNOWN, v2's LOCAL command, UNSPEC and the families serve does not
 * take); or the client's and the server's addresses of the relayed
 * connection.
 */
export type Header =
  | { readonly kind: "local"; readonly version: 1 | 2 }
  | {
    readonly kind: "proxied";
    readonly version: 1 | 2;
    readonly source: Address;
    readonly destination: Address;
  };

/**
 * Why a trusted connection was dropped, as the PROXY line's `why=` says it:
 * `signature` (neither a v1 line nor a v2 signature), `line` (a v1 line that
 * is not exactly one: fields, spaces, addresses, ports, a lone CR or LF),
 * `long` (over the byte limit), `version` (v2's version or command),
 * `family` (v2's family and protocol), `length` (v2's addresses longer than
 * its length says), `tlv` (a v2 TLV past the header's end), `timeout` (no
 * whole header within the deadline), `closed` (the peer hung up first).
 */
export type Why =
  | "signature"
  | "line"
  | "long"
  | "version"
  | "family"
  | "length"
  | "tlv"
  | "timeout"
  | "closed";

/** What the bytes so far make: more are needed, they are no header, or a header of `length` bytes. */
export type Parsed =
  | { readonly kind: "incomplete" }
  | { readonly kind: "bad"; readonly why: Why }
  | { readonly kind: "header"; readonly length: number; readonly header: Header };

const INCOMPLETE: Parsed = { kind: "incomplete" };

/** Whether `bytes` starts as `prefix` does, as far as either goes. */
function startsAs(bytes: Uint8Array, prefix: readonly number[]): boolean {
  const n = Math.min(bytes.length, prefix.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

/**
 * The header at the start of `bytes` (what a connection sent first), v1 or
 * v2. Pure. `incomplete` only while `bytes` could still become a valid
 * header within MAX_HEADER_BYTES: a parse of that many bytes is never
 * incomplete. Bytes after the header are not looked at.
 */
export function parseHeader(bytes: Uint8Array): Parsed {
  if (bytes.length === 0) return INCOMPLETE;
  if (startsAs(bytes, V2_SIGNATURE)) return parseV2(bytes);
  if (startsAs(bytes, V1_PREFIX)) return parseV1(bytes);
  return { kind: "bad", why: "signature" };
}

const PORT = /^(0|[1-9][0-9]{0,4})$/;

function port(text: string): number | undefined {
  return PORT.test(text) && Number(text) <= 65535 ? Number(text) : undefined;
}

/**
 * A v1 address of `family`: TCP4's exactly four decimal numbers without
 * leading zeros; TCP6's hex groups and colons (a dotted tail allowed, as
 * inet_ntop writes an IPv4-mapped address; no %zone).
 */
function v1Address(text: string, family: "TCP4" | "TCP6"): Ip | undefined {
  const ok = family === "TCP4" ? /^[0-9.]+$/.test(text) : /^[0-9a-fA-F:.]+$/.test(text) &&
    text.includes(":");
  return ok ? parseIp(text) : undefined;
}

/** `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n`, or `PROXY UNKNOWN[ anything]\r\n`. */
function parseV1(bytes: Uint8Array): Parsed {
  // The CRLF must come within MAX_V1_BYTES; a CR or LF alone ends nothing, and is refused.
  const n = Math.min(bytes.length, MAX_V1_BYTES);
  let end = -1;
  for (let i = 0; i < n; i++) {
    if (bytes[i] === LF) return { kind: "bad", why: "line" };
    if (bytes[i] === CR) {
      if (i + 1 >= n) {
        return bytes.length >= MAX_V1_BYTES ? { kind: "bad", why: "long" } : INCOMPLETE;
      }
      if (bytes[i + 1] !== LF) return { kind: "bad", why: "line" };
      end = i;
      break;
    }
  }
  if (end < 0) return bytes.length >= MAX_V1_BYTES ? { kind: "bad", why: "long" } : INCOMPLETE;
  const line = String.fromCharCode(...bytes.subarray(0, end));
  const length = end + 2;
  if (line === "PROXY UNKNOWN" || line.startsWith("PROXY UNKNOWN ")) {
    return { kind: "header", length, header: { kind: "local", version: 1 } };
  }
  const [, family, src, dst, sport, dport, ...more] = line.split(" ");
  if ((family !== "TCP4" && family !== "TCP6") || more.length > 0) {
    return { kind: "bad", why: "line" };
  }
  const sourceIp = v1Address(src ?? "", family);
  const destinationIp = v1Address(dst ?? "", family);
  const sourcePort = port(sport ?? "");
  const destinationPort = port(dport ?? "");
  if (!sourceIp || !destinationIp || sourcePort === undefined || destinationPort === undefined) {
    return { kind: "bad", why: "line" };
  }
  return {
    kind: "header",
    length,
    header: {
      kind: "proxied",
      version: 1,
      source: { ip: sourceIp, port: sourcePort },
      destination: { ip: destinationIp, port: destinationPort },
    },
  };
}

/** v2's family and protocol bytes that serve reads, and the length of their addresses. */
const V2_INET: ReadonlyMap<number, number> = new Map([
  [0x11, 4], // TCP over IPv4
  [0x21, 16], // TCP over IPv6
]);

/** The other combinations the spec defines: taken as UNSPEC (the connection's own addresses). */
const V2_AS_UNSPEC = new Set([0x00, 0x12, 0x22, 0x31, 0x32]);

/**
 * The 16 bytes (signature, version and command, family and protocol,
 * length), the addresses, then TLVs: skipped, each checked to end within
 * the header.
 */
function parseV2(bytes: Uint8Array): Parsed {
  if (bytes.length < 13) return INCOMPLETE;
  const version = bytes[12]! >> 4;
  const command = bytes[12]! & 0x0f;
  if (version !== 2 || command > 1) return { kind: "bad", why: "version" };
  if (bytes.length < 16) return INCOMPLETE;
  const family = bytes[13]!;
  const length = 16 + ((bytes[14]! << 8) | bytes[15]!);
  if (length > MAX_HEADER_BYTES) return { kind: "bad", why: "long" };
  const size = V2_INET.get(family);
  // LOCAL (a health check): the family is ignored, the block skipped whatever it holds.
  if (command === 1 && size === undefined && !V2_AS_UNSPEC.has(family)) {
    return { kind: "bad", why: "family" };
  }
  if (bytes.length < length) return INCOMPLETE;
  if (command === 0 || size === undefined) {
    return { kind: "header", length, header: { kind: "local", version: 2 } };
  }
  const addresses = 16 + 2 * size + 4;
  if (addresses > length) return { kind: "bad", why: "length" };
  for (let at = addresses; at < length;) {
    if (length - at < 3) return { kind: "bad", why: "tlv" };
    at += 3 + ((bytes[at + 1]! << 8) | bytes[at + 2]!);
    if (at > length) return { kind: "bad", why: "tlv" };
  }
  const ports = new DataView(bytes.buffer, bytes.byteOffset + 16 + 2 * size, 4);
  return {
    kind: "header",
    length,
    header: {
      kind: "proxied",
      version: 2,
      source: { ip: ipFromBytes(bytes.slice(16, 16 + size)), port: ports.getUint16(0) },
      destination: {
        ip: ipFromBytes(bytes.slice(16 + size, 16 + 2 * size)),
        port: ports.getUint16(2),
      },
    },
  };
}

/** What reading a connection's header came to: the header, or why the connection is dropped. */
export type HeaderRead =
  | { readonly kind: "header"; readonly header: Header }
  | {
    readonly kind: "failed";
    readonly why: Why;
    /** What the peer sent of it (read, and what was waiting), at most MAX_HEADER_BYTES. */
    readonly data: Uint8Array;
    readonly afterMs: number;
  };

/**
 * The line of a connection from `ip`, a load balancer, dropped without a
 * valid header: `PROXY ip=IP why=WHY waited=S action=drop bytes=N data=TEXT`,
 * `data` being its first bytes, cleaned as EARLY's are.
 */
export function proxyLine(ip: Ip, failed: Extract<HeaderRead, { kind: "failed" }>): string {
  return `PROXY ip=${formatIp(ip)} why=${failed.why} waited=${seconds(failed.afterMs)} ` +
    `action=drop bytes=${failed.data.length} data=${clean(failed.data)}`;
}

/** The calls of libc the reading makes. */
export type HeaderLibc = Pick<Libc, "peek" | "readWaiting">;

/**
 * Reads the header that starts the connection on `fd` (a blocking socket)
 * and nothing after it, within `deadlineMs`, watching `fd` in `loop` until
 * then (it is out of the loop again when this resolves). At each wake-up
 * what waits is peeked; bytes are taken only while they belong to the
 * header (so none waits unread to wake the loop again), and the header's
 * last byte is the last one read.
 */
export function readHeader(
  libc: HeaderLibc,
  loop: Pick<EventLoop, "add" | "remove">,
  fd: number,
  deadlineMs: number,
  now: () => number,
): Promise<HeaderRead> {
  const startMs = now();
  let got = new Uint8Array(0);
  return new Promise((resolve) => {
    let done = false;
    const finish = (read: HeaderRead) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      loop.remove(fd);
      resolve(read);
    };
    const fail = (why: Why, data = got) => {
      finish({ kind: "failed", why, data, afterMs: now() - startMs });
    };
    /** Takes `n` bytes known to be waiting (peeked): read(2) on them never blocks. */
    const take = (n: number): boolean => {
      const all = new Uint8Array(got.length + n);
      all.set(got);
      let at = got.length;
      while (at < all.length) {
        const part = libc.readWaiting(fd, all.length - at);
        if (part.length === 0) return false;
        all.set(part, at);
        at += part.length;
      }
      got = all;
      return true;
    };
    const look = (revents: number) => {
      if (done) return;
      const waiting = libc.peek(fd, MAX_HEADER_BYTES - got.length) ?? new Uint8Array(0);
      const both = new Uint8Array(got.length + waiting.length);
      both.set(got);
      both.set(waiting, got.length);
      const parsed = parseHeader(both);
      if (parsed.kind === "bad") return fail(parsed.why, both);
      if (parsed.kind === "header") {
        if (!take(parsed.length - got.length)) return fail("closed");
        return finish({ kind: "header", header: parsed.header });
      }
      // Incomplete: every byte waiting is the header's, taken so that none wakes the loop again.
      if (waiting.length > 0 && !take(waiting.length)) return fail("closed");
      if (revents & (EPOLLRDHUP | POLLHUP | POLLERR)) fail("closed");
    };
    const timer = setTimeout(() => fail("timeout"), deadlineMs);
    loop.add(fd, EPOLLIN | EPOLLRDHUP, look);
    look(0); // what came with the connection, before the loop's first wake-up
  });
}
