/**
 * rdns.ts against a tiny DNS server on 127.0.0.1 that this test runs (no
 * network beyond loopback). Clients use TEST-NET addresses: Deno.resolveDns
 * answers 127.x by itself without asking the server.
 */
import assert from "node:assert/strict";
import { parseIp } from "../src/ip.ts";
import { fromPresentation, type Lookup, lookupPtr, nameOf } from "../src/rdns.ts";
import {
  type Answer,
  NXDOMAIN,
  REFUSED,
  SERVFAIL,
  withFakeDns as withServer,
} from "./fixtures/fake_dns.ts";

const ANSWERS = new Map<string, Answer>([
  ["10.2.0.192.in-addr.arpa", { names: ["Mail.Example.COM."] }],
  ["11.2.0.192.in-addr.arpa", { rcode: NXDOMAIN }],
  ["12.2.0.192.in-addr.arpa", { rcode: REFUSED }],
  ["13.2.0.192.in-addr.arpa", { names: [] }],
  ["14.2.0.192.in-addr.arpa", { silent: true }],
  ["15.2.0.192.in-addr.arpa", { names: ["first.example.net.", "second.example.net."] }],
  ["16.2.0.192.in-addr.arpa", { rcode: SERVFAIL }],
  ["17.2.0.192.in-addr.arpa", { names: [["Mail\nX", "ex\\ample", "NET"]] }],
  ["18.2.0.192.in-addr.arpa", { names: [["caf\xe9", "a.b", "example"]] }],
  [
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
    { names: ["v6.example.org."] },
  ],
]);

function ip(text: string) {
  const parsed = parseIp(text);
  if (!parsed) throw new Error(`bad test address ${text}`);
  return parsed;
}

Deno.test("lookupPtr() reports what the DNS server said", async (t) => {
  const rows: [string, string, Lookup][] = [
    ["a name, lowercased, without its final dot", "192.0.2.10", {
      kind: "found",
      name: "mail.example.com",
    }],
    ["the first of several names", "192.0.2.15", { kind: "found", name: "first.example.net" }],
    ["an IPv6 client", "2001:db8::1", { kind: "found", name: "v6.example.org" }],
    ["NXDOMAIN: none", "192.0.2.11", { kind: "none" }],
    ["REFUSED: none", "192.0.2.12", { kind: "none" }],
    ["no PTR record: none", "192.0.2.13", { kind: "none" }],
    ["control bytes and a backslash: the bytes, not Deno's escapes", "192.0.2.17", {
      kind: "found",
      name: "mail\nx.ex\\ample.net",
    }],
    ["a byte over 127 and a dot inside a label", "192.0.2.18", {
      kind: "found",
      name: "caf\xe9.a.b.example",
    }],
  ];
  await withServer(ANSWERS, async (server) => {
    for (const [name, address, want] of rows) {
      await t.step(`${address}: ${name}`, async () => {
        assert.deepEqual(await lookupPtr(ip(address), server, AbortSignal.timeout(5_000)), want);
      });
    }
  });
});

// A known limit, written down in README: Deno.resolveDns throws the same
// NotFound ("no records found") for SERVFAIL and REFUSED as for NXDOMAIN, so
// a broken PTR zone reads as "none". This test pins that: if a Deno upgrade
// lets rdns.ts tell them apart, it fails, and the README and -N should change.
Deno.test("lookupPtr() reads SERVFAIL as no name (Deno.resolveDns cannot tell)", async () => {
  await withServer(ANSWERS, async (server) => {
    assert.deepEqual(await lookupPtr(ip("192.0.2.16"), server, AbortSignal.timeout(5_000)), {
      kind: "none",
    });
  });
});

Deno.test("lookupPtr() ends as a timeout when told to stop", async () => {
  await withServer(ANSWERS, async (server) => {
    const stop = new AbortController();
    const start = performance.now();
    const pending = lookupPtr(ip("192.0.2.14"), server, stop.signal); // never answered
    setTimeout(() => stop.abort(), 300);
    const got = await pending;
    const elapsedMs = performance.now() - start;
    assert.deepEqual(got, { kind: "timeout" });
    assert.ok(elapsedMs >= 250 && elapsedMs < 3_000, `returned after ${elapsedMs} ms, want ~300`);
  });
});

Deno.test("lookupPtr() told to stop before it starts is a timeout", async () => {
  const stop = new AbortController();
  stop.abort();
  // The server would say NXDOMAIN, if it were asked.
  assert.deepEqual(
    await lookupPtr(ip("192.0.2.11"), { ipAddr: "127.0.0.1", port: 9 }, stop.signal),
    { kind: "timeout" },
  );
});

Deno.test("fromPresentation() undoes Deno's escapes (\\DDD in octal)", async (t) => {
  const rows: [string, string][] = [
    ["mail.example.net.", "mail.example.net"],
    ["Mail.Example.NET.", "mail.example.net"],
    ["mail.example.net", "mail.example.net"],
    ["mail\\012x.example.", "mail\nx.example"],
    ["a\\000b.", "a\0b"],
    ["caf\\351.", "caf\xe9"],
    ["a\\177\\001\\040b.", "a\x7f\x01 b"],
    ["ex\\\\ample.", "ex\\ample"],
    ["a\\.b.example.", "a.b.example"],
    ["dot\\.", "dot."],
    ["\\101\\102c.", "abc"],
    ['\\"quoted\\".', '"quoted"'],
    [".", ""],
  ];
  for (const [text, want] of rows) {
    await t.step(JSON.stringify(text), () => assert.equal(fromPresentation(text), want));
  }
});

Deno.test("nameOf() gives the name only of a lookup that found one", async (t) => {
  const rows: [Lookup, string | undefined][] = [
    [{ kind: "host", name: "a.example" }, "a.example"],
    [{ kind: "found", name: "b.example" }, "b.example"],
    [{ kind: "none" }, undefined],
    [{ kind: "timeout" }, undefined],
    [{ kind: "error", reason: "x" }, undefined],
    [{ kind: "skipped" }, undefined],
  ];
  for (const [lookup, want] of rows) {
    await t.step(lookup.kind, () => {
      assert.equal(nameOf(lookup), want);
    });
  }
});
