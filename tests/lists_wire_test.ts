import assert from "node:assert/strict";
import { type Answer, decodeAnswer, encodeQuery } from "../src/lists/wire.ts";

const NAME = "2.2.0.192.bl.test";

/** A name in wire form. */
function wireName(name: string): number[] {
  const out: number[] = [];
  for (const label of name.split(".")) out.push(label.length, ...new TextEncoder().encode(label));
  out.push(0);
  return out;
}

const u16 = (n: number) => [n >> 8, n & 0xff];
const u32 = (n: number) => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];

/** One resource record: owner (wire bytes), type, TTL, data. */
function rr(owner: number[], type: number, ttl: number, data: number[]): number[] {
  return [...owner, ...u16(type), ...u16(1), ...u32(ttl), ...u16(data.length), ...data];
}

/** An A record for the question's name (a pointer to offset 12). */
const a = (address: string, ttl = 300) => rr([0xc0, 12], 1, ttl, address.split(".").map(Number));

/** An SOA record with its own TTL and MINIMUM. */
const soa = (ttl: number, minimum: number) =>
  rr(wireName("bl.test"), 6, ttl, [
    ...wireName("ns.bl.test"),
    ...wireName("hostmaster.bl.test"),
    ...u32(1),
    ...u32(3600),
    ...u32(600),
    ...u32(86400),
    ...u32(minimum),
  ]);

interface Reply {
  id?: number;
  flags?: number;
  question?: string;
  qtype?: number;
  answers?: number[][];
  authority?: number[][];
  /** Cut the packet to this many bytes. */
  cut?: number;
}

/** An answer packet to the query 0x1234 for NAME, as `r` changes it. */
function reply(r: Reply = {}): Uint8Array {
  const answers = r.answers ?? [];
  const authority = r.authority ?? [];
  const bytes = [
    ...u16(r.id ?? 0x1234),
    ...u16(r.flags ?? 0x8180),
    ...u16(1),
    ...u16(answers.length),
    ...u16(authority.length),
    ...u16(0),
    ...wireName(r.question ?? NAME),
    ...u16(r.qtype ?? 1),
    ...u16(1),
    ...answers.flat(),
    ...authority.flat(),
  ];
  return Uint8Array.from(r.cut === undefined ? bytes : bytes.slice(0, r.cut));
}

Deno.test("encodeQuery() writes one A question with recursion desired", () => {
  const q = encodeQuery(0xbeef, "2.0.0.127.bl.test");
  assert.deepEqual([...q.subarray(0, 12)], [0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...q.subarray(12)], [...wireName("2.0.0.127.bl.test"), 0, 1, 0, 1]);
});

Deno.test("decodeAnswer() reads A records, NXDOMAIN and NODATA with their TTLs", async (t) => {
  const rows: Array<[string, Uint8Array, Answer | undefined]> = [
    ["one A record", reply({ answers: [a("127.0.0.2", 300)] }), {
      kind: "found",
      addresses: ["127.0.0.2"],
      ttlSeconds: 300,
    }],
    [
      "two A records: the smaller TTL",
      reply({ answers: [a("127.0.0.2", 900), a("127.0.0.4", 60)] }),
      {
        kind: "found",
        addresses: ["127.0.0.2", "127.0.0.4"],
        ttlSeconds: 60,
      },
    ],
    [
      "a TTL with the top bit set counts as 0 (RFC 2181)",
      reply({ answers: [a("127.0.0.2", 0x80000010)] }),
      {
        kind: "found",
        addresses: ["127.0.0.2"],
        ttlSeconds: 0,
      },
    ],
    [
      "NXDOMAIN with the zone's SOA: the smaller of its TTL and MINIMUM (RFC 2308)",
      reply({ flags: 0x8183, authority: [soa(900, 150)] }),
      { kind: "found", addresses: [], ttlSeconds: 150 },
    ],
    [
      "NXDOMAIN whose SOA TTL is the smaller",
      reply({ flags: 0x8183, authority: [soa(30, 150)] }),
      { kind: "found", addresses: [], ttlSeconds: 30 },
    ],
    ["NXDOMAIN without an SOA: no TTL", reply({ flags: 0x8183 }), {
      kind: "found",
      addresses: [],
      ttlSeconds: undefined,
    }],
    ["NODATA (NOERROR, no A) with an SOA", reply({ authority: [soa(300, 120)] }), {
      kind: "found",
      addresses: [],
      ttlSeconds: 120,
    }],
    [
      "a CNAME to another name and its A record",
      reply({
        answers: [
          rr([0xc0, 12], 5, 300, wireName("127.0.0.2.lists.test")),
          rr(wireName("127.0.0.2.lists.test"), 1, 200, [127, 0, 0, 2]),
        ],
      }),
      { kind: "found", addresses: ["127.0.0.2"], ttlSeconds: 200 },
    ],
    [
      "an A record of another name is no answer",
      reply({ answers: [rr(wireName("evil.test"), 1, 300, [127, 0, 0, 2])] }),
      { kind: "found", addresses: [], ttlSeconds: undefined },
    ],
    [
      "an A record of 5 bytes is no address",
      reply({ answers: [rr([0xc0, 12], 1, 300, [127, 0, 0, 2, 9])] }),
      { kind: "found", addresses: [], ttlSeconds: undefined },
    ],
    [
      "the question in other case is still ours",
      reply({ question: NAME.toUpperCase(), answers: [a("127.0.0.2")] }),
      {
        kind: "found",
        addresses: ["127.0.0.2"],
        ttlSeconds: 300,
      },
    ],
    ["SERVFAIL", reply({ flags: 0x8182 }), { kind: "error", reason: "SERVFAIL" }],
    ["REFUSED", reply({ flags: 0x8185 }), { kind: "error", reason: "REFUSED" }],
    ["an rcode without a name", reply({ flags: 0x8189 }), { kind: "error", reason: "rcode 9" }],
    ["truncated (TC)", reply({ flags: 0x8380, answers: [a("127.0.0.2")] }), {
      kind: "error",
      reason: "truncated answer",
    }],
    ["an answer that runs past the packet", reply({ answers: [a("127.0.0.2")], cut: 45 }), {
      kind: "error",
      reason: "malformed answer",
    }],
    [
      "a compression loop",
      reply({ answers: [rr([0xc0, 50], 1, 300, [127, 0, 0, 2])] }),
      { kind: "error", reason: "malformed answer" },
    ],
    ["another id: not ours", reply({ id: 0x1235, answers: [a("127.0.0.2")] }), undefined],
    ["a query, not an answer (QR clear)", reply({ flags: 0x0100 }), undefined],
    [
      "another question: not ours",
      reply({ question: "3.2.0.192.bl.test", answers: [a("127.0.0.2")] }),
      undefined,
    ],
    ["an AAAA question: not ours", reply({ qtype: 28, answers: [a("127.0.0.2")] }), undefined],
    ["a runt", Uint8Array.from([0x12, 0x34, 0x81]), undefined],
    ["a question cut short", reply({ cut: 20 }), undefined],
  ];
  for (const [name, packet, want] of rows) {
    await t.step(name, () => assert.deepEqual(decodeAnswer(packet, 0x1234, NAME), want));
  }
});

Deno.test("decodeAnswer() never throws or loops on damaged or random packets", () => {
  const good = reply({ answers: [a("127.0.0.2"), a("127.0.0.3")], authority: [soa(300, 60)] });
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (let i = 0; i < 20000; i++) {
    const packet = good.slice(0, Math.floor(random() * (good.length + 1)));
    for (let j = 0; j < 1 + Math.floor(random() * 4); j++) {
      if (packet.length > 0) {
        packet[Math.floor(random() * packet.length)] = Math.floor(random() * 256);
      }
    }
    packet[0] = 0x12; // keep the id, so that the reading goes on past the header
    if (packet.length > 1) packet[1] = 0x34;
    const answer = decodeAnswer(packet, 0x1234, NAME);
    if (answer?.kind === "found") {
      assert.ok(answer.addresses.every((x) => /^\d+\.\d+\.\d+\.\d+$/.test(x)));
    }
  }
  for (let i = 0; i < 2000; i++) {
    const packet = Uint8Array.from(
      { length: Math.floor(random() * 600) },
      () => Math.floor(random() * 256),
    );
    decodeAnswer(packet, (packet[0]! << 8) | (packet[1] ?? 0), NAME);
  }
});
