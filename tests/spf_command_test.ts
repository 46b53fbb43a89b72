/**
 * The allowlist command's parts that need no process: its arguments, and
 * the file it prints (or the lines that say why it prints none) for domains
 * over an SPF zone in memory. The file is read back by src/allow.ts.
 */
import assert from "node:assert/strict";
import { allowsIp, parseAllowlist } from "../src/allow.ts";
import { formatIp, parseIp } from "../src/ip.ts";
import { buildAllowlist, parseAllowlistArgs } from "../src/spf/command.ts";
import { UsageError } from "../src/usage_error.ts";
import { type Zone, ZoneResolver } from "./fixtures/spf_zone.ts";

Deno.test("parseAllowlistArgs() takes spf and domains, lowercase, each once", async (t) => {
  const rows: Array<[string, string[], ReturnType<typeof parseAllowlistArgs>]> = [
    ["one domain", ["spf", "example.org"], { domains: ["example.org"] }],
    ["several, in order", ["spf", "example.org", "example.net"], {
      domains: ["example.org", "example.net"],
    }],
    ["capitals and a final dot", ["spf", "Example.ORG."], { domains: ["example.org"] }],
    ["a domain twice", ["spf", "example.org", "EXAMPLE.org"], { domains: ["example.org"] }],
    ["--help", ["--help"], "help"],
    ["--version", ["--version", "spf"], "help"],
  ];
  for (const [name, args, want] of rows) {
    await t.step(name, () => assert.deepEqual(parseAllowlistArgs(args), want));
  }
});

Deno.test("parseAllowlistArgs() refuses what it cannot expand", async (t) => {
  const rows: Array<[string, string[], string]> = [
    ["nothing", [], "no list (usage: smtp-delay allowlist spf DOMAIN ...)"],
    [
      "another list",
      ["dnswl", "example.org"],
      'unknown list "dnswl" (usage: smtp-delay allowlist spf DOMAIN ...)',
    ],
    ["no domain", ["spf"], "no DOMAIN (usage: smtp-delay allowlist spf DOMAIN ...)"],
    ["one label", ["spf", "localhost"], 'not a domain: "localhost"'],
    ["a macro", ["spf", "%{d}.example.org"], 'not a domain: "%{d}.example.org"'],
    ["a CIDR", ["spf", "192.0.2.0/24"], 'not a domain: "192.0.2.0/24"'],
    ["an address", ["spf", "192.0.2.1"], 'not a domain: "192.0.2.1"'],
    ["odd characters", ["spf", "exa!mple.org"], 'not a domain: "exa!mple.org"'],
    ["an option", ["-x", "spf", "example.org"], 'unknown option "-x"'],
  ];
  for (const [name, args, want] of rows) {
    await t.step(name, () => {
      assert.throws(() => parseAllowlistArgs(args), (e: unknown) => {
        assert.ok(e instanceof UsageError, String(e));
        assert.match(e.message, new RegExp(`^${want.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}`));
        return true;
      });
    });
  }
});

const spf = (text: string) => ({ txt: [text] });

/** Two domains that share a provider, with a term of each kind the file reports. */
const ZONE: Zone = {
  "example.org": {
    txt: ["v=spf1 include:_spf.provider.example mx/24 ptr -all"],
    mx: ["mx.example.org"],
  },
  "mx.example.org": { a: ["192.0.2.25"], aaaa: ["2001:db8::25"] },
  "_spf.provider.example": spf(
    "v=spf1 ip4:198.51.100.0/25 ip6:2001:DB8:0:1:0:0:0:0/64 exists:%{i}._spf.provider.example ~all",
  ),
  "example.net": spf(
    "v=spf1 include:_spf.provider.example ip4:198.51.100.128/25 ip4:203.0.113.7 -all",
  ),
  "loop.example": spf("v=spf1 ip4:192.0.2.200/29 include:_l.loop.example ip4:203.0.113.0/24"),
  "_l.loop.example": spf("v=spf1 ip4:192.0.2.208/28 include:loop.example"),
};

const FILE = [
  "# smtp-delay allowlist spf example.org example.net loop.example",
  "# example.org: 4 ranges, 4 DNS lookups; not expanded: exists:%{i}._spf.provider.example ptr",
  "192.0.2.0/24",
  "198.51.100.0/25",
  "2001:db8::25/128",
  "2001:db8:0:1::/64",
  "# example.net: 2 ranges (its others listed above), 2 DNS lookups; not expanded: " +
  "exists:%{i}._spf.provider.example",
  "198.51.100.128/25",
  "203.0.113.7/32",
  "# loop.example: 0 ranges (all listed above), 2 DNS lookups; stopped at " +
  "include:loop.example in _l.loop.example: a loop: loop.example is already being expanded",
  "",
].join("\n");

Deno.test("buildAllowlist() prints a comment line and the CIDRs of each domain", async () => {
  const got = await buildAllowlist(
    ["example.org", "example.net", "loop.example"],
    new ZoneResolver(ZONE),
  );
  assert.deepEqual(got, {
    code: 0,
    text: FILE,
    warnings: [
      "unable to expand exists:%{i}._spf.provider.example in _spf.provider.example (for example.org): " +
      "exists depends on the client; nothing listed for it",
      "unable to expand ptr: ptr depends on the client's name; nothing listed for it",
      "unable to expand exists:%{i}._spf.provider.example in _spf.provider.example (for example.net): " +
      "exists depends on the client; nothing listed for it",
      "unable to expand loop.example past include:loop.example in _l.loop.example: " +
      "a loop: loop.example is already being expanded; the ranges before it are kept",
    ],
  });
});

Deno.test("src/allow.ts reads the file, and exempts exactly what was expanded", async (t) => {
  const got = await buildAllowlist(
    ["example.org", "example.net", "loop.example"],
    new ZoneResolver(ZONE),
  );
  assert.equal(got.code, 0);
  const list = parseAllowlist((got as { text: string }).text, "the SPF allowlist");
  await t.step("every CIDR line is a network", () => {
    assert.deepEqual(list.nets.map((n) => `${formatIp(n.ip)}/${n.bits}`), [
      "192.0.2.0/24",
      "198.51.100.0/25",
      "2001:db8:0:0:0:0:0:25/128",
      "2001:db8:0:1:0:0:0:0/64",
      "198.51.100.128/25",
      "203.0.113.7/32",
    ]);
    assert.deepEqual(list.suffixes, []);
  });
  const rows: Array<[string, boolean]> = [
    ["192.0.2.99", true], // example.org's mx/24
    ["198.51.100.1", true], // the provider's
    ["198.51.100.200", true], // example.net's own
    ["203.0.113.7", true],
    ["2001:db8::25", true],
    ["2001:db8:0:1:ffff::1", true],
    ["203.0.113.8", false], // after loop.example's loop: never reached
    ["2001:db8::26", false],
    ["192.0.3.1", false],
  ];
  for (const [address, want] of rows) {
    await t.step(`${address} ${want ? "is" : "is not"} exempt`, () => {
      assert.equal(allowsIp(list, parseIp(address)!), want);
    });
  }
});

Deno.test("buildAllowlist() prints nothing when a domain cannot be expanded (exit 100)", async () => {
  const zone: Zone = {
    ...ZONE,
    "none.example": { txt: ["hello"] },
    "everyone.example": spf("v=spf1 +all"),
    "nothing.example": spf("v=spf1 -all"),
  };
  const got = await buildAllowlist(
    ["none.example", "example.net", "everyone.example", "nothing.example"],
    new ZoneResolver(zone),
  );
  assert.deepEqual(got, {
    code: 100,
    fatal: [
      "unable to expand none.example: no SPF record at none.example",
      "unable to expand everyone.example: it passes every IPv4 address",
      "unable to expand nothing.example: it passes no address that can be listed",
    ],
    warnings: [
      "unable to expand exists:%{i}._spf.provider.example in _spf.provider.example (for example.net): " +
      "exists depends on the client; nothing listed for it",
    ],
  });
});

Deno.test("buildAllowlist() prints nothing when the DNS fails (exit 111), and stops there", async () => {
  const resolver = new ZoneResolver({ ...ZONE, "_spf.provider.example": { fail: true } });
  const got = await buildAllowlist(["example.net", "example.org"], resolver);
  assert.deepEqual(got, {
    code: 111,
    fatal: [
      "unable to look up TXT _spf.provider.example: 127.0.0.1:53 answered SERVFAIL (expanding example.net)",
    ],
    warnings: [],
  });
  assert.ok(!resolver.queries.includes("TXT example.org"), resolver.queries.join(", "));
});

Deno.test("buildAllowlist() keeps the failures before a DNS failure in its lines", async () => {
  const resolver = new ZoneResolver({
    "example.org": spf("v=spf1 -all"),
    "example.net": { fail: true },
  });
  assert.deepEqual(await buildAllowlist(["example.org", "example.net"], resolver), {
    code: 111,
    fatal: [
      "unable to expand example.org: it passes no address that can be listed",
      "unable to look up TXT example.net: 127.0.0.1:53 answered SERVFAIL (expanding example.net)",
    ],
    warnings: [],
  });
});

Deno.test("buildAllowlist() keeps bytes from the DNS out of the file's lines", async () => {
  const got = await buildAllowlist(
    ["example.org"],
    new ZoneResolver({
      "example.org": spf("v=spf1 ip4:192.0.2.1 include:_bad.example.org"),
      "_bad.example.org": spf("v=spf1 ip4:192.0.2.2\n0.0.0.0/0"),
    }),
  );
  assert.equal(got.code, 0);
  const text = (got as { text: string }).text;
  assert.deepEqual(text.split("\n").filter((l) => !l.startsWith("#")), ["192.0.2.1/32", ""]);
  assert.deepEqual(parseAllowlist(text, "x").nets.length, 1);
});
