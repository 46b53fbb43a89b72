/**
 * expand() against an SPF zone in memory (tests/fixtures/spf_zone.ts): each
 * row a zone, the top domain, and the CIDRs, lookups and notes wanted, or
 * the failure.
 */
import assert from "node:assert/strict";
import { formatCidr, toCidrs } from "../src/spf/cidr.ts";
import { DnsFailure } from "../src/spf/dns.ts";
import { expand, type Expansion, type Note } from "../src/spf/expand.ts";
import { type Zone, ZoneResolver } from "./fixtures/spf_zone.ts";

/** A note as one line: `unexpandable DOMAIN TERM: WHY` or `stopped DOMAIN TERM 4,6: WHY`. */
function noteLine(note: Note): string {
  return note.kind === "unexpandable"
    ? `unexpandable ${note.domain} ${note.term}: ${note.why}`
    : `stopped ${note.domain} ${note.term} ${note.families.join(",")}: ${note.why}`;
}

type Want =
  | { ranges: string[]; lookups: number; notes?: string[] }
  | { failed: string; notes?: string[] };

function plain(e: Expansion): Want {
  const notes = e.notes.map(noteLine);
  const tail = notes.length > 0 ? { notes } : {};
  return e.kind === "expanded"
    ? { ranges: toCidrs(e.ranges).map(formatCidr), lookups: e.lookups, ...tail }
    : { failed: e.reason, ...tail };
}

interface Row {
  readonly name: string;
  readonly zone: Zone;
  /** The top domain; example.org when not given. */
  readonly domain?: string;
  readonly want: Want;
  /** Queries that must not have been asked. */
  readonly unasked?: readonly string[];
}

const spf = (text: string) => ({ txt: [text] });

/** 11 includes of _N.example.org, each with one /24 of 10.N.0.0. */
function includes(n: number): Zone {
  const zone: Record<string, { txt: string[] }> = {
    "example.org": spf(
      `v=spf1 ${
        Array.from({ length: n }, (_, i) => `include:_${i + 1}.example.org`).join(" ")
      } -all`,
    ),
  };
  for (let i = 1; i <= n; i++) zone[`_${i}.example.org`] = spf(`v=spf1 ip4:10.0.${i}.0/24 -all`);
  return zone;
}

const ROWS: Row[] = [
  {
    name: "ip4 and ip6 need no lookup",
    zone: { "example.org": spf("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all") },
    want: { ranges: ["192.0.2.0/24", "2001:db8::/32"], lookups: 0 },
  },
  {
    name: "host bits of ip4 and ip6 cleared",
    zone: { "example.org": spf("v=spf1 ip4:192.0.2.77/24 ip6:2001:db8::1/48") },
    want: { ranges: ["192.0.2.0/24", "2001:db8::/48"], lookups: 0 },
  },
  {
    name: "a: the domain's own addresses, /32 and /128",
    zone: {
      "example.org": { txt: ["v=spf1 a -all"], a: ["192.0.2.10"], aaaa: ["2001:db8::10"] },
    },
    want: { ranges: ["192.0.2.10/32", "2001:db8::10/128"], lookups: 1 },
  },
  {
    name: "a/24//64: each address's network",
    zone: {
      "example.org": { txt: ["v=spf1 a/24//64 -all"], a: ["192.0.2.10"], aaaa: ["2001:db8::10"] },
    },
    want: { ranges: ["192.0.2.0/24", "2001:db8::/64"], lookups: 1 },
  },
  {
    name: "a:name/28: another name's addresses, IPv6 whole",
    zone: {
      "example.org": spf("v=spf1 a:out.example.net/28"),
      "out.example.net": { a: ["198.51.100.20", "198.51.100.40"], aaaa: ["2001:db8::20"] },
    },
    want: { ranges: ["198.51.100.16/28", "198.51.100.32/28", "2001:db8::20/128"], lookups: 1 },
  },
  {
    name: "mx: every MX host's addresses, one lookup",
    zone: {
      "example.org": { txt: ["v=spf1 mx -all"], mx: ["mx1.example.org", "mx2.example.net"] },
      "mx1.example.org": { a: ["192.0.2.25"], aaaa: ["2001:db8::25"] },
      "mx2.example.net": { a: ["198.51.100.25"] },
    },
    want: { ranges: ["192.0.2.25/32", "198.51.100.25/32", "2001:db8::25/128"], lookups: 1 },
  },
  {
    name: "mx:domain/24//64",
    zone: {
      "example.org": spf("v=spf1 mx:example.net/24//64"),
      "example.net": { mx: ["mx.example.net"] },
      "mx.example.net": { a: ["198.51.100.25"], aaaa: ["2001:db8:1:2::25"] },
    },
    want: { ranges: ["198.51.100.0/24", "2001:db8:1:2::/64"], lookups: 1 },
  },
  {
    name: "duplicates, overlaps and neighbours merged",
    zone: {
      "example.org": {
        txt: [
          "v=spf1 ip4:192.0.2.0/25 ip4:192.0.2.128/25 a ip4:192.0.2.0/24 ip6:2001:db8::/33 " +
          "ip6:2001:db8:8000::/33 -all",
        ],
        a: ["192.0.2.7"],
      },
    },
    want: { ranges: ["192.0.2.0/24", "2001:db8::/32"], lookups: 1 },
  },
  {
    name: "include: what the included record passes",
    zone: {
      "example.org": spf("v=spf1 include:_spf.example.org ip4:192.0.2.0/24 -all"),
      "_spf.example.org": spf("v=spf1 ip4:198.51.100.0/24 ip6:2001:db8::/32 ~all"),
    },
    want: { ranges: ["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32"], lookups: 1 },
  },
  {
    name: "include: names in capitals, three levels",
    zone: {
      "example.org": spf("v=spf1 Include:_A.Example.ORG -all"),
      "_a.example.org": spf("v=spf1 include:_b.example.org ip4:192.0.2.1"),
      "_b.example.org": spf("v=spf1 include:_c.example.org ip4:192.0.2.2"),
      "_c.example.org": spf("v=spf1 ip4:192.0.2.3"),
    },
    want: { ranges: ["192.0.2.1/32", "192.0.2.2/31"], lookups: 3 },
  },
  {
    name: "an included record's -all does not end the including one",
    zone: {
      "example.org": spf("v=spf1 include:_spf.example.org ip4:192.0.2.0/24 -all"),
      "_spf.example.org": spf("v=spf1 ip4:198.51.100.0/24 -all"),
    },
    want: { ranges: ["192.0.2.0/24", "198.51.100.0/24"], lookups: 1 },
  },
  {
    name: "the same include twice is no loop (each counted)",
    zone: {
      "example.org": spf("v=spf1 include:_a.example.org include:_b.example.org -all"),
      "_a.example.org": spf("v=spf1 include:_d.example.org"),
      "_b.example.org": spf("v=spf1 include:_d.example.org"),
      "_d.example.org": spf("v=spf1 ip4:192.0.2.0/24"),
    },
    want: { ranges: ["192.0.2.0/24"], lookups: 4 },
  },
  {
    name: "redirect: the target's record for what no mechanism matched",
    zone: {
      "example.org": spf("v=spf1 ip4:192.0.2.0/24 redirect=_spf.example.net"),
      "_spf.example.net": spf("v=spf1 ip4:198.51.100.0/24 -all"),
    },
    want: { ranges: ["192.0.2.0/24", "198.51.100.0/24"], lookups: 1 },
  },
  {
    name: "redirect: a -mechanism before it keeps its addresses out",
    zone: {
      "example.org": spf("v=spf1 -ip4:198.51.100.128/25 redirect=_spf.example.net"),
      "_spf.example.net": spf("v=spf1 ip4:198.51.100.0/24 -all"),
    },
    want: { ranges: ["198.51.100.0/25"], lookups: 1 },
  },
  {
    name: "redirect: not used when the record has all",
    zone: {
      "example.org": spf("v=spf1 ip4:192.0.2.0/24 ?all redirect=_spf.example.net"),
      "_spf.example.net": spf("v=spf1 ip4:198.51.100.0/24 -all"),
    },
    want: { ranges: ["192.0.2.0/24"], lookups: 0 },
    unasked: ["TXT _spf.example.net"],
  },
  {
    name: "-all, ~all and ?all list nothing; nothing after all is looked up",
    zone: {
      "example.org": spf(
        "v=spf1 ip4:192.0.2.0/24 ~all include:_spf.example.net ip4:198.51.100.0/24",
      ),
    },
    want: { ranges: ["192.0.2.0/24"], lookups: 0 },
    unasked: ["TXT _spf.example.net"],
  },
  {
    name: "a - mechanism first takes its addresses out of what follows",
    zone: { "example.org": spf("v=spf1 -ip4:192.0.2.64/26 ip4:192.0.2.0/24 -all") },
    want: { ranges: ["192.0.2.0/26", "192.0.2.128/25"], lookups: 0 },
  },
  {
    name: "~ and ? mechanisms list nothing and take their addresses out too",
    zone: {
      "example.org": spf(
        "v=spf1 ~ip4:192.0.2.0/25 ?ip6:2001:db8::/33 ip4:192.0.2.0/24 ip6:2001:db8::/32",
      ),
    },
    want: { ranges: ["192.0.2.128/25", "2001:db8:8000::/33"], lookups: 0 },
  },
  {
    name: "a - mechanism after a + one takes nothing back",
    zone: { "example.org": spf("v=spf1 ip4:192.0.2.0/24 -ip4:192.0.2.64/26 -all") },
    want: { ranges: ["192.0.2.0/24"], lookups: 0 },
  },
  {
    name: "-include: what the included record passes is taken out",
    zone: {
      "example.org": spf("v=spf1 -include:_bad.example.org ip4:192.0.2.0/24"),
      "_bad.example.org": spf("v=spf1 ip4:192.0.2.0/25"),
    },
    want: { ranges: ["192.0.2.128/25"], lookups: 1 },
  },
  {
    name: "an included record's - mechanism lets the client go on to the next term",
    zone: {
      "example.org": spf("v=spf1 include:_spf.example.org ip4:192.0.2.0/24"),
      "_spf.example.org": spf("v=spf1 -ip4:192.0.2.0/25 ip4:198.51.100.0/24"),
    },
    want: { ranges: ["192.0.2.0/24", "198.51.100.0/24"], lookups: 1 },
  },
  {
    name: "ptr and exists: counted, reported, nothing listed",
    zone: {
      "example.org": spf(
        "v=spf1 ptr -exists:%{i}.bl.example.org exists:ok.example.org ip4:192.0.2.0/24",
      ),
    },
    want: {
      ranges: ["192.0.2.0/24"],
      lookups: 3,
      notes: [
        "unexpandable example.org ptr: ptr depends on the client's name",
        "unexpandable example.org -exists:%{i}.bl.example.org: exists depends on the client",
        "unexpandable example.org exists:ok.example.org: exists depends on the client",
      ],
    },
  },
  {
    name: "macros in include, a, mx and redirect: counted, reported, nothing listed",
    zone: {
      "example.org": spf(
        "v=spf1 include:%{ir}._spf.example.org a:%{d} mx:%{o}/24 ip4:192.0.2.0/24 redirect=%{d}.example.net",
      ),
    },
    want: {
      ranges: ["192.0.2.0/24"],
      lookups: 4,
      notes: [
        "unexpandable example.org include:%{ir}._spf.example.org: a macro depends on the client",
        "unexpandable example.org a:%{d}: a macro depends on the client",
        "unexpandable example.org mx:%{o}/24: a macro depends on the client",
        "unexpandable example.org redirect=%{d}.example.net: a macro depends on the client",
      ],
    },
  },
  {
    name: "a loop through include: stopped there, what came before kept",
    zone: {
      "example.org": spf("v=spf1 ip4:192.0.2.1 include:_a.example.org ip4:192.0.2.9"),
      "_a.example.org": spf("v=spf1 ip4:192.0.2.2 include:example.org ip4:192.0.2.3"),
    },
    want: {
      ranges: ["192.0.2.1/32", "192.0.2.2/32"],
      lookups: 2,
      notes: [
        "stopped _a.example.org include:example.org 4,6: a loop: example.org is already being expanded",
      ],
    },
  },
  {
    name: "a record that includes itself",
    zone: { "example.org": spf("v=spf1 ip4:192.0.2.1 include:example.org") },
    want: {
      ranges: ["192.0.2.1/32"],
      lookups: 1,
      notes: [
        "stopped example.org include:example.org 4,6: a loop: example.org is already being expanded",
      ],
    },
  },
  {
    name: "a loop through redirect",
    zone: {
      "example.org": spf("v=spf1 ip4:192.0.2.1 redirect=_a.example.org"),
      "_a.example.org": spf("v=spf1 ip4:192.0.2.2 redirect=example.org"),
    },
    want: {
      ranges: ["192.0.2.1/32", "192.0.2.2/32"],
      lookups: 2,
      notes: [
        "stopped _a.example.org redirect=example.org 4,6: a loop: example.org is already being expanded",
      ],
    },
  },
  {
    name: "10 DNS lookups are allowed",
    zone: includes(10),
    want: {
      ranges: ["10.0.1.0/24", "10.0.2.0/23", "10.0.4.0/22", "10.0.8.0/23", "10.0.10.0/24"],
      lookups: 10,
    },
  },
  {
    name: "the 11th lookup stops the expansion; the first 10 are kept",
    zone: includes(12),
    want: {
      ranges: ["10.0.1.0/24", "10.0.2.0/23", "10.0.4.0/22", "10.0.8.0/23", "10.0.10.0/24"],
      lookups: 10,
      notes: ["stopped example.org include:_11.example.org 4,6: more than 10 DNS lookups"],
    },
    unasked: ["TXT _11.example.org", "TXT _12.example.org"],
  },
  {
    name: "the lookups of included records count, and stop the including one",
    zone: {
      "example.org": spf("v=spf1 include:_a.example.org ip4:192.0.2.0/24 -all"),
      "_a.example.org": spf(
        "v=spf1 a:h1.example.org a:h2.example.org a:h3.example.org a:h4.example.org a:h5.example.org " +
          "a:h6.example.org a:h7.example.org a:h8.example.org a:h9.example.org a:h10.example.org -all",
      ),
      ...Object.fromEntries(
        Array.from(
          { length: 10 },
          (
            _,
            i,
          ) => [`h${i + 1}.example.org`, {
            a: [`198.51.100.${i + 1}`],
            aaaa: [`2001:db8::${i + 1}`],
          }],
        ),
      ),
    },
    want: {
      ranges: [
        "198.51.100.1/32",
        "198.51.100.2/31",
        "198.51.100.4/30",
        "198.51.100.8/31",
        "2001:db8::1/128",
        "2001:db8::2/127",
        "2001:db8::4/126",
        "2001:db8::8/127",
      ],
      lookups: 10,
      notes: ["stopped _a.example.org a:h10.example.org 4,6: more than 10 DNS lookups"],
    },
  },
  {
    name: "two void lookups are allowed",
    zone: {
      "example.org": spf("v=spf1 a:none1.example.org mx:none2.example.org ip4:192.0.2.0/24"),
    },
    want: { ranges: ["192.0.2.0/24"], lookups: 2 },
  },
  {
    name: "the 3rd void lookup stops the expansion",
    zone: {
      "example.org": spf(
        "v=spf1 ip4:192.0.2.1 a:none1.example.org mx:none2.example.org a:none3.example.org ip4:192.0.2.9",
      ),
    },
    want: {
      ranges: ["192.0.2.1/32"],
      lookups: 3,
      notes: ["stopped example.org a:none3.example.org 4,6: more than 2 void lookups"],
    },
  },
  {
    name: "void lookups are counted per family: IPv6-only hosts stop IPv4",
    zone: {
      "example.org": spf(
        "v=spf1 a:v6a.example.org a:v6b.example.org a:v6c.example.org ip4:192.0.2.0/24 ip6:2001:db8:1::/48",
      ),
      "v6a.example.org": { aaaa: ["2001:db8::a"] },
      "v6b.example.org": { aaaa: ["2001:db8::b"] },
      "v6c.example.org": { aaaa: ["2001:db8::c"] },
    },
    want: {
      ranges: ["2001:db8::a/127", "2001:db8::c/128", "2001:db8:1::/48"],
      lookups: 3,
      notes: ["stopped example.org a:v6c.example.org 4: more than 2 void lookups"],
    },
  },
  {
    name: "a null MX is a void lookup",
    zone: {
      "example.org": spf("v=spf1 mx mx mx ip4:192.0.2.0/24 ip4:192.0.2.1"),
    },
    want: {
      failed: "it passes no address that can be listed (more than 2 void lookups)",
      notes: [
        "stopped example.org mx 4,6: more than 2 void lookups",
      ],
    },
  },
  {
    name: "more than 10 MX names stop the expansion",
    zone: {
      "example.org": {
        txt: ["v=spf1 ip4:192.0.2.0/24 mx ip4:198.51.100.0/24"],
        mx: Array.from({ length: 11 }, (_, i) => `mx${i}.example.org`),
      },
    },
    want: {
      ranges: ["192.0.2.0/24"],
      lookups: 1,
      notes: ["stopped example.org mx 4,6: more than 10 MX names at example.org"],
    },
  },
  {
    name: "an include without an SPF record stops the expansion",
    zone: {
      "example.org": spf("v=spf1 ip4:192.0.2.0/24 include:_gone.example.org ip4:198.51.100.0/24"),
      "_gone.example.org": { txt: ["some other text"] },
    },
    want: {
      ranges: ["192.0.2.0/24"],
      lookups: 1,
      notes: [
        "stopped example.org include:_gone.example.org 4,6: no SPF record at _gone.example.org",
      ],
    },
  },
  {
    name: "an include with two SPF records stops the expansion",
    zone: {
      "example.org": spf("v=spf1 ip4:192.0.2.0/24 include:_two.example.org"),
      "_two.example.org": { txt: ["v=spf1 mx", "v=spf1 a"] },
    },
    want: {
      ranges: ["192.0.2.0/24"],
      lookups: 1,
      notes: [
        "stopped example.org include:_two.example.org 4,6: 2 SPF records at _two.example.org",
      ],
    },
  },
  {
    name: "an include of a bad record stops the expansion",
    zone: {
      "example.org": spf("v=spf1 ip4:192.0.2.0/24 include:_bad.example.org"),
      "_bad.example.org": spf("v=spf1 ip4:198.51.100.0/24 ip4:198.51.100.0/33"),
    },
    want: {
      ranges: ["192.0.2.0/24"],
      lookups: 1,
      notes: [
        'stopped example.org include:_bad.example.org 4,6: a bad SPF record at _bad.example.org: bad term "ip4:198.51.100.0/33"',
      ],
    },
  },
  {
    name: "a redirect without an SPF record stops the expansion",
    zone: { "example.org": spf("v=spf1 ip4:192.0.2.0/24 redirect=_gone.example.org") },
    want: {
      ranges: ["192.0.2.0/24"],
      lookups: 1,
      notes: [
        "stopped example.org redirect=_gone.example.org 4,6: no SPF record at _gone.example.org",
      ],
    },
  },
  {
    name: "no SPF record: a failure",
    zone: { "example.org": { txt: ["v=spf10 mx"] } },
    want: { failed: "no SPF record at example.org" },
  },
  {
    name: "no such domain: a failure",
    zone: {},
    want: { failed: "no SPF record at example.org" },
  },
  {
    name: "two SPF records: a failure",
    zone: { "example.org": { txt: ["v=spf1 mx", "v=spf1 -all"] } },
    want: { failed: "2 SPF records at example.org" },
  },
  {
    name: "a bad record: a failure",
    zone: { "example.org": spf("v=spf1 ip4:192.0.2.0/24 mx:") },
    want: { failed: 'a bad SPF record at example.org: bad term "mx:"' },
  },
  {
    name: "-all alone: a failure, nothing to list",
    zone: { "example.org": spf("v=spf1 -all") },
    want: { failed: "it passes no address that can be listed" },
  },
  {
    name: "only exists: a failure, nothing to list",
    zone: { "example.org": spf("v=spf1 exists:%{i}.spf.example.org -all") },
    want: {
      failed: "it passes no address that can be listed",
      notes: ["unexpandable example.org exists:%{i}.spf.example.org: exists depends on the client"],
    },
  },
  {
    name: "+all: a failure, it passes everyone",
    zone: { "example.org": spf("v=spf1 ip4:192.0.2.0/24 +all") },
    want: { failed: "it passes every IPv4 address" },
  },
  {
    name: "all without a qualifier is +all",
    zone: { "example.org": spf("v=spf1 all") },
    want: { failed: "it passes every IPv4 address" },
  },
  {
    name: "+all in an included record",
    zone: {
      "example.org": spf("v=spf1 include:_spf.example.org -all"),
      "_spf.example.org": spf("v=spf1 +all"),
    },
    want: { failed: "it passes every IPv4 address" },
  },
  {
    name: "ip6:::/0",
    zone: { "example.org": spf("v=spf1 ip4:192.0.2.0/24 ip6:::/0") },
    want: { failed: "it passes every IPv6 address" },
  },
  {
    name: "two /1s make every address",
    zone: { "example.org": spf("v=spf1 ip4:0.0.0.0/1 ip4:128.0.0.0/1") },
    want: { failed: "it passes every IPv4 address" },
  },
];

Deno.test("expand() lists what an SPF record passes", async (t) => {
  for (const row of ROWS) {
    await t.step(row.name, async () => {
      const resolver = new ZoneResolver(row.zone);
      assert.deepEqual(plain(await expand(row.domain ?? "example.org", resolver)), row.want);
      for (const query of row.unasked ?? []) {
        assert.ok(!resolver.queries.includes(query), `${query} was asked: ${resolver.queries}`);
      }
    });
  }
});

Deno.test("expand() throws the resolver's DnsFailure, wherever it happens", async (t) => {
  const zones: Array<[string, Zone]> = [
    ["the top domain's TXT", { "example.org": { fail: true } }],
    ["an include's TXT", {
      "example.org": spf("v=spf1 ip4:192.0.2.0/24 include:_spf.example.org"),
      "_spf.example.org": { fail: true },
    }],
    ["an a's addresses", {
      "example.org": spf("v=spf1 ip4:192.0.2.0/24 a:host.example.org"),
      "host.example.org": { fail: true },
    }],
    ["an mx host's addresses", {
      "example.org": { txt: ["v=spf1 ip4:192.0.2.0/24 mx"], mx: ["mx.example.org"] },
      "mx.example.org": { fail: true },
    }],
  ];
  for (const [name, zone] of zones) {
    await t.step(name, async () => {
      await assert.rejects(expand("example.org", new ZoneResolver(zone)), DnsFailure);
    });
  }
});
