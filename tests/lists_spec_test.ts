import assert from "node:assert/strict";
import { parseIp } from "../src/ip.ts";
import {
  DEFAULT_REPLY,
  isListing,
  type Lists,
  type ListSpec,
  makeLists,
  parseReply,
  parseSpec,
  parseSpecs,
  parseThreshold,
  passes,
  queryName,
  unreachable,
} from "../src/lists/spec.ts";
import { UsageError } from "../src/usage_error.ts";

/** A spec as plain data: the filter's ranges as arrays, for deepEqual. */
const plain = (spec: ListSpec) => ({
  zone: spec.zone,
  filter: spec.filter?.map((ranges) => ranges.map(([low, high]) => [low, high])),
  weight: spec.weight,
});

Deno.test("parseSpec() reads postscreen's ZONE[=FILTER][*WEIGHT]", async (t) => {
  const any = undefined;
  const rows: Array<[string, { zone: string; filter: number[][][] | undefined; weight: number }]> =
    [
      ["zen.spamhaus.org", { zone: "zen.spamhaus.org", filter: any, weight: 1 }],
      ["zen.spamhaus.org*3", { zone: "zen.spamhaus.org", filter: any, weight: 3 }],
      ["bl.spamcop.net*2", { zone: "bl.spamcop.net", filter: any, weight: 2 }],
      ["Zen.Spamhaus.ORG.", { zone: "zen.spamhaus.org", filter: any, weight: 1 }],
      ["list.dnswl.org*-5", { zone: "list.dnswl.org", filter: any, weight: -5 }],
      ["b.test=127.0.0.2", {
        zone: "b.test",
        filter: [[[127, 127]], [[0, 0]], [[0, 0]], [[2, 2]]],
        weight: 1,
      }],
      ["b.test=127.0.0.[2..11]", {
        zone: "b.test",
        filter: [[[127, 127]], [[0, 0]], [[0, 0]], [[2, 11]]],
        weight: 1,
      }],
      ["list.dnswl.org=127.0.[0..255].[1..3]*-5", {
        zone: "list.dnswl.org",
        filter: [[[127, 127]], [[0, 0]], [[0, 255]], [[1, 3]]],
        weight: -5,
      }],
      ["b.test=127.0.0.[1;3;5..7]*8", {
        zone: "b.test",
        filter: [[[127, 127]], [[0, 0]], [[0, 0]], [[1, 1], [3, 3], [5, 7]]],
        weight: 8,
      }],
      ["b.test=127.[0..1].0.[4]", {
        zone: "b.test",
        filter: [[[127, 127]], [[0, 1]], [[0, 0]], [[4, 4]]],
        weight: 1,
      }],
      ["x_y.b-c.test*1000000", { zone: "x_y.b-c.test", filter: any, weight: 1_000_000 }],
      // A DQS zone: the access key is a label of its own.
      ["k3y0123456789abcdefghij.zen.dq.spamhaus.net*2", {
        zone: "k3y0123456789abcdefghij.zen.dq.spamhaus.net",
        filter: any,
        weight: 2,
      }],
    ];
  for (const [text, want] of rows) {
    await t.step(text, () => assert.deepEqual(plain(parseSpec(text, "--dnsbl")), want));
  }
});

Deno.test("parseSpec() refuses a bad SPEC with a usage error naming it", async (t) => {
  const rows = [
    "",
    "localhost", // one label
    "bl..test",
    ".bl.test",
    "-bl.test",
    "bl-.test",
    "bl test.org",
    "bl.test/24",
    "bl.t\u00e9st",
    `${"a".repeat(64)}.test`, // a label over 63
    `${"abcdefgh.".repeat(21)}test`, // 193 characters: no room for an IPv6 query
    "bl.test*", // no weight
    "bl.test*0", // a weight that does nothing
    "bl.test*+2",
    "bl.test*1.5",
    "bl.test*2*3",
    "bl.test*1000001",
    "bl.test*-1000001",
    "bl.test*0x10",
    "bl.test=",
    "bl.test=127.0.0",
    "bl.test=127.0.0.2.1",
    "bl.test=127.0.0.256",
    "bl.test=127.0.0.02", // a leading zero
    "bl.test=127.0.0.[]",
    "bl.test=127.0.0.[2..]",
    "bl.test=127.0.0.[..2]",
    "bl.test=127.0.0.[3..2]", // backwards
    "bl.test=127.0.0.[2...3]",
    "bl.test=127.0.0.[2;;3]",
    "bl.test=127.0.0.[2..3..4]",
    "bl.test=127.0.0.[2",
    "bl.test=127.0.0.2]",
    "bl.test=127.0.0.[0..256]",
    "bl.test=127.0.0.*",
    "bl.test=::1",
    "=127.0.0.2",
    "*2",
  ];
  for (const text of rows) {
    await t.step(JSON.stringify(text), () => {
      assert.throws(
        () => parseSpec(text, "--dnsbl"),
        (e: unknown) =>
          e instanceof UsageError && e.message.startsWith("--dnsbl wants ZONE[=FILTER][*WEIGHT]") &&
          e.message.includes(JSON.stringify(text.slice(0, 100))),
      );
    });
  }
});

Deno.test("parseSpecs(): none is no list; more than 32 is refused", () => {
  assert.deepEqual(parseSpecs(["none"], "SMTPDELAY_DNSBL"), []);
  assert.deepEqual(parseSpecs([], "--dnsbl"), []);
  assert.equal(parseSpecs(["a.test", "b.test*2"], "--dnsbl").length, 2);
  assert.throws(() => parseSpecs(["none", "a.test"], "SMTPDELAY_DNSBL"), UsageError);
  const many = Array.from({ length: 33 }, (_, i) => `z${i}.test`);
  assert.throws(() => parseSpecs(many, "SMTPDELAY_DNSBL"), /names 33 lists; at most 32/);
});

Deno.test("parseThreshold(): the blocklist's from 1 up, the allowlist's from -1 down", async (t) => {
  const rows: Array<[string, 1 | -1, number | undefined]> = [
    ["1", 1, 1],
    ["3", 1, 3],
    ["1000000", 1, 1_000_000],
    ["0", 1, undefined], // every client would be refused
    ["-1", 1, undefined],
    ["1000001", 1, undefined],
    ["+2", 1, undefined],
    ["2.5", 1, undefined],
    ["", 1, undefined],
    ["-1", -1, -1],
    ["-5", -1, -5],
    ["0", -1, undefined], // every client would pass at once
    ["1", -1, undefined],
    ["-1000001", -1, undefined],
  ];
  for (const [text, sign, want] of rows) {
    await t.step(`${JSON.stringify(text)} (${sign})`, () => {
      if (want === undefined) {
        assert.throws(
          () => parseThreshold(text, sign, "--dnsbl-threshold"),
          /wants a whole number/,
        );
      } else assert.equal(parseThreshold(text, sign, "--dnsbl-threshold"), want);
    });
  }
});

Deno.test("parseReply() takes a 4xx or 5xx code and one line of printable text", async (t) => {
  assert.deepEqual(DEFAULT_REPLY.code, 421);
  const good: Array<[string, number, string]> = [
    ["421 Listed; try later", 421, "Listed; try later"],
    ["554 5.7.1 Service unavailable", 554, "5.7.1 Service unavailable"],
    ["450 x", 450, "x"],
  ];
  for (const [text, code, said] of good) {
    await t.step(
      text,
      () => assert.deepEqual(parseReply(text, "--dnsbl-reply"), { code, text: said }),
    );
  }
  const bad = [
    "",
    "421",
    "421 ",
    "421  ",
    "250 ok",
    "600 no",
    "42 short",
    "4210 long",
    "421-multi",
    "421 line\r\n250 injected",
    "421 tab\there",
    "421 caf\u00e9",
    `421 ${"x".repeat(201)}`,
  ];
  for (const text of bad) {
    await t.step(JSON.stringify(text), () => {
      assert.throws(() => parseReply(text, "--dnsbl-reply"), /wants CODE TEXT/);
    });
  }
});

Deno.test("queryName() reverses IPv4 octets and IPv6's 32 nibbles", async (t) => {
  const rows: Array<[string, string, string]> = [
    ["192.0.2.99", "zen.spamhaus.org", "99.2.0.192.zen.spamhaus.org"],
    ["127.0.0.2", "bl.test", "2.0.0.127.bl.test"],
    ["::ffff:192.0.2.1", "bl.test", "1.2.0.192.bl.test"], // mapped: asked as IPv4
    [
      "2001:db8::25",
      "bl.test",
      "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test",
    ],
    [
      "2001:DB8:ABCD:12::1",
      "zen.spamhaus.org",
      "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.1.0.0.d.c.b.a.8.b.d.0.1.0.0.2.zen.spamhaus.org",
    ],
  ];
  for (const [ip, zone, want] of rows) {
    await t.step(`${ip} ${zone}`, () => assert.equal(queryName(parseIp(ip)!, zone), want));
  }
  // The longest zone and an IPv6 query still fit in the DNS's 253 characters.
  const zone = `${"abcdefgh.".repeat(20)}testzone`;
  assert.equal(zone.length, 188);
  assert.ok(queryName(parseIp("2001:db8::1")!, zone).length <= 253);
});

Deno.test("passes(): an answer passes a filter when each octet is in one of its ranges", async (t) => {
  const filter = parseSpec("b.test=127.0.[0..255].[1;3;5..7]", "--dnsbl").filter!;
  const rows: Array<[string, boolean]> = [
    ["127.0.0.1", true],
    ["127.0.200.3", true],
    ["127.0.9.6", true],
    ["127.0.0.2", false],
    ["127.0.0.8", false],
    ["127.1.0.1", false],
    ["128.0.0.1", false],
    ["127.0.0", false],
    ["127.0.0.1.5", false],
    ["127.0.0.01", false],
    ["", false],
  ];
  for (const [address, want] of rows) {
    await t.step(address || "(empty)", () => assert.equal(passes(filter, address), want));
  }
});

Deno.test("isListing(): 127.0.0.0/8 but 127.255.255.0/24, nothing else", async (t) => {
  const rows: Array<[string, boolean]> = [
    ["127.0.0.2", true],
    ["127.0.0.11", true],
    ["127.0.1.3", true],
    ["127.255.0.1", true],
    ["127.255.255.254", false], // Spamhaus: the query came through a public resolver
    ["127.255.255.252", false],
    ["127.255.255.255", false],
    ["10.0.0.1", false], // a resolver's own page for a name that does not exist
    ["192.0.2.1", false],
    ["0.0.0.0", false],
    ["nonsense", false],
  ];
  for (const [address, want] of rows) {
    await t.step(address, () => assert.equal(isListing(address), want));
  }
});

/** Lists of these specs and thresholds. */
const listsOf = (specs: string[], block = 1, allow = -1): Lists =>
  makeLists(parseSpecs(specs, "--dnsbl"), block, allow);

Deno.test("unreachable() warns of a threshold no sum of weights reaches", async (t) => {
  const rows: Array<[string, Lists, string[]]> = [
    ["the defaults, blocklists only", listsOf(["a.test", "b.test*2"]), []],
    ["allowlists only: no blocklist threshold to reach", listsOf(["w.test*-3"], 5), []],
    ["weights that add up to the threshold", listsOf(["a.test*2", "b.test*3"], 5), []],
    ["weights short of it", listsOf(["a.test*2", "b.test"], 4), [
      "--dnsbl-threshold 4 is out of reach: the blocklists' weights add up to 3",
    ]],
    ["an allowlist short of its threshold", listsOf(["a.test", "w.test*-2"], 1, -3), [
      "--dnswl-threshold -3 is out of reach: the allowlists' weights add up to -2",
    ]],
  ];
  for (const [name, lists, want] of rows) {
    await t.step(name, () => {
      assert.deepEqual(unreachable(lists, "--dnsbl-threshold", "--dnswl-threshold"), want);
    });
  }
});
