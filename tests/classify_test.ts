import assert from "node:assert/strict";
import {
  BUILTIN_PATTERNS,
  classify,
  hasIpDigits,
  hostLabels,
  parsePatterns,
  type Tier,
} from "../src/classify.ts";
import { type Ip, parseIp } from "../src/ip.ts";
import { assertUsageError } from "./fixtures/assert.ts";

const builtin = parsePatterns(BUILTIN_PATTERNS);

function ip(text: string): Ip {
  const parsed = parseIp(text);
  if (!parsed) throw new Error(`bad test address ${text}`);
  return parsed;
}

/** The address used where the name should not hold the client's digits. */
const OTHER_IP = "198.51.100.77";

Deno.test("classify() sorts real-looking names into tiers with the built-in patterns", async (t) => {
  const rows: { name: string | undefined; ip?: string; want: Tier; why: string }[] = [
    // noptr
    { name: undefined, want: "noptr", why: "no name" },
    { name: "", want: "noptr", why: "an empty name" },
    // ptr: ordinary server names
    { name: "mx1.example.com", want: "ptr", why: "a mail server name" },
    { name: "mail.example.co.uk", want: "ptr", why: "a server under co.uk" },
    { name: "example.com", want: "ptr", why: "a bare registered domain" },
    { name: "localhost", want: "ptr", why: "a single label" },
    { name: "mail.dyn.com", want: "ptr", why: "dyn is the registered domain, not a host label" },
    { name: "mail.dsl.co.uk", want: "ptr", why: "dsl.co.uk is the registered domain" },
    { name: "smtp.pool.com.au", want: "ptr", why: "pool.com.au is the registered domain" },
    { name: "dynamo.example.com", want: "ptr", why: "dyn inside a word is no token" },
    { name: "smtp.poolside.example.com", want: "ptr", why: "pool inside a word" },
    { name: "cablevision-mx.example.net", want: "ptr", why: "cable inside a word" },
    { name: "customerservice.example.com", want: "ptr", why: "customer inside a word" },
    { name: "dhcpd.example.org", want: "ptr", why: "dhcp inside a word" },
    { name: "mail.example.com.", want: "ptr", why: "a trailing dot" },
    { name: "MX1.EXAMPLE.COM", want: "ptr", why: "uppercase" },
    { name: "mail-wr1-f54.google.com", ip: "209.85.221.54", want: "ptr", why: "a big provider" },
    {
      name: "mail-db8eur05on2100.outbound.protection.outlook.com",
      ip: "40.107.1.100",
      want: "ptr",
      why: "digits without separators",
    },
    { name: "mx-2.example.com", ip: "192.0.2.10", want: "ptr", why: "one IP number alone" },
    {
      name: "host-2-10.example.co.uk",
      ip: "192.0.2.10",
      want: "ptr",
      why: "two numbers are not enough",
    },
    { name: "c000020a.example.net", ip: "192.0.2.11", want: "ptr", why: "not this IP in hex" },
    { name: "mx12-10.example.com", ip: "192.0.2.10", want: "ptr", why: "12 is not 2" },
    // dynamic: access-network words
    { name: "1-2-3-4.dsl.example.net", want: "dynamic", why: "dsl and numbers" },
    { name: "dsl.example.net", want: "dynamic", why: "dsl as the only host label" },
    { name: "adsl-pool.example.net", want: "dynamic", why: "adsl" },
    { name: "host.vdsl.example.de", want: "dynamic", why: "vdsl" },
    { name: "pppoe.example.net", want: "dynamic", why: "pppoe" },
    { name: "dialup12.example.net", want: "dynamic", why: "dialup" },
    { name: "dialin.example.net", want: "dynamic", why: "dialin" },
    { name: "dial.example.net", want: "dynamic", why: "dial" },
    { name: "dyn-12.example.net", want: "dynamic", why: "dyn" },
    { name: "dynamic.example.net", want: "dynamic", why: "dynamic" },
    { name: "host_dynip.example.net", want: "dynamic", why: "dynip after an underscore" },
    { name: "dhcp-12.example.net", want: "dynamic", why: "dhcp" },
    { name: "pool.example.net", want: "dynamic", why: "pool" },
    { name: "x.cable.example.com", want: "dynamic", why: "cable" },
    { name: "cpe.example.net", want: "dynamic", why: "cpe" },
    { name: "broadband.example.com", want: "dynamic", why: "broadband" },
    { name: "cust12.example.com", want: "dynamic", why: "cust" },
    { name: "customer.example.com", want: "dynamic", why: "customer" },
    { name: "residential.example.net", want: "dynamic", why: "residential" },
    { name: "host.dsl.example.ne.jp", want: "dynamic", why: "dsl under ne.jp" },
    { name: "DIALUP-7.EXAMPLE.NET", want: "dynamic", why: "uppercase" },
    { name: "1-2-3-4.dsl.example.net.", want: "dynamic", why: "a trailing dot" },
    // dynamic: numbers
    {
      name: "c-73-92-1-2.hsd1.ca.comcast.net",
      ip: "73.92.1.2",
      want: "dynamic",
      why: "a cable customer",
    },
    {
      name: "pool-98-76-54-32.nycmny.fios.verizon.net",
      ip: "98.76.54.32",
      want: "dynamic",
      why: "pool and numbers",
    },
    { name: "cpe-98-76-54-32.nyc.res.rr.com", ip: "98.76.54.32", want: "dynamic", why: "cpe" },
    { name: "203-0-113-7.example.net", want: "dynamic", why: "three numbers in a row" },
    { name: "7.113.0.203.example.net", want: "dynamic", why: "a reversed dotted address" },
    { name: "static_1_2_3.example.net", want: "dynamic", why: "numbers joined by underscores" },
    { name: "3221225994.example.net", want: "dynamic", why: "the address as one decimal" },
    // dynamic: this client's own digits
    { name: "host-0-2-10.example.co.uk", ip: "192.0.2.10", want: "dynamic", why: "IP digits" },
    { name: "host-10-2-0.example.com", ip: "192.0.2.10", want: "dynamic", why: "in reverse order" },
    { name: "h0x2x10.example.com", ip: "192.0.2.10", want: "dynamic", why: "joined by x" },
    { name: "10.2.0.example.com", ip: "192.0.2.10", want: "dynamic", why: "joined by a dot" },
    { name: "c000020a.example.net", ip: "192.0.2.10", want: "dynamic", why: "the IP in hex" },
    { name: "C000020A.EXAMPLE.NET", ip: "192.0.2.10", want: "dynamic", why: "hex in uppercase" },
    {
      name: "x-c000020a.example.net",
      ip: "192.0.2.10",
      want: "dynamic",
      why: "hex after a dash",
    },
    {
      name: "ip-0x2x10.example.com",
      ip: "::ffff:192.0.2.10",
      want: "dynamic",
      why: "an IPv4-mapped client",
    },
  ];
  for (const row of rows) {
    const address = row.ip ?? OTHER_IP;
    await t.step(`${JSON.stringify(row.name)} from ${address}: ${row.want} (${row.why})`, () => {
      const got = classify(row.name, ip(address), builtin);
      assert.equal(
        got,
        row.want,
        `classify(${JSON.stringify(row.name)}): got ${got}, want ${row.want}`,
      );
    });
  }
});

// Once a bug: the pattern read `pppoe?`, which needs "pppo", so plain ppp0 never matched.
Deno.test("classify() finds the ppp token of dial-up names", async (t) => {
  const rows = ["ppp0.example.net", "PPP0.EXAMPLE.NET", "ppp.example.net", "host.ppp.example.de"];
  for (const name of rows) {
    await t.step({
      name,
      fn() {
        const got = classify(name, ip(OTHER_IP), builtin);
        assert.equal(got, "dynamic", `classify(${JSON.stringify(name)}): got ${got}, want dynamic`);
      },
    });
  }
});

// Large senders' outbound names carry the last two numbers of their address:
// the IP-digits rule wants three, so that they stay out of the 16-second tier.
Deno.test("classify() leaves the outbound names of large mail providers in ptr", async (t) => {
  const rows: [string, string][] = [
    ["a8-30.smtp-out.amazonses.com", "54.240.8.30"],
    ["mail180-16.suw21.mandrillapp.com", "198.2.180.16"],
    ["mail132-5.atl131.mcdlv.net", "198.2.132.5"],
  ];
  for (const [name, address] of rows) {
    await t.step({
      name: `${name} from ${address}`,
      fn() {
        assert.equal(classify(name, ip(address), builtin), "ptr");
      },
    });
  }
});

Deno.test("classify() applies only the given patterns and the IP-digits rule", async (t) => {
  const custom = parsePatterns("^mx-[0-9]+$\nexample\n", "test patterns");
  const rows: { name: string; patterns: RegExp[]; ip: string; want: Tier }[] = [
    { name: "1-2-3-4.dsl.example.net", patterns: [], ip: OTHER_IP, want: "ptr" },
    { name: "host-0-2-10.example.net", patterns: [], ip: "192.0.2.10", want: "dynamic" },
    { name: "host-2-10.example.net", patterns: [], ip: "192.0.2.10", want: "ptr" },
    { name: "mx-12.example.net", patterns: custom, ip: OTHER_IP, want: "dynamic" },
    { name: "mx-12.relay.example.net", patterns: custom, ip: OTHER_IP, want: "ptr" },
    { name: "mail.example.com", patterns: custom, ip: OTHER_IP, want: "ptr" },
    { name: "example.mail.example.com", patterns: custom, ip: OTHER_IP, want: "dynamic" },
    { name: "EXAMPLE.mail.example.com", patterns: custom, ip: OTHER_IP, want: "dynamic" },
    { name: "ppp0.example.net", patterns: custom, ip: OTHER_IP, want: "ptr" },
  ];
  for (const row of rows) {
    await t.step(`${row.name} with ${row.patterns.length} patterns`, () => {
      assert.equal(classify(row.name, ip(row.ip), row.patterns), row.want);
    });
  }
});

Deno.test("classify() never finds IP digits for an IPv6 client", () => {
  const client = ip("2001:db8::2:10");
  assert.equal(hasIpDigits("host-0-2-10", client), false);
  assert.equal(classify("host-0-2-10.example.net", client, []), "ptr");
});

Deno.test("hostLabels() drops the registered domain", async (t) => {
  const rows: [string, string][] = [
    ["mail.dyn.com", "mail"],
    ["example.com", ""],
    ["com", ""],
    ["", ""],
    ["a.b.c.example.com", "a.b.c"],
    ["1-2-3-4.dsl.example.co.uk", "1-2-3-4.dsl"],
    ["host.example.co.uk", "host"],
    ["example.co.uk", ""],
    ["host.example.com.au", "host"],
    ["example.com.au", ""],
    ["host.example.ne.jp", "host"],
    ["host.example.org.br", "host"],
    ["host.example.de", "host"],
    ["host.sub.example.de", "host.sub"],
    ["host.example.me.uk", "host.example"],
    ["host.example.co", "host"],
    ["host.co.com", "host"],
    ["Mail.Example.COM", "mail"],
    ["mail.example.com.", "mail"],
    ["mail.example.co.uk.", "mail"],
  ];
  for (const [name, want] of rows) {
    await t.step(JSON.stringify(name), () => {
      assert.equal(hostLabels(name), want);
    });
  }
});

Deno.test("hasIpDigits() looks for the last three numbers or the whole address", async (t) => {
  const rows: [string, string, boolean][] = [
    ["host-0-2-10", "192.0.2.10", true],
    ["0-2-10", "192.0.2.10", true],
    ["10_2_0", "192.0.2.10", true],
    ["a0.2.10b", "192.0.2.10", true],
    ["0x2x10", "192.0.2.10", true],
    ["192-0-2-10", "192.0.2.10", true],
    ["2-10", "192.0.2.10", false],
    ["host-2-10", "192.0.2.10", false],
    ["a8-30", "54.240.8.30", false],
    ["0-2-100", "192.0.2.10", false],
    ["0-12-10", "192.0.2.10", false],
    ["0-2--10", "192.0.2.10", false],
    ["0-2-11", "192.0.2.10", false],
    ["2-0-10", "192.0.2.10", false],
    ["192000002010", "192.0.2.10", true],
    ["x192000002010x", "192.0.2.10", true],
    ["1192000002010", "192.0.2.10", false],
    ["c000020a", "192.0.2.10", true],
    ["ac000020a", "192.0.2.10", false],
    ["c000020a0", "192.0.2.10", false],
    ["1-0-0", "10.1.0.0", true],
    ["", "192.0.2.10", false],
  ];
  for (const [labels, address, want] of rows) {
    await t.step(`${JSON.stringify(labels)} for ${address}`, () => {
      assert.equal(hasIpDigits(labels, ip(address)), want);
    });
  }
});

Deno.test("parsePatterns() reads one case-insensitive regex per line", async (t) => {
  const rows: { name: string; text: string; want: string[] }[] = [
    { name: "empty text", text: "", want: [] },
    { name: "comments and blank lines", text: "# a\n\n   \n#b\ndsl\n", want: ["dsl"] },
    { name: "an indented comment", text: "  # c\npool", want: ["pool"] },
    { name: "CRLF line ends", text: "dsl\r\nppp\r\n", want: ["dsl", "ppp"] },
    { name: "spaces around a pattern are trimmed", text: "  dsl  \n", want: ["dsl"] },
    { name: "no final newline", text: "a\nb", want: ["a", "b"] },
    { name: "a # inside a pattern is kept", text: "a#b\n", want: ["a#b"] },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const got = parsePatterns(row.text, "test");
      assert.deepEqual(got.map((p) => p.source), row.want);
      for (const p of got) assert.equal(p.flags, "i", `flags of /${p.source}/`);
    });
  }
});

Deno.test("parsePatterns() names the line of a bad regex", async (t) => {
  const rows: { text: string; source?: string; parts: string[] }[] = [
    { text: "(", parts: ["built-in patterns", "line 1", '"("'] },
    { text: "dsl\n# comment\n\n[a-", parts: ["line 4", '"[a-"'] },
    { text: "ok\r\n*bad\r\n", parts: ["line 2", '"*bad"'] },
    { text: "a\n(?<x\n", source: 'Pattern file "/etc/p"', parts: ['Pattern file "/etc/p" line 2'] },
  ];
  for (const row of rows) {
    await t.step(JSON.stringify(row.text), () => {
      assertUsageError(
        () => parsePatterns(row.text, ...(row.source === undefined ? [] : [row.source])),
        ...row.parts,
      );
    });
  }
});

Deno.test("BUILTIN_PATTERNS parse, one regex per non-comment line", () => {
  const lines = BUILTIN_PATTERNS.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
  assert.equal(builtin.length, lines.length);
  assert.ok(builtin.length >= 10, `got ${builtin.length} patterns, want the whole list`);
});
