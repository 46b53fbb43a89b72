import assert from "node:assert/strict";
import { type Allowlist, allowsIp, allowsName, parseAllowlist } from "../src/allow.ts";
import { UsageError } from "../src/usage_error.ts";
import { formatIp, parseIp } from "../src/ip.ts";
import { assertUsageError } from "./fixtures/assert.ts";

/** The allowlist as plain text: networks as `ADDRESS/BITS`, then the suffixes. */
function plain(list: Allowlist): { nets: string[]; suffixes: string[] } {
  return {
    nets: list.nets.map((n) => `${formatIp(n.ip)}/${n.bits}`),
    suffixes: [...list.suffixes],
  };
}

function ip(text: string) {
  const parsed = parseIp(text);
  assert.ok(parsed, `parseIp(${JSON.stringify(text)}) failed`);
  return parsed;
}

Deno.test("parseAllowlist() reads addresses, CIDRs and names, skipping comments", async (t) => {
  const rows: { name: string; text: string; nets?: string[]; suffixes?: string[] }[] = [
    { name: "empty", text: "" },
    { name: "only blank lines and comments", text: "\n  \n# a comment\n\t# another\n\n" },
    { name: "an IPv4 CIDR", text: "192.0.2.0/24", nets: ["192.0.2.0/24"] },
    { name: "an IPv6 CIDR", text: "2001:db8::/32", nets: ["2001:db8:0:0:0:0:0:0/32"] },
    { name: "a bare IPv4 address is a /32", text: "198.51.100.7", nets: ["198.51.100.7/32"] },
    {
      name: "a bare IPv6 address is a /128",
      text: "2001:db8::7",
      nets: ["2001:db8:0:0:0:0:0:7/128"],
    },
    { name: "/0", text: "0.0.0.0/0\n::/0", nets: ["0.0.0.0/0", "0:0:0:0:0:0:0:0/0"] },
    {
      name: "/32 and /128 written out",
      text: "192.0.2.1/32\n::1/128",
      nets: ["192.0.2.1/32", "0:0:0:0:0:0:0:1/128"],
    },
    { name: "leading zeros in the prefix", text: "10.0.0.0/008", nets: ["10.0.0.0/8"] },
    {
      name: "host bits set are kept (the mask ignores them)",
      text: "192.0.2.77/24",
      nets: ["192.0.2.77/24"],
    },
    { name: "IPv6 in capitals", text: "2001:DB8:AB::/48", nets: ["2001:db8:ab:0:0:0:0:0/48"] },
    { name: "IPv4-mapped IPv6 is IPv4", text: "::ffff:192.0.2.1", nets: ["192.0.2.1/32"] },
    { name: "a name", text: "example.net", suffixes: ["example.net"] },
    { name: "a name with a leading dot", text: ".example.net", suffixes: ["example.net"] },
    { name: "a name with a trailing dot", text: "example.net.", suffixes: ["example.net"] },
    { name: "a name in capitals", text: "Mail.Example.NET", suffixes: ["mail.example.net"] },
    { name: "a one-label name", text: "localdomain", suffixes: ["localdomain"] },
    {
      name: "hyphens and underscores",
      text: "mx-1.my_site.example",
      suffixes: ["mx-1.my_site.example"],
    },
    { name: "a comment after an entry", text: "192.0.2.0/24 # the office", nets: ["192.0.2.0/24"] },
    {
      name: "a comment right after a name",
      text: "example.net#partner",
      suffixes: ["example.net"],
    },
    {
      name: "spaces and tabs around",
      text: "  \t192.0.2.0/24\t \n   example.org  ",
      nets: ["192.0.2.0/24"],
      suffixes: ["example.org"],
    },
    {
      name: "CRLF line ends",
      text: "192.0.2.0/24\r\nexample.org\r\n",
      nets: ["192.0.2.0/24"],
      suffixes: ["example.org"],
    },
    {
      name: "a mix, in order",
      text: "# partners\n192.0.2.0/24\n.example.net\n\n2001:db8::/32\nexample.org\n10.1.2.3\n",
      nets: ["192.0.2.0/24", "2001:db8:0:0:0:0:0:0/32", "10.1.2.3/32"],
      suffixes: ["example.net", "example.org"],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const got = plain(parseAllowlist(row.text, 'Allowlist "test"'));
      assert.deepEqual(got, { nets: row.nets ?? [], suffixes: row.suffixes ?? [] });
    });
  }
});

Deno.test("parseAllowlist() rejects a bad line, naming the source and the line number", async (t) => {
  const rows: { text: string; line: number; shown: string }[] = [
    { text: "1.2.3.4/33", line: 1, shown: "1.2.3.4/33" },
    { text: "2001:db8::/129", line: 1, shown: "2001:db8::/129" },
    { text: "a b", line: 1, shown: "a b" },
    { text: "1.2.3.4/8/1", line: 1, shown: "1.2.3.4/8/1" },
    { text: "*.example.com", line: 1, shown: "*.example.com" },
    { text: "1.2.3.4/", line: 1, shown: "1.2.3.4/" },
    { text: "1.2.3.4/-1", line: 1, shown: "1.2.3.4/-1" },
    { text: "1.2.3.4/8.0", line: 1, shown: "1.2.3.4/8.0" },
    { text: "1.2.3.4/1000", line: 1, shown: "1.2.3.4/1000" },
    { text: "256.1.1.1/8", line: 1, shown: "256.1.1.1/8" },
    { text: "::ffff:192.0.2.0/120", line: 1, shown: "::ffff:192.0.2.0/120" },
    { text: "example.net/24", line: 1, shown: "example.net/24" },
    { text: "/24", line: 1, shown: "/24" },
    { text: ".", line: 1, shown: "." },
    { text: "..example.net", line: 1, shown: "..example.net" },
    { text: "mail..example.net", line: 1, shown: "mail..example.net" },
    { text: "exämple.net", line: 1, shown: "exämple.net" },
    { text: "192.0.2.0/24 extra", line: 1, shown: "192.0.2.0/24 extra" },
    {
      text: "# ok\n\n192.0.2.0/24\nexample.net\n1.2.3.4/33 # oops\n",
      line: 5,
      shown: "1.2.3.4/33 # oops",
    },
    { text: "example.net\r\n\r\na b\r\n", line: 3, shown: "a b" },
  ];
  for (const row of rows) {
    await t.step(`${JSON.stringify(row.text)}: line ${row.line}`, () => {
      assertUsageError(
        () => parseAllowlist(row.text, `Allowlist "/etc/allow"`),
        `Allowlist "/etc/allow"`,
        `line ${row.line} `,
        `"${row.shown}"`,
      );
    });
  }
});

// tcprules writes a network as `192.0.2.` (a prefix with a trailing dot). In the
// allowlist that text is accepted as an rDNS suffix, so the admin's network
// silently allows nobody. No top-level domain is all digits: such a line is a
// mistake and should be refused like any other bad line.
Deno.test({
  name: "parseAllowlist() refuses a tcprules-style prefix rather than read it as a name",
  fn: async (t) => {
    for (const text of ["192.0.2.", "10.1", "192.0.2"]) {
      await t.step(text, () => {
        assert.throws(() => parseAllowlist(text, "Allowlist"), UsageError);
      });
    }
  },
});

Deno.test("allowsIp() matches a network up to its prefix length, bit by bit", async (t) => {
  const rows: [string, string, boolean][] = [
    ["0.0.0.0/0", "0.0.0.0", true],
    ["0.0.0.0/0", "255.255.255.255", true],
    ["0.0.0.0/0", "192.0.2.1", true],
    ["128.0.0.0/1", "255.0.0.1", true],
    ["128.0.0.0/1", "127.255.255.255", false],
    ["10.0.0.0/7", "10.0.0.0", true],
    ["10.0.0.0/7", "11.255.255.255", true],
    ["10.0.0.0/7", "9.255.255.255", false],
    ["10.0.0.0/7", "12.0.0.0", false],
    ["10.0.0.0/8", "10.0.0.0", true],
    ["10.0.0.0/8", "10.255.255.255", true],
    ["10.0.0.0/8", "9.255.255.255", false],
    ["10.0.0.0/8", "11.0.0.0", false],
    ["10.128.0.0/9", "10.128.0.0", true],
    ["10.128.0.0/9", "10.255.255.255", true],
    ["10.128.0.0/9", "10.127.255.255", false],
    ["10.128.0.0/9", "11.128.0.0", false],
    ["192.0.2.0/24", "192.0.2.0", true],
    ["192.0.2.0/24", "192.0.2.255", true],
    ["192.0.2.0/24", "192.0.1.255", false],
    ["192.0.2.0/24", "192.0.3.0", false],
    ["192.0.2.77/24", "192.0.2.1", true],
    ["192.0.2.0/25", "192.0.2.127", true],
    ["192.0.2.0/25", "192.0.2.128", false],
    ["192.0.2.7/31", "192.0.2.6", true],
    ["192.0.2.7/31", "192.0.2.8", false],
    ["192.0.2.7/32", "192.0.2.7", true],
    ["192.0.2.7/32", "192.0.2.6", false],
    ["192.0.2.7/32", "192.0.2.8", false],
    ["198.51.100.7", "198.51.100.7", true],
    ["198.51.100.7", "198.51.100.6", false],
    ["198.51.100.7", "::ffff:198.51.100.7", true],
    ["::/0", "::", true],
    ["::/0", "2001:db8::1", true],
    ["::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true],
    ["2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true],
    ["2001:db8::/32", "2001:db9::", false],
    ["2001:db8::/33", "2001:db8:7fff::1", true],
    ["2001:db8::/33", "2001:db8:8000::", false],
    ["2001:db8:0:1::/64", "2001:db8:0:1::", true],
    ["2001:db8:0:1::/64", "2001:db8:0:1:ffff:ffff:ffff:ffff", true],
    ["2001:db8:0:1::/64", "2001:db8:0:2::", false],
    ["2001:db8:0:1::/64", "2001:db8:0:0:ffff:ffff:ffff:ffff", false],
    ["2001:db8:0:1::/63", "2001:db8:0:0::1", true],
    ["2001:db8:0:1::/65", "2001:db8:0:1:7fff::", true],
    ["2001:db8:0:1::/65", "2001:db8:0:1:8000::", false],
    ["2001:db8::5/128", "2001:db8::5", true],
    ["2001:db8::5/128", "2001:db8::4", false],
    ["2001:db8::5/128", "2001:db8::6", false],
    ["2001:db8::5", "2001:db8::5", true],
    ["2001:db8::5", "2001:db8::5:0", false],
    // Families never mix, not even at /0 or where the bytes agree.
    ["0.0.0.0/0", "::", false],
    ["0.0.0.0/0", "2001:db8::1", false],
    ["::/0", "192.0.2.1", false],
    ["::/0", "::ffff:192.0.2.1", false],
    ["10.0.0.0/8", "a00::", false],
    ["a00::/8", "10.0.0.1", false],
    ["::c000:201/128", "192.0.2.1", false],
  ];
  for (const [net, address, want] of rows) {
    await t.step(`${net} ${want ? "has" : "has not"} ${address}`, () => {
      const list = parseAllowlist(net, "test");
      const got = allowsIp(list, ip(address));
      assert.equal(got, want, `allowsIp(${net}, ${address}): got ${got}, want ${want}`);
    });
  }
});

Deno.test("allowsIp() matches any of the networks, and nothing when there is none", async (t) => {
  const list = parseAllowlist("192.0.2.0/24\n2001:db8::/32\nexample.net\n", "test");
  const rows: [string, boolean][] = [
    ["192.0.2.1", true],
    ["2001:db8::1", true],
    ["198.51.100.1", false],
    ["2001:db9::1", false],
  ];
  for (const [address, want] of rows) {
    await t.step(address, () => {
      assert.equal(allowsIp(list, ip(address)), want);
    });
  }
  await t.step("an empty list", () => {
    const NOBODY: Allowlist = { nets: [], suffixes: [] };
    assert.equal(allowsIp(NOBODY, ip("0.0.0.0")), false);
    assert.equal(allowsIp(parseAllowlist("example.net", "test"), ip("192.0.2.1")), false);
  });
});

Deno.test("allowsName() matches the suffix itself and names under it, on a label boundary", async (t) => {
  const rows: [string, string | undefined, boolean][] = [
    ["example.net", "example.net", true],
    ["example.net", "mail.example.net", true],
    ["example.net", "a.b.c.example.net", true],
    ["example.net", "badexample.net", false],
    ["example.net", "example.net.evil.org", false],
    ["example.net", "example.network", false],
    ["example.net", "xample.net", false],
    ["example.net", "net", false],
    ["example.net", "MAIL.Example.NET", true],
    ["example.net", "mail.example.net.", true],
    ["example.net", "example.net.", true],
    ["example.net", "", false],
    ["example.net", undefined, false],
    [".example.net", "example.net", true],
    [".example.net", "mail.example.net", true],
    [".example.net", "badexample.net", false],
    ["Example.NET.", "mail.example.net", true],
    ["mail.example.net", "example.net", false],
    ["mail.example.net", "mail.example.net", true],
    ["mail.example.net", "smtp.mail.example.net", true],
    ["mail.example.net", "gmail.example.net", false],
  ];
  for (const [entry, name, want] of rows) {
    await t.step(`${entry} ${want ? "allows" : "does not allow"} ${JSON.stringify(name)}`, () => {
      const got = allowsName(parseAllowlist(entry, "test"), name);
      assert.equal(got, want, `allowsName(${entry}, ${name}): got ${got}, want ${want}`);
    });
  }
  await t.step("no suffixes: nobody, even with networks", () => {
    assert.equal(allowsName({ nets: [], suffixes: [] }, "example.net"), false);
    assert.equal(allowsName(parseAllowlist("0.0.0.0/0", "test"), "example.net"), false);
  });
});
