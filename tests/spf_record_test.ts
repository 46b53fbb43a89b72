import assert from "node:assert/strict";
import { formatIp } from "../src/ip.ts";
import {
  findRecord,
  isSpf,
  type Mechanism,
  parseDomainSpec,
  parseRecord,
  type SpfRecord,
} from "../src/spf/record.ts";

/** A mechanism as short text, networks written out: `+ip 4 192.0.2.0/24`, `-a name:x.org 24/64`. */
function show(m: Mechanism): string {
  const spec = (d: { kind: "name"; name: string } | { kind: "macro"; text: string } | undefined) =>
    d === undefined ? "-" : d.kind === "name" ? `name:${d.name}` : `macro:${d.text}`;
  switch (m.kind) {
    case "all":
      return "all";
    case "include":
    case "exists":
      return `${m.kind} ${spec(m.domain)}`;
    case "ptr":
      return `ptr ${spec(m.domain)}`;
    case "a":
    case "mx":
      return `${m.kind} ${spec(m.domain)} ${m.bits[4]}/${m.bits[6]}`;
    case "ip":
      return `ip ${m.net.family} ${
        formatIp({ family: m.net.family, bytes: m.net.bytes })
      }/${m.net.bits}`;
  }
}

function terms(record: SpfRecord): string[] {
  const out = record.directives.map((d) => `${d.qualifier}${show(d.mechanism)}`);
  if (record.redirect) out.push(`redirect ${JSON.stringify(record.redirect.domain)}`);
  return out;
}

function parsed(text: string): string[] {
  const got = parseRecord(text);
  assert.equal(got.kind, "record", `${JSON.stringify(text)}: ${JSON.stringify(got)}`);
  return terms((got as { record: SpfRecord }).record);
}

Deno.test("isSpf() and findRecord() pick the SPF record among the TXT records", async (t) => {
  const spf: Array<[string, boolean]> = [
    ["v=spf1", true],
    ["v=spf1 -all", true],
    ["V=SPF1 -all", true],
    ["v=spf10 -all", false],
    ["v=spf1-all", false],
    [" v=spf1 -all", false],
    ["v=spf2.0/pra -all", false],
    ["google-site-verification=abc", false],
  ];
  for (const [text, want] of spf) {
    await t.step(
      `isSpf(${JSON.stringify(text)}) is ${want}`,
      () => assert.equal(isSpf(text), want),
    );
  }
  await t.step("none among other TXT records", () => {
    assert.deepEqual(findRecord(["verification=1", "v=spf10"]), { kind: "none" });
  });
  await t.step("no TXT record at all", () => assert.deepEqual(findRecord([]), { kind: "none" }));
  await t.step("one among others", () => {
    assert.deepEqual(findRecord(["x=1", "v=spf1 mx -all"]), {
      kind: "one",
      text: "v=spf1 mx -all",
    });
  });
  await t.step("two: a permerror (RFC 7208 4.5)", () => {
    assert.deepEqual(findRecord(["v=spf1 mx", "v=spf1 a"]), { kind: "many", count: 2 });
  });
});

Deno.test("parseDomainSpec() reads names and macros, refuses what is neither", async (t) => {
  const rows: Array<[string, unknown]> = [
    ["example.org", { kind: "name", name: "example.org" }],
    ["_spf.Example.ORG.", { kind: "name", name: "_spf.example.org" }],
    ["spf-1.mail.example.co.uk", { kind: "name", name: "spf-1.mail.example.co.uk" }],
    ["%{i}._spf.example.org", { kind: "macro", text: "%{i}._spf.example.org" }],
    ["%{ir}.%{v}._spf.%{d2}", { kind: "macro", text: "%{ir}.%{v}._spf.%{d2}" }],
    ["%{l1r-}.example.org", { kind: "macro", text: "%{l1r-}.example.org" }],
    ["a%%b.example.org", { kind: "macro", text: "a%%b.example.org" }],
    ["%{d}: a macro ends a domain-spec alone", { kind: "macro", text: "%{d}" }],
    ["_spf.%{d2}", { kind: "macro", text: "_spf.%{d2}" }],
    ["localhost", undefined], // one label: no domain-end
    ["example.123", undefined], // a top label of digits
    ["example..org", undefined],
    [".example.org", undefined],
    ["example.org-", undefined],
    ["%{x}.example.org", undefined], // no such macro letter
    ["%{d}.", undefined], // a macro-expand ends it, or a top label does
    ["%{c}.example.org", undefined], // c, r, t only in exp=
    ["%i.example.org", undefined],
    ["a%.example.org", undefined],
    [`${"a".repeat(64)}.example.org`, undefined],
    [`${"a.".repeat(126)}org`, undefined], // 254 characters
  ];
  for (const [row, want] of rows) {
    const text = row.split(": ")[0]!;
    await t.step(row, () => assert.deepEqual(parseDomainSpec(text), want));
  }
});

Deno.test("parseRecord() reads mechanisms, qualifiers and CIDR lengths", async (t) => {
  const rows: Array<[string, string, string[]]> = [
    ["no term", "v=spf1", []],
    ["spaces around and between", "v=spf1   mx    -all  ", ["+mx - 32/128", "-all"]],
    ["qualifiers", "v=spf1 +a -a ~a ?a", [
      "+a - 32/128",
      "-a - 32/128",
      "~a - 32/128",
      "?a - 32/128",
    ]],
    ["names in any case", "v=spf1 MX Include:_SPF.Example.ORG -ALL", [
      "+mx - 32/128",
      "+include name:_spf.example.org",
      "-all",
    ]],
    ["ip4 and ip6", "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.7 ip6:2001:db8::/32 ip6:2001:db8::1", [
      "+ip 4 192.0.2.0/24",
      "+ip 4 198.51.100.7/32",
      "+ip 6 2001:db8:0:0:0:0:0:0/32",
      "+ip 6 2001:db8:0:0:0:0:0:1/128",
    ]],
    ["host bits kept as written", "v=spf1 ip4:192.0.2.77/24", ["+ip 4 192.0.2.77/24"]],
    ["ip4:/0 and ip6:/0", "v=spf1 ip4:0.0.0.0/0 ip6:::/0", [
      "+ip 4 0.0.0.0/0",
      "+ip 6 0:0:0:0:0:0:0:0/0",
    ]],
    ["an IPv4-mapped ip6", "v=spf1 ip6:::ffff:192.0.2.0/120", [
      "+ip 6 0:0:0:0:0:ffff:c000:200/120",
    ]],
    ["a and mx with CIDR lengths", "v=spf1 a/24 a//64 a/24//64 mx/0 mx//0", [
      "+a - 24/128",
      "+a - 32/64",
      "+a - 24/64",
      "+mx - 0/128",
      "+mx - 32/0",
    ]],
    ["a and mx with a domain and lengths", "v=spf1 a:mail.example.org/28 mx:example.net/24//64", [
      "+a name:mail.example.org 28/128",
      "+mx name:example.net 24/64",
    ]],
    ["a slash inside a macro is not a length", "v=spf1 a:%{l/}.example.org/24", [
      "+a macro:%{l/}.example.org 24/128",
    ]],
    ["ptr, with and without a domain", "v=spf1 ptr ?ptr:example.org", [
      "+ptr -",
      "?ptr name:example.org",
    ]],
    ["exists", "v=spf1 exists:%{i}._spf.example.org", ["+exists macro:%{i}._spf.example.org"]],
    ["redirect", "v=spf1 redirect=_spf.example.org", [
      'redirect {"kind":"name","name":"_spf.example.org"}',
    ]],
    ["redirect before the mechanisms", "v=spf1 redirect=_spf.example.org mx", [
      "+mx - 32/128",
      'redirect {"kind":"name","name":"_spf.example.org"}',
    ]],
    [
      "exp and unknown modifiers are ignored",
      "v=spf1 exp=explain.example.org foo=bar x.y=%{i} mx",
      [
        "+mx - 32/128",
      ],
    ],
    ["a modifier that looks like a mechanism's name", "v=spf1 a=b", []],
    ["an unknown modifier may hold exp='s macros", "v=spf1 foo=%{c}%{r}%{t} mx", ["+mx - 32/128"]],
  ];
  for (const [name, text, want] of rows) {
    await t.step(name, () => assert.deepEqual(parsed(text), want));
  }
});

Deno.test("parseRecord() says which term makes a record bad", async (t) => {
  const rows: Array<[string, string, string]> = [
    ["not SPF", "v=spf2 mx", "it does not start with v=spf1"],
    ["an unknown mechanism", "v=spf1 mx spf2", 'bad term "spf2"'],
    ["all with a value", "v=spf1 all:example.org", 'bad term "all:example.org"'],
    ["include without a domain", "v=spf1 include", 'bad term "include"'],
    ["include with an empty domain", "v=spf1 include:", 'bad term "include:"'],
    ["include of a one-label name", "v=spf1 include:localhost", 'bad term "include:localhost"'],
    ["exists without a domain", "v=spf1 exists", 'bad term "exists"'],
    ["a CIDR length with a leading zero", "v=spf1 a/024", 'bad term "a/024"'],
    ["an IPv4 length over 32", "v=spf1 a/33", 'bad term "a/33"'],
    ["an IPv6 length over 128", "v=spf1 mx//129", 'bad term "mx//129"'],
    ["one slash before the IPv6 length", "v=spf1 a/24/64", 'bad term "a/24/64"'],
    ["a length without a number", "v=spf1 a/", 'bad term "a/"'],
    ["ip4 without a network", "v=spf1 ip4", 'bad term "ip4"'],
    ["ip4 with leading zeros", "v=spf1 ip4:192.000.2.1", 'bad term "ip4:192.000.2.1"'],
    ["ip4 with three octets", "v=spf1 ip4:192.0.2", 'bad term "ip4:192.0.2"'],
    ["ip4 with an IPv6 address", "v=spf1 ip4:2001:db8::1", 'bad term "ip4:2001:db8::1"'],
    ["ip6 with an IPv4 address", "v=spf1 ip6:192.0.2.1", 'bad term "ip6:192.0.2.1"'],
    ["ip4 with /33", "v=spf1 ip4:192.0.2.0/33", 'bad term "ip4:192.0.2.0/33"'],
    ["ip6 with /129", "v=spf1 ip6:2001:db8::/129", 'bad term "ip6:2001:db8::/129"'],
    ["ip4 with a dual length", "v=spf1 ip4:192.0.2.0/24//64", 'bad term "ip4:192.0.2.0/24//64"'],
    ["ip6 with a zone", "v=spf1 ip6:fe80::1%eth0", 'bad term "ip6:fe80::1%eth0"'],
    ["a qualifier alone", "v=spf1 -", 'bad term "-"'],
    ["two qualifiers", "v=spf1 -~all", 'bad term "-~all"'],
    [
      "a qualifier on a modifier",
      "v=spf1 -redirect=example.org",
      'bad term "-redirect=example.org"',
    ],
    [
      "two redirects",
      "v=spf1 redirect=a.example redirect=b.example",
      'bad term "redirect=b.example"',
    ],
    ["two exps", "v=spf1 exp=a.example exp=b.example", 'bad term "exp=b.example"'],
    ["redirect to no domain", "v=spf1 redirect=", 'bad term "redirect="'],
    ["a bad macro in an unknown modifier", "v=spf1 foo=%x", 'bad term "foo=%x"'],
    [
      "exp='s letters in a domain-spec",
      "v=spf1 include:%{c}.example.org",
      'bad term "include:%{c}.example.org"',
    ],
    ["a tab between terms", "v=spf1 mx\t-all", 'bad term "mx?-all"'],
    [
      "a newline in a term, cleaned in the reason",
      "v=spf1 ip4:192.0.2.1\n0.0.0.0/0",
      'bad term "ip4:192.0.2.1?0.0.0.0/0"',
    ],
    ["a byte over 127", "v=spf1 include:caf\xe9.example", 'bad term "include:caf?.example"'],
  ];
  for (const [name, text, want] of rows) {
    await t.step(name, () => assert.deepEqual(parseRecord(text), { kind: "bad", reason: want }));
  }
});

Deno.test("parseRecord() keeps each term as written, for reports", () => {
  const got = parseRecord("v=spf1 ~Include:_SPF.example.org redirect=Other.example");
  assert.equal(got.kind, "record");
  const { record } = got as { record: SpfRecord };
  assert.deepEqual(record.directives.map((d) => d.term), ["~Include:_SPF.example.org"]);
  assert.equal(record.redirect?.term, "redirect=Other.example");
});
