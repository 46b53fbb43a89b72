/**
 * serve's --proxy (src/serve/proxy.ts): the trusted networks, the PROXY
 * protocol parser, v1 and v2, hostile headers too (tables: got X, want Y),
 * the PROXY line, and the reading of exactly one header from a socket pair
 * through libc, byte by byte, with its deadline.
 */
import "./fixtures/bind_libc.ts";
import assert from "node:assert/strict";
import { type Ip, parseIp } from "../src/ip.ts";
import { EPOLLIN, EPOLLRDHUP, libc } from "../src/libc.ts";
import { parseServe } from "../src/serve/options.ts";
import {
  type Header,
  type HeaderRead,
  MAX_HEADER_BYTES,
  MAX_V1_BYTES,
  type Parsed,
  parseHeader,
  parseNets,
  proxyLine,
  readHeader,
  trusts,
} from "../src/serve/proxy.ts";
import { assertUsageError } from "./fixtures/assert.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function ip(text: string): Ip {
  const parsed = parseIp(text);
  if (!parsed) throw new Error(`bad test address ${text}`);
  return parsed;
}

function bytes(...parts: Array<string | number[] | Uint8Array>): Uint8Array {
  const all = parts.map((p) => typeof p === "string" ? encoder.encode(p) : Uint8Array.from(p));
  const out = new Uint8Array(all.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of all) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** A v2 header: signature, version and command byte, family byte, length of `body`, `body`. */
function v2(verCmd: number, family: number, body: number[] | Uint8Array, length?: number) {
  const n = length ?? body.length;
  return bytes(SIGNATURE, [verCmd, family, n >> 8, n & 0xff], body);
}

function port(n: number): number[] {
  return [n >> 8, n & 0xff];
}

/** TCP over IPv4's address block. */
function inet4(src: string, dst: string, sport: number, dport: number): number[] {
  return [...ip(src).bytes, ...ip(dst).bytes, ...port(sport), ...port(dport)];
}

/** TCP over IPv6's address block (`src`, `dst` as 16 bytes, mapped ones too). */
function inet6(src: number[], dst: number[], sport: number, dport: number): number[] {
  return [...src, ...dst, ...port(sport), ...port(dport)];
}

const V6_SRC = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_DST = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x25];
const MAPPED = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7];

function tlv(type: number, value: number[] | string): number[] {
  const v = typeof value === "string" ? [...encoder.encode(value)] : value;
  return [type, v.length >> 8, v.length & 0xff, ...v];
}

/** A proxied header as the parser gives it. */
function proxied(
  version: 1 | 2,
  src: string,
  dst: string,
  sport: number,
  dport: number,
): Header {
  return {
    kind: "proxied",
    version,
    source: { ip: ip(src), port: sport },
    destination: { ip: ip(dst), port: dport },
  };
}

const header = (length: number, h: Header): Parsed => ({ kind: "header", length, header: h });
const bad = (why: string): Parsed => ({ kind: "bad", why } as Parsed);
const INCOMPLETE: Parsed = { kind: "incomplete" };

interface Row {
  readonly name: string;
  readonly input: Uint8Array;
  readonly want: Parsed;
}

async function table(t: Deno.TestContext, rows: readonly Row[]): Promise<void> {
  for (const row of rows) {
    await t.step(row.name, () => {
      const got = parseHeader(row.input);
      assert.deepEqual(
        got,
        row.want,
        `got ${JSON.stringify(got)}, want ${JSON.stringify(row.want)}`,
      );
    });
  }
}

const V1_TCP4 = "PROXY TCP4 192.0.2.7 198.51.100.25 56324 25\r\n";
const V1_TCP6 = "PROXY TCP6 2001:db8::1 2001:db8::25 56324 25\r\n";
/** The longest v1 line there is: UNKNOWN and two full IPv6 addresses, 107 bytes. */
const FULL_V6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
const V1_LONGEST = `PROXY UNKNOWN ${FULL_V6} ${FULL_V6} 65535 65535\r\n`;

Deno.test("parseHeader() reads v1 lines: TCP4, TCP6, UNKNOWN, and stops at the CRLF", async (t) => {
  assert.equal(V1_LONGEST.length, MAX_V1_BYTES);
  await table(t, [
    {
      name: "TCP4",
      input: bytes(V1_TCP4),
      want: header(V1_TCP4.length, proxied(1, "192.0.2.7", "198.51.100.25", 56324, 25)),
    },
    {
      name: "TCP4, the client's SMTP bytes after it in the same segment: not the header's",
      input: bytes(V1_TCP4, "EHLO spammer\r\n"),
      want: header(V1_TCP4.length, proxied(1, "192.0.2.7", "198.51.100.25", 56324, 25)),
    },
    {
      name: "TCP6",
      input: bytes(V1_TCP6),
      want: header(V1_TCP6.length, proxied(1, "2001:db8::1", "2001:db8::25", 56324, 25)),
    },
    {
      name: "TCP6 in upper case, full form",
      input: bytes("PROXY TCP6 2001:DB8:0:0:0:0:0:1 2001:db8::25 1 2\r\n"),
      want: header(50, proxied(1, "2001:db8::1", "2001:db8::25", 1, 2)),
    },
    {
      name: "TCP6 of IPv4-mapped addresses (as inet_ntop writes them): the IPv4 client",
      input: bytes("PROXY TCP6 ::ffff:192.0.2.7 ::ffff:198.51.100.25 56324 25\r\n"),
      want: header(59, proxied(1, "192.0.2.7", "198.51.100.25", 56324, 25)),
    },
    {
      name: "ports 0 and 65535",
      input: bytes("PROXY TCP4 192.0.2.7 198.51.100.25 0 65535\r\n"),
      want: header(44, proxied(1, "192.0.2.7", "198.51.100.25", 0, 65535)),
    },
    {
      name: "UNKNOWN, short form: the connection's own addresses",
      input: bytes("PROXY UNKNOWN\r\nEHLO x\r\n"),
      want: header(15, { kind: "local", version: 1 }),
    },
    {
      name: "UNKNOWN, the rest of the line ignored, at the 107 bytes limit",
      input: bytes(V1_LONGEST, "QUIT\r\n"),
      want: header(MAX_V1_BYTES, { kind: "local", version: 1 }),
    },
    {
      name: "UNKNOWN with anything before the CRLF",
      input: bytes("PROXY UNKNOWN what ever \x01\xff\r\n"),
      want: header(29, { kind: "local", version: 1 }),
    },
  ]);
});

Deno.test("parseHeader() waits for more while a v1 line may still come whole", async (t) => {
  const rows: Row[] = [];
  for (let n = 1; n < V1_TCP4.length; n++) {
    rows.push({ name: `${n} bytes of it`, input: bytes(V1_TCP4.slice(0, n)), want: INCOMPLETE });
  }
  await table(t, [
    { name: "nothing yet", input: new Uint8Array(0), want: INCOMPLETE },
    ...rows,
    {
      name: "106 bytes and a CR: the LF may still come",
      input: bytes(V1_LONGEST.slice(0, 106)),
      want: INCOMPLETE,
    },
  ]);
});

Deno.test("parseHeader() refuses hostile and broken v1 lines", async (t) => {
  const tcp4 = (rest: string) => bytes(`PROXY TCP4 ${rest}`);
  await table(t, [
    { name: "SMTP instead of a header", input: bytes("EHLO x\r\n"), want: bad("signature") },
    { name: "HTTP", input: bytes("GET / HTTP/1.0\r\n"), want: bad("signature") },
    { name: "lower case", input: bytes("proxy TCP4 "), want: bad("signature") },
    { name: "PROXY without its space", input: bytes("PROXYTCP4"), want: bad("signature") },
    {
      name: "a lone LF ends nothing",
      input: bytes(V1_TCP4.replace("\r\n", "\n")),
      want: bad("line"),
    },
    {
      name: "a lone CR ends nothing",
      input: bytes(V1_TCP4.replace("\r\n", "\rX\n")),
      want: bad("line"),
    },
    {
      name: "garbage after a valid line, before the CRLF",
      input: tcp4("192.0.2.7 198.51.100.25 56324 25 EHLO x\r\n"),
      want: bad("line"),
    },
    {
      name: "garbage glued to the last port",
      input: tcp4("192.0.2.7 198.51.100.25 56324 25EHLO x\r\n"),
      want: bad("line"),
    },
    {
      name: "a valid line, then garbage and no CRLF within 107 bytes",
      input: tcp4(`192.0.2.7 198.51.100.25 56324 25 ${"x".repeat(80)}`),
      want: bad("long"),
    },
    {
      name: "108 bytes with the CRLF last: over the limit",
      input: bytes(V1_LONGEST.replace("PROXY UNKNOWN ", "PROXY UNKNOWN  ")),
      want: bad("long"),
    },
    {
      name: "107 bytes of garbage after PROXY",
      input: bytes("PROXY ", "\xff".repeat(101)),
      want: bad("long"),
    },
    { name: "two spaces", input: tcp4(" 192.0.2.7 198.51.100.25 56324 25\r\n"), want: bad("line") },
    {
      name: "a trailing space",
      input: tcp4("192.0.2.7 198.51.100.25 56324 25 \r\n"),
      want: bad("line"),
    },
    {
      name: "a field missing",
      input: tcp4("192.0.2.7 198.51.100.25 56324\r\n"),
      want: bad("line"),
    },
    { name: "only the family", input: bytes("PROXY TCP4\r\n"), want: bad("line") },
    { name: "TCP5", input: bytes("PROXY TCP5 192.0.2.7 198.51.100.25 1 2\r\n"), want: bad("line") },
    { name: "UDP4", input: bytes("PROXY UDP4 192.0.2.7 198.51.100.25 1 2\r\n"), want: bad("line") },
    { name: "UNKNOWNX", input: bytes("PROXY UNKNOWNX\r\n"), want: bad("line") },
    {
      name: "TCP4 with IPv6 addresses",
      input: tcp4("2001:db8::1 2001:db8::25 1 2\r\n"),
      want: bad("line"),
    },
    {
      name: "TCP6 with IPv4 addresses",
      input: bytes("PROXY TCP6 192.0.2.7 198.51.100.25 1 2\r\n"),
      want: bad("line"),
    },
    {
      name: "TCP6 with a %zone",
      input: bytes("PROXY TCP6 fe80::1%eth0 2001:db8::25 1 2\r\n"),
      want: bad("line"),
    },
    {
      name: "a leading zero in an address",
      input: tcp4("192.0.2.07 198.51.100.25 1 2\r\n"),
      want: bad("line"),
    },
    {
      name: "an octet over 255",
      input: tcp4("192.0.2.256 198.51.100.25 1 2\r\n"),
      want: bad("line"),
    },
    { name: "three octets", input: tcp4("192.0.2 198.51.100.25 1 2\r\n"), want: bad("line") },
    {
      name: "a name for an address",
      input: tcp4("mx.example.org 198.51.100.25 1 2\r\n"),
      want: bad("line"),
    },
    {
      name: "a port over 65535",
      input: tcp4("192.0.2.7 198.51.100.25 65536 25\r\n"),
      want: bad("line"),
    },
    {
      name: "a port with a leading zero",
      input: tcp4("192.0.2.7 198.51.100.25 025 25\r\n"),
      want: bad("line"),
    },
    {
      name: "a negative port",
      input: tcp4("192.0.2.7 198.51.100.25 -1 25\r\n"),
      want: bad("line"),
    },
    {
      name: "a port in hex",
      input: tcp4("192.0.2.7 198.51.100.25 0x19 25\r\n"),
      want: bad("line"),
    },
    {
      name: "a tab for a space",
      input: tcp4("192.0.2.7\t198.51.100.25 1 25\r\n"),
      want: bad("line"),
    },
    {
      name: "a NUL in the line",
      input: tcp4("192.0.2.7\x00 198.51.100.25 1 25\r\n"),
      want: bad("line"),
    },
  ]);
});

const V2_TCP4 = v2(0x21, 0x11, inet4("192.0.2.7", "198.51.100.25", 56324, 25));
const V2_TCP6 = v2(0x21, 0x21, inet6(V6_SRC, V6_DST, 56324, 25));

Deno.test("parseHeader() reads v2 headers: TCP4, TCP6, LOCAL, UNSPEC, TLVs skipped", async (t) => {
  const tlvs = [
    ...tlv(0x04, [0, 0]), // NOOP
    ...tlv(0x02, "mx.example.org"), // AUTHORITY
    ...tlv(0x05, "x".repeat(128)), // UNIQUE_ID
    ...tlv(0x20, [1, 0, 0, 0, 0, ...tlv(0x21, "TLSv1.3")]), // SSL, a sub-TLV
    ...tlv(0xe0, []), // custom, empty
  ];
  const withTlvs = v2(0x21, 0x11, [...inet4("192.0.2.7", "198.51.100.25", 56324, 25), ...tlvs]);
  await table(t, [
    {
      name: "PROXY, TCP over IPv4",
      input: V2_TCP4,
      want: header(28, proxied(2, "192.0.2.7", "198.51.100.25", 56324, 25)),
    },
    {
      name: "PROXY, TCP over IPv4, the client's bytes after it",
      input: bytes(V2_TCP4, "EHLO spammer\r\n"),
      want: header(28, proxied(2, "192.0.2.7", "198.51.100.25", 56324, 25)),
    },
    {
      name: "PROXY, TCP over IPv6",
      input: V2_TCP6,
      want: header(52, proxied(2, "2001:db8::1", "2001:db8::25", 56324, 25)),
    },
    {
      name: "PROXY, TCP over IPv6 from an IPv4-mapped address: the IPv4 client",
      input: v2(0x21, 0x21, inet6(MAPPED, V6_DST, 4000, 25)),
      want: header(52, proxied(2, "192.0.2.7", "2001:db8::25", 4000, 25)),
    },
    {
      name: "PROXY with TLVs (NOOP, AUTHORITY, UNIQUE_ID, SSL, custom): skipped",
      input: bytes(withTlvs, "QUIT\r\n"),
      want: header(withTlvs.length, proxied(2, "192.0.2.7", "198.51.100.25", 56324, 25)),
    },
    {
      name: "LOCAL (a health check), no addresses",
      input: bytes(v2(0x20, 0x00, []), "QUIT\r\n"),
      want: header(16, { kind: "local", version: 2 }),
    },
    {
      name: "LOCAL with addresses: skipped, not used",
      input: v2(0x20, 0x11, inet4("192.0.2.7", "198.51.100.25", 1, 25)),
      want: header(28, { kind: "local", version: 2 }),
    },
    {
      name: "LOCAL with any family byte: ignored",
      input: v2(0x20, 0xff, [1, 2, 3]),
      want: header(19, { kind: "local", version: 2 }),
    },
    {
      name: "PROXY, UNSPEC: the connection's own addresses",
      input: v2(0x21, 0x00, []),
      want: header(16, { kind: "local", version: 2 }),
    },
    {
      name: "PROXY, UNSPEC with bytes after: skipped",
      input: v2(0x21, 0x00, [9, 9, 9, 9]),
      want: header(20, { kind: "local", version: 2 }),
    },
    {
      name: "PROXY, UDP over IPv4: taken as UNSPEC",
      input: v2(0x21, 0x12, inet4("192.0.2.7", "198.51.100.25", 1, 25)),
      want: header(28, { kind: "local", version: 2 }),
    },
    {
      name: "PROXY, UDP over IPv6: taken as UNSPEC",
      input: v2(0x21, 0x22, inet6(V6_SRC, V6_DST, 1, 25)),
      want: header(52, { kind: "local", version: 2 }),
    },
    {
      name: "PROXY, UNIX stream (216 bytes of paths): taken as UNSPEC",
      input: v2(0x21, 0x31, new Array(216).fill(0x2f)),
      want: header(232, { kind: "local", version: 2 }),
    },
    {
      name: "PROXY, UNIX datagram: taken as UNSPEC",
      input: v2(0x21, 0x32, new Array(216).fill(0)),
      want: header(232, { kind: "local", version: 2 }),
    },
    {
      name: "the longest header taken: 536 bytes",
      input: v2(0x21, 0x11, [
        ...inet4("192.0.2.7", "198.51.100.25", 1, 25),
        ...tlv(0x04, new Array(MAX_HEADER_BYTES - 28 - 3).fill(0)),
      ]),
      want: header(MAX_HEADER_BYTES, proxied(2, "192.0.2.7", "198.51.100.25", 1, 25)),
    },
  ]);
});

Deno.test("parseHeader() waits for more while a v2 header may still come whole", async (t) => {
  const rows: Row[] = [];
  for (let n = 1; n < V2_TCP6.length; n++) {
    rows.push({ name: `${n} bytes of TCP6`, input: V2_TCP6.slice(0, n), want: INCOMPLETE });
  }
  await table(t, rows);
});

Deno.test("parseHeader() refuses hostile and broken v2 headers", async (t) => {
  const four = inet4("192.0.2.7", "198.51.100.25", 1, 25);
  const wrongSignature = Uint8Array.from(V2_TCP4);
  wrongSignature[10] = 0x58; // QUIX
  await table(t, [
    { name: "a signature with one byte wrong", input: wrongSignature, want: bad("signature") },
    { name: "a CRLF, then SMTP", input: bytes("\r\nEHLO x\r\n"), want: bad("signature") },
    { name: "version 1 in the binary format", input: v2(0x11, 0x11, four), want: bad("version") },
    { name: "version 3", input: v2(0x31, 0x11, four), want: bad("version") },
    { name: "version 0", input: v2(0x01, 0x11, four), want: bad("version") },
    {
      name: "the version told at 13 bytes, before the rest",
      input: bytes(SIGNATURE, [0x41]),
      want: bad("version"),
    },
    { name: "command 2 (unassigned)", input: v2(0x22, 0x11, four), want: bad("version") },
    { name: "command 15", input: v2(0x2f, 0x11, four), want: bad("version") },
    { name: "family 4", input: v2(0x21, 0x41, four), want: bad("family") },
    { name: "protocol 3", input: v2(0x21, 0x13, four), want: bad("family") },
    { name: "AF_INET, protocol UNSPEC", input: v2(0x21, 0x10, four), want: bad("family") },
    { name: "AF_UNSPEC, protocol STREAM", input: v2(0x21, 0x01, four), want: bad("family") },
    { name: "family 0xff", input: v2(0x21, 0xff, four), want: bad("family") },
    {
      name: "the family told at 16 bytes, before the addresses",
      input: bytes(SIGNATURE, [0x21, 0x51, 0, 12]),
      want: bad("family"),
    },
    {
      name: "TCP4 with a length shorter than its addresses",
      input: v2(0x21, 0x11, four.slice(0, 8)),
      want: bad("length"),
    },
    { name: "TCP4 with no addresses", input: v2(0x21, 0x11, []), want: bad("length") },
    {
      name: "TCP6 with IPv4's address length",
      input: v2(0x21, 0x21, four),
      want: bad("length"),
    },
    {
      name: "a length of 65535: refused at 16 bytes, nothing more waited for",
      input: bytes(SIGNATURE, [0x21, 0x11, 0xff, 0xff]),
      want: bad("long"),
    },
    {
      name: "one byte over the 536 bytes limit",
      input: bytes(SIGNATURE, [
        0x21,
        0x11,
        (MAX_HEADER_BYTES - 15) >> 8,
        (MAX_HEADER_BYTES - 15) & 0xff,
      ]),
      want: bad("long"),
    },
    {
      name: "LOCAL over the limit too",
      input: bytes(SIGNATURE, [0x20, 0x00, 0x10, 0x00]),
      want: bad("long"),
    },
    {
      name: "two bytes after the addresses: no room for a TLV",
      input: v2(0x21, 0x11, [...four, 4, 0]),
      want: bad("tlv"),
    },
    {
      name: "a TLV longer than the header",
      input: v2(0x21, 0x11, [...four, 0x02, 0, 100, 1, 2, 3, 4, 5]),
      want: bad("tlv"),
    },
    {
      name: "a TLV whose length overflows (65535)",
      input: v2(0x21, 0x11, [...four, ...tlv(0x04, []), 0x02, 0xff, 0xff, 1]),
      want: bad("tlv"),
    },
    {
      name: "a TLV that ends one byte past the header",
      input: bytes(v2(0x21, 0x11, [...four, 0x04, 0, 2, 0], 16), [0]),
      want: bad("tlv"),
    },
  ]);
});

Deno.test("parseHeader() never waits past MAX_HEADER_BYTES, whatever the bytes", () => {
  // A seeded generator: headers' starts with random tails, and random bytes, many times.
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const starts = [bytes("PROXY "), bytes(SIGNATURE, [0x21]), bytes(SIGNATURE, [0x20, 0x11])];
  for (let i = 0; i < 3000; i++) {
    const input = new Uint8Array(MAX_HEADER_BYTES);
    for (let j = 0; j < input.length; j++) input[j] = Math.floor(random() * 256);
    const start = starts[i % 4];
    if (start) input.set(start);
    // Printable v1 text now and then, so that some lines parse far.
    if (i % 4 === 0 && i % 8 === 0) {
      for (let j = 6; j < input.length; j++) input[j] = 32 + Math.floor(random() * 95);
    }
    const got = parseHeader(input);
    assert.notEqual(got.kind, "incomplete", `incomplete at ${MAX_HEADER_BYTES} bytes: ${input}`);
    if (got.kind === "header") assert.ok(got.length <= MAX_HEADER_BYTES);
  }
});

Deno.test("parseNets() and trusts(): --proxy's addresses and CIDRs, IPv4 and IPv6", async (t) => {
  const nets = parseNets("127.0.0.0/8,10.1.2.3,2001:db8::/32,::1", "--proxy");
  const rows: Array<[string, boolean]> = [
    ["127.0.0.1", true],
    ["127.255.255.254", true],
    ["128.0.0.1", false],
    ["10.1.2.3", true],
    ["10.1.2.4", false],
    ["2001:db8:ffff::1", true],
    ["2001:db9::1", false],
    ["::1", true],
    ["::2", false],
    ["::ffff:127.0.0.1", true], // IPv4-mapped: the IPv4 address
  ];
  for (const [address, want] of rows) {
    await t.step(`${address}: ${want}`, () => assert.equal(trusts(nets, ip(address)), want));
  }
  await t.step("0.0.0.0/0 trusts every IPv4 address and no IPv6 one", () => {
    const any = parseNets("0.0.0.0/0", "--proxy");
    assert.equal(trusts(any, ip("203.0.113.9")), true);
    assert.equal(trusts(any, ip("2001:db8::1")), false);
  });
  for (
    const wrong of [
      "",
      "127.0.0.0/33",
      "::/129",
      "10.0.0.0/8,",
      "lb.example.org",
      "10.0.0.0/8/8",
      "10.0.0.0/x",
      "fe80::1%eth0",
      "10.0.0.0/-1",
    ]
  ) {
    await t.step(`"${wrong}" is a usage error`, () => {
      assertUsageError(
        () => parseNets(wrong, "--proxy"),
        "--proxy wants addresses or CIDRs",
        `"${wrong}"`,
      );
    });
  }
});

Deno.test("parseServe() takes --proxy (absent: no proxy), and refuses a bad one", () => {
  const tail = ["0", "25", "qmail-smtpd"];
  assert.equal("proxy" in parseServe(tail, {}, ""), false);
  const got = parseServe(["--proxy", "127.0.0.0/8,::1", ...tail], {}, "");
  assert.deepEqual(got.proxy, [{ ip: ip("127.0.0.0"), bits: 8 }, { ip: ip("::1"), bits: 128 }]);
  assert.deepEqual(parseServe(["--proxy=192.0.2.1", ...tail], {}, "").proxy, [{
    ip: ip("192.0.2.1"),
    bits: 32,
  }]);
  assert.deepEqual(got.screening, [], "not a screening option");
  assertUsageError(() => parseServe(["--proxy", "x", ...tail], {}, ""), "--proxy", '"x"');
});

Deno.test("proxyLine() writes the PROXY line: fixed fields, the data cleaned", () => {
  const failed = (why: string, data: Uint8Array, afterMs: number) =>
    ({ kind: "failed", why, data, afterMs }) as Extract<HeaderRead, { kind: "failed" }>;
  assert.equal(
    proxyLine(ip("127.0.0.1"), failed("timeout", bytes("PROXY TCP4 1.2"), 5000.4)),
    "PROXY ip=127.0.0.1 why=timeout waited=5.000 action=drop bytes=14 data=PROXY?TCP4?1.2",
  );
  assert.equal(
    proxyLine(ip("::1"), failed("closed", new Uint8Array(0), 12)),
    "PROXY ip=0:0:0:0:0:0:0:1 why=closed waited=0.012 action=drop bytes=0 data=-",
  );
  assert.equal(
    proxyLine(ip("10.0.0.1"), failed("signature", bytes("x".repeat(300)), 1)),
    `PROXY ip=10.0.0.1 why=signature waited=0.001 action=drop bytes=300 data=${"x".repeat(100)}`,
  );
});

/**
 * A socket pair through libc (`ours` read by readHeader, `theirs` the load
 * balancer's end), and a loop that only records the handler: the test
 * wakes it as epoll would.
 */
function pair() {
  const c = libc();
  const [ours, theirs] = c.socketPair();
  let handler: ((revents: number) => void) | undefined;
  const watched = new Set<number>();
  const loop = {
    add(fd: number, _events: number, h: (revents: number) => void) {
      watched.add(fd);
      handler = h;
    },
    remove(fd: number) {
      watched.delete(fd);
    },
  };
  return {
    ours,
    watched,
    read: (deadlineMs = 5000) => readHeader(c, loop, ours, deadlineMs, () => performance.now()),
    send: (data: Uint8Array) => assert.ok(c.writeAll(theirs, data)),
    wake: (revents = EPOLLIN) => handler!(revents),
    /** What waits unread on our end. */
    left: () => c.peek(ours, 4096) ?? new Uint8Array(0),
    hangUp: () => c.shutdownWrite(theirs),
    close: () => {
      c.close(ours);
      c.close(theirs);
    },
  };
}

Deno.test("readHeader() takes exactly the header: the client's early bytes stay unread", async (t) => {
  for (const [name, head] of [["v1", bytes(V1_TCP4)], ["v2", V2_TCP4]] as const) {
    await t.step(name, async () => {
      const p = pair();
      try {
        p.send(bytes(head, "EHLO spammer\r\n"));
        const got = await p.read();
        assert.deepEqual(got, {
          kind: "header",
          header: proxied(name === "v1" ? 1 : 2, "192.0.2.7", "198.51.100.25", 56324, 25),
        });
        assert.equal(decoder.decode(p.left()), "EHLO spammer\r\n");
        assert.equal(p.watched.size, 0, "out of the loop");
      } finally {
        p.close();
      }
    });
  }
});

Deno.test("readHeader() takes a header sent byte by byte, leaving nothing to wake the loop", async (t) => {
  const withTlv = v2(0x21, 0x21, [...inet6(V6_SRC, V6_DST, 56324, 25), ...tlv(0x02, "mx")]);
  for (const [name, head] of [["v1", bytes(V1_TCP6)], ["v2 with a TLV", withTlv]] as const) {
    await t.step(name, async () => {
      const p = pair();
      try {
        let done = false;
        const reading = p.read().then((r) => {
          done = true;
          return r;
        });
        for (let i = 0; i < head.length - 1; i++) {
          p.send(head.subarray(i, i + 1));
          p.wake();
          await Promise.resolve();
          assert.equal(done, false, `done after ${i + 1} bytes`);
          assert.equal(p.left().length, 0, "every byte of a header taken");
        }
        p.send(bytes(head.subarray(head.length - 1), "QUIT\r\n"));
        p.wake();
        const got = await reading;
        assert.equal(got.kind, "header");
        assert.deepEqual(
          got.kind === "header" && got.header,
          proxied(name === "v1" ? 1 : 2, "2001:db8::1", "2001:db8::25", 56324, 25),
        );
        assert.equal(decoder.decode(p.left()), "QUIT\r\n");
      } finally {
        p.close();
      }
    });
  }
});

Deno.test("readHeader() drops a bad header at once, a hang-up, and a header too slow", async (t) => {
  await t.step("SMTP from a trusted address: signature", async () => {
    const p = pair();
    try {
      p.send(bytes("EHLO x\r\n"));
      const got = await p.read();
      assert.equal(got.kind, "failed");
      if (got.kind === "failed") {
        assert.equal(got.why, "signature");
        assert.equal(decoder.decode(got.data), "EHLO x\r\n");
      }
      assert.equal(p.watched.size, 0);
    } finally {
      p.close();
    }
  });
  await t.step("a huge v2 length: refused at its 16 bytes", async () => {
    const p = pair();
    try {
      p.send(bytes(SIGNATURE, [0x21, 0x11, 0xff, 0xff], new Array(100).fill(0)));
      const got = await p.read();
      assert.equal(got.kind === "failed" && got.why, "long");
    } finally {
      p.close();
    }
  });
  await t.step("half a header, then FIN: closed", async () => {
    const p = pair();
    try {
      const reading = p.read();
      p.send(bytes("PROXY TCP4 192.0.2.7"));
      p.wake();
      p.hangUp();
      p.wake(EPOLLIN | EPOLLRDHUP);
      const got = await reading;
      assert.equal(got.kind === "failed" && got.why, "closed");
      assert.equal(got.kind === "failed" && decoder.decode(got.data), "PROXY TCP4 192.0.2.7");
    } finally {
      p.close();
    }
  });
  await t.step("FIN before a byte: closed", async () => {
    const p = pair();
    try {
      p.hangUp();
      const reading = p.read();
      p.wake(EPOLLIN | EPOLLRDHUP);
      const got = await reading;
      assert.equal(got.kind === "failed" && got.why, "closed");
    } finally {
      p.close();
    }
  });
  await t.step("half a header, then nothing: timeout at the deadline", async () => {
    const p = pair();
    try {
      const start = performance.now();
      const reading = p.read(50);
      p.send(bytes(SIGNATURE));
      p.wake();
      const got = await reading;
      const ms = performance.now() - start;
      assert.equal(got.kind === "failed" && got.why, "timeout");
      assert.equal(got.kind === "failed" && got.data.length, 12);
      assert.ok(ms >= 45 && ms < 1000, `after ${ms} ms`);
      assert.equal(p.watched.size, 0);
    } finally {
      p.close();
    }
  });
});
