/**
 * src/spf/dns.ts against a name server of the test's own on 127.0.0.1
 * (tests/fixtures/spf_dns.ts): records read back, "none" told apart from a
 * failure, truncation, CNAMEs, several servers, the cache.
 */
import assert from "node:assert/strict";
import { formatIpShort, ipFromBytes } from "../src/ip.ts";
import { parseResolvConf } from "../src/resolv_conf.ts";
import { DnsFailure, DnsResolver } from "../src/spf/dns.ts";
import { type SpfDns, startSpfDns, type Zone } from "./fixtures/spf_dns.ts";

const ZONE: Zone = {
  "example.org": {
    txt: [["v=spf1 include:_spf.example.org", " -all"], ["google-site-verification=x"]],
    a: ["192.0.2.1", "192.0.2.2"],
    aaaa: ["2001:db8::1"],
    mx: [[10, "mx1.example.org"], [20, "MX2.Example.NET"]],
  },
  "bytes.example.org": { txt: [["caf\xe9\x00\n"]] },
  "nullmx.example.org": { mx: [[0, ""]] },
  "nodata.example.org": {},
  "servfail.example.org": { rcode: 2 },
  "refused.example.org": { rcode: 5 },
  "silent.example.org": { silent: true },
  "big.example.org": {
    truncate: true,
    txt: [Array.from({ length: 8 }, (_, i) => String(i).repeat(250))],
  },
  "spoofed.example.org": { wrongIdFirst: true, a: ["192.0.2.9"] },
  "alias.example.org": { cname: "example.org" },
  "partial.example.org": { cname: "example.org", cnameOnly: true },
  "dangling.example.org": { cname: "gone.example.org" },
};

const FAST = { timeoutMs: 300, tries: 1 } as const;

async function withDns(zone: Zone, body: (dns: SpfDns) => Promise<void>): Promise<void> {
  const dns = await startSpfDns(zone);
  try {
    await body(dns);
  } finally {
    await dns.stop();
  }
}

const text = (addresses: readonly Uint8Array[]) =>
  addresses.map((b) => formatIpShort(ipFromBytes(b)));

Deno.test("DnsResolver reads TXT, A, AAAA and MX records", async (t) => {
  await withDns(ZONE, async (dns) => {
    const r = new DnsResolver({ servers: [dns.server], ...FAST });
    await t.step("TXT: each record's strings joined", async () => {
      assert.deepEqual(await r.txt("example.org"), [
        "v=spf1 include:_spf.example.org -all",
        "google-site-verification=x",
      ]);
    });
    await t.step("TXT: each byte a character", async () => {
      assert.deepEqual(await r.txt("bytes.example.org"), ["caf\xe9\x00\n"]);
    });
    await t.step("A and AAAA", async () => {
      assert.deepEqual(text(await r.addresses("example.org", 4)), ["192.0.2.1", "192.0.2.2"]);
      assert.deepEqual(text(await r.addresses("example.org", 6)), ["2001:db8::1"]);
    });
    await t.step("MX: the exchange names, lowercase", async () => {
      assert.deepEqual(await r.mx("example.org"), ["mx1.example.org", "mx2.example.net"]);
    });
    await t.step("a null MX is no host", async () => {
      assert.deepEqual(await r.mx("nullmx.example.org"), []);
    });
    await t.step("a name in capitals, with its final dot", async () => {
      assert.deepEqual(text(await r.addresses("EXAMPLE.org.", 4)), ["192.0.2.1", "192.0.2.2"]);
    });
  });
});

Deno.test("DnsResolver: no record is an empty answer, a failing server a DnsFailure", async (t) => {
  await withDns(ZONE, async (dns) => {
    const r = new DnsResolver({ servers: [dns.server], ...FAST });
    const at = `127.0.0.1:${dns.server.port}`;
    await t.step(
      "NXDOMAIN: none",
      async () => assert.deepEqual(await r.txt("gone.example.org"), []),
    );
    await t.step("NOERROR without a record: none", async () => {
      assert.deepEqual(await r.txt("nodata.example.org"), []);
      assert.deepEqual(await r.addresses("nodata.example.org", 6), []);
    });
    const failures: Array<[string, string, string]> = [
      ["SERVFAIL", "servfail.example.org", `${at} answered SERVFAIL`],
      ["REFUSED", "refused.example.org", `${at} answered REFUSED`],
      ["no answer", "silent.example.org", `no answer from ${at}`],
    ];
    for (const [name, domain, reason] of failures) {
      await t.step(`${name}: a DnsFailure`, async () => {
        const e = await r.txt(domain).then(() => undefined, (e: unknown) => e);
        assert.ok(e instanceof DnsFailure, String(e));
        assert.equal(e.message, `unable to look up TXT ${domain}: ${reason}`);
      });
    }
  });
});

Deno.test("DnsResolver asks again over TCP when the UDP answer is truncated", async () => {
  await withDns(ZONE, async (dns) => {
    const r = new DnsResolver({ servers: [dns.server], ...FAST });
    const [record] = await r.txt("big.example.org");
    assert.equal(record?.length, 2000);
    assert.deepEqual(dns.queries, ["udp TXT big.example.org", "tcp TXT big.example.org"]);
  });
});

Deno.test("DnsResolver ignores an answer with another id", async () => {
  await withDns(ZONE, async (dns) => {
    const r = new DnsResolver({ servers: [dns.server], ...FAST });
    assert.deepEqual(text(await r.addresses("spoofed.example.org", 4)), ["192.0.2.9"]);
  });
});

Deno.test("DnsResolver follows CNAMEs", async (t) => {
  await withDns(ZONE, async (dns) => {
    const r = new DnsResolver({ servers: [dns.server], ...FAST });
    await t.step("the target's records in the same answer", async () => {
      assert.deepEqual(text(await r.addresses("alias.example.org", 4)), ["192.0.2.1", "192.0.2.2"]);
    });
    await t.step("the target asked for when the answer left it out", async () => {
      assert.deepEqual(await r.mx("partial.example.org"), ["mx1.example.org", "mx2.example.net"]);
      assert.ok(dns.queries.includes("udp MX example.org"), dns.queries.join(", "));
    });
    await t.step("a target that does not exist: none", async () => {
      assert.deepEqual(await r.txt("dangling.example.org"), []);
    });
  });
});

Deno.test("DnsResolver tries the next server, and fails with the last one's reason", async (t) => {
  await withDns({ "example.org": { rcode: 2 } }, async (bad) => {
    await withDns(ZONE, async (good) => {
      await t.step("a SERVFAIL, then an answer", async () => {
        const r = new DnsResolver({ servers: [bad.server, good.server], ...FAST });
        assert.deepEqual(text(await r.addresses("example.org", 6)), ["2001:db8::1"]);
        assert.deepEqual(bad.queries, ["udp AAAA example.org"]);
      });
      await t.step("every round over every server", async () => {
        const r = new DnsResolver({ servers: [bad.server], timeoutMs: 300, tries: 2 });
        await assert.rejects(r.txt("example.org"), DnsFailure);
        assert.equal(bad.queries.filter((q) => q === "udp TXT example.org").length, 2);
      });
    });
  });
});

Deno.test("DnsResolver asks each question once a run", async () => {
  await withDns(ZONE, async (dns) => {
    const r = new DnsResolver({ servers: [dns.server], ...FAST });
    await Promise.all([r.txt("example.org"), r.txt("example.org")]);
    await r.txt("example.org");
    await r.addresses("example.org", 4);
    assert.deepEqual(dns.queries, ["udp TXT example.org", "udp A example.org"]);
  });
});

Deno.test("parseResolvConf() reads nameserver lines as libc does", async (t) => {
  const rows: Array<[string, string, string[]]> = [
    ["one", "nameserver 192.0.2.53\n", ["192.0.2.53:53"]],
    [
      "comments, search and options skipped",
      "# x\nsearch example.org\nnameserver 192.0.2.53\noptions ndots:2\n",
      [
        "192.0.2.53:53",
      ],
    ],
    ["IPv6", "nameserver 2001:db8::53", ["2001:db8::53:53"]],
    [
      "at most three",
      "nameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 192.0.2.3\nnameserver 192.0.2.4",
      [
        "192.0.2.1:53",
        "192.0.2.2:53",
        "192.0.2.3:53",
      ],
    ],
    ["not an address: skipped", "nameserver 1.2.3.4.5\nnameserver 192.0.2.53", ["192.0.2.53:53"]],
    ["none: 127.0.0.1", "search example.org\n", ["127.0.0.1:53"]],
    ["empty: 127.0.0.1", "", ["127.0.0.1:53"]],
  ];
  for (const [name, text, want] of rows) {
    await t.step(name, () => {
      assert.deepEqual(parseResolvConf(text).map((s) => `${s.ipAddr}:${s.port}`), want);
    });
  }
});
