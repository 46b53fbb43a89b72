import assert from "node:assert/strict";
import { parseIp } from "../src/ip.ts";
import {
  coversAll,
  everything,
  formatCidr,
  netRange,
  type Range,
  subtract,
  toCidrs,
  union,
} from "../src/spf/cidr.ts";

/** The range of `ADDRESS/BITS` text. */
function net(text: string): Range {
  const [address, bits] = text.split("/");
  const ip = parseIp(address!);
  assert.ok(ip, `bad test address ${text}`);
  const family = address!.includes(":") ? 6 : 4;
  const bytes = family === 6 && ip.family === 4
    ? Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...ip.bytes])
    : ip.bytes;
  return netRange(family, bytes, Number(bits ?? (family === 4 ? 32 : 128)));
}

/** Runs as the CIDR lines the allowlist gets. */
const lines = (ranges: Iterable<Range>) => toCidrs(ranges).map(formatCidr);

Deno.test("netRange() clears host bits; toCidrs() writes RFC 5952's short IPv6", async (t) => {
  const rows: Array<[string, string, string]> = [
    ["an IPv4 network as written", "192.0.2.0/24", "192.0.2.0/24"],
    ["host bits of IPv4 cleared", "192.0.2.77/24", "192.0.2.0/24"],
    ["an IPv4 address alone is a /32", "198.51.100.7", "198.51.100.7/32"],
    ["/0", "203.0.113.9/0", "0.0.0.0/0"],
    ["host bits of IPv6 cleared", "2001:db8:1:2:3:4:5:6/48", "2001:db8:1::/48"],
    [
      "IPv6 written out in full is compressed",
      "2001:0db8:0000:0000:0000:0000:0000:0000/32",
      "2001:db8::/32",
    ],
    ["IPv6 in capitals is lowercased", "2001:DB8:AB::/48", "2001:db8:ab::/48"],
    [
      "the longest run of zero groups is the one compressed",
      "2001:db8:0:1:0:0:0:0/64",
      "2001:db8:0:1::/64",
    ],
    ["an IPv6 address alone is a /128", "2001:db8::25", "2001:db8::25/128"],
    ["::/0", "2001:db8::/0", "::/0"],
    ["IPv4-mapped IPv6 is the IPv4 network", "::ffff:192.0.2.128/121", "192.0.2.128/25"],
    ["an IPv4-mapped address alone is a /32", "::ffff:192.0.2.1", "192.0.2.1/32"],
  ];
  for (const [name, text, want] of rows) {
    await t.step(name, () => assert.deepEqual(lines([net(text)]), [want]));
  }
});

Deno.test("netRange() refuses a length past the family's width", () => {
  assert.throws(() => netRange(4, new Uint8Array(4), 33), RangeError);
  assert.throws(() => netRange(6, new Uint8Array(4), 24), RangeError);
});

Deno.test("union() merges duplicates, overlaps and neighbours; toCidrs() the fewest blocks", async (t) => {
  const rows: Array<[string, string[], string[]]> = [
    ["nothing", [], []],
    ["a duplicate", ["192.0.2.0/24", "192.0.2.0/24"], ["192.0.2.0/24"]],
    ["a network inside another", ["192.0.2.0/24", "192.0.2.64/26"], ["192.0.2.0/24"]],
    ["an address inside a network", ["192.0.2.9", "192.0.2.0/28"], ["192.0.2.0/28"]],
    ["two halves make the whole", ["192.0.2.128/25", "192.0.2.0/25"], ["192.0.2.0/24"]],
    ["four quarters", ["10.0.0.0/10", "10.64.0.0/10", "10.128.0.0/10", "10.192.0.0/10"], [
      "10.0.0.0/8",
    ]],
    [
      "neighbours that make no CIDR stay two blocks",
      ["192.0.2.64/26", "192.0.2.128/26"],
      ["192.0.2.64/26", "192.0.2.128/26"],
    ],
    ["addresses in a row", ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.0"], [
      "192.0.2.0/30",
    ]],
    [
      "a run of 3 is a /31 and a /32",
      ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
      ["192.0.2.1/32", "192.0.2.2/31"],
    ],
    [
      "IPv4 before IPv6, each in address order",
      ["2001:db8::/32", "198.51.100.0/24", "2001:db8::/48", "192.0.2.0/24"],
      ["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32"],
    ],
    [
      "IPv6 halves",
      ["2001:db8:8000::/33", "2001:db8::/33"],
      ["2001:db8::/32"],
    ],
    [
      "the families never merge",
      ["0.0.0.0/0", "::/1"],
      ["0.0.0.0/0", "::/1"],
    ],
    [
      "the top of the IPv6 space",
      [
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/127",
      ],
      ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/126"],
    ],
  ];
  for (const [name, input, want] of rows) {
    await t.step(name, () => assert.deepEqual(lines(union(input.map(net))), want));
  }
});

Deno.test("subtract() takes addresses out, splitting networks into the fewest blocks", async (t) => {
  const rows: Array<[string, string[], string[], string[]]> = [
    ["nothing taken", ["192.0.2.0/24"], [], ["192.0.2.0/24"]],
    ["all taken", ["192.0.2.0/24"], ["192.0.2.0/23"], []],
    ["another family takes nothing", ["192.0.2.0/24"], ["::/0"], ["192.0.2.0/24"]],
    ["a disjoint network takes nothing", ["192.0.2.0/24"], ["198.51.100.0/24"], [
      "192.0.2.0/24",
    ]],
    ["the first half taken", ["192.0.2.0/24"], ["192.0.2.0/25"], ["192.0.2.128/25"]],
    ["one address out of a /30", ["192.0.2.0/30"], ["192.0.2.1"], [
      "192.0.2.0/32",
      "192.0.2.2/31",
    ]],
    ["a hole in the middle", ["192.0.2.0/24"], ["192.0.2.64/26"], [
      "192.0.2.0/26",
      "192.0.2.128/25",
    ]],
    ["two holes", ["10.0.0.0/8"], ["10.0.0.0/9", "10.192.0.0/10"], ["10.128.0.0/10"]],
    ["an IPv6 hole", ["2001:db8::/32"], ["2001:db8::/33"], ["2001:db8:8000::/33"]],
  ];
  for (const [name, from, minus, want] of rows) {
    await t.step(
      name,
      () => assert.deepEqual(lines(subtract(from.map(net), minus.map(net))), want),
    );
  }
});

Deno.test("coversAll() tells a family's whole space, however it is made", async (t) => {
  await t.step("0.0.0.0/0", () => assert.equal(coversAll([net("0.0.0.0/0")], 4), true));
  await t.step("two /1s", () => {
    assert.equal(coversAll([net("128.0.0.0/1"), net("0.0.0.0/1")], 4), true);
  });
  await t.step("one /1", () => assert.equal(coversAll([net("0.0.0.0/1")], 4), false));
  await t.step("the other family", () => assert.equal(coversAll([everything(6)], 4), false));
  await t.step("::/0", () => assert.equal(coversAll([everything(6)], 6), true));
});

Deno.test("toCidrs() writes a block of IPv4-mapped space as its IPv4 block", () => {
  // ::/80 less ::fffe:0:0/96 leaves ::ffff:0:0/96 as one of its blocks: all of IPv4.
  const got = lines(subtract([net("::/80")], [net("::fffe:0:0/96")]));
  assert.ok(got.includes("0.0.0.0/0"), got.join(" "));
  assert.ok(!got.some((l) => l.startsWith("::ffff:")), got.join(" "));
});
