/**
 * rdns.ts against a tiny DNS server on 127.0.0.1 that this test runs (no
 * network beyond loopback). Clients use TEST-NET addresses: Deno.resolveDns
 * answers 127.x by itself without asking the server.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import type { NameServer } from "../src/config.ts";
import { parseIp } from "../src/ip.ts";
import { type Lookup, lookupPtr, nameOf } from "../src/rdns.ts";

/** What the fake server does for one reverse name. */
type Answer =
  | { names: string[] }
  | { rcode: number }
  | { silent: true };

const NOERROR = 0;
const SERVFAIL = 2;
const NXDOMAIN = 3;
const REFUSED = 5;

function encodeName(name: string): number[] {
  const out: number[] = [];
  for (const label of name.replace(/\.$/, "").split(".")) {
    const bytes = new TextEncoder().encode(label);
    out.push(bytes.length, ...bytes);
  }
  out.push(0);
  return out;
}

/** The reply to `query` (a DNS message with one question), or undefined for silence. */
function respond(query: Uint8Array, answers: ReadonlyMap<string, Answer>): Uint8Array | undefined {
  let i = 12;
  const labels: string[] = [];
  while (query[i]! !== 0) {
    const n = query[i]!;
    labels.push(new TextDecoder().decode(query.subarray(i + 1, i + 1 + n)));
    i += n + 1;
  }
  const questionEnd = i + 5; // the zero byte, QTYPE, QCLASS
  const answer = answers.get(labels.join(".").toLowerCase()) ?? { rcode: NXDOMAIN };
  if ("silent" in answer) return undefined;
  const names = "names" in answer ? answer.names : [];
  const rcode = "rcode" in answer ? answer.rcode : NOERROR;
  const out = [
    query[0]!,
    query[1]!, // id
    0x81 | (query[2]! & 0x01), // QR, opcode 0, RD as asked
    0x80 | rcode, // RA, rcode
    0,
    1, // QDCOUNT
    0,
    names.length, // ANCOUNT
    0,
    0,
    0,
    0, // NSCOUNT, ARCOUNT
    ...query.subarray(12, questionEnd),
  ];
  for (const name of names) {
    const rdata = encodeName(name);
    out.push(0xc0, 12, 0, 12, 0, 1, 0, 0, 0, 60, rdata.length >> 8, rdata.length & 0xff, ...rdata);
  }
  return Uint8Array.from(out);
}

/** Runs `body` with a fake DNS server on 127.0.0.1 answering from `answers`. */
async function withServer(
  answers: ReadonlyMap<string, Answer>,
  body: (server: NameServer) => Promise<void>,
): Promise<void> {
  const socket = dgram.createSocket("udp4");
  socket.on("message", (msg: Uint8Array, from: { port: number; address: string }) => {
    const reply = respond(msg, answers);
    if (reply) socket.send(reply, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  try {
    await body({ ipAddr: "127.0.0.1", port: socket.address().port });
  } finally {
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}

const ANSWERS = new Map<string, Answer>([
  ["10.2.0.192.in-addr.arpa", { names: ["Mail.Example.COM."] }],
  ["11.2.0.192.in-addr.arpa", { rcode: NXDOMAIN }],
  ["12.2.0.192.in-addr.arpa", { rcode: REFUSED }],
  ["13.2.0.192.in-addr.arpa", { names: [] }],
  ["14.2.0.192.in-addr.arpa", { silent: true }],
  ["15.2.0.192.in-addr.arpa", { names: ["first.example.net.", "second.example.net."] }],
  ["16.2.0.192.in-addr.arpa", { rcode: SERVFAIL }],
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
