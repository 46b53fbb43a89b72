import assert from "node:assert/strict";
import {
  arrive,
  depart,
  type Departure,
  EMPTY,
  expiresAt,
  forgive,
  keepAnswers,
  keyOf,
  MAX_ARRIVALS,
  type MemoryConfig,
  type Recall,
  recall,
} from "../src/history.ts";
import { parseIp } from "../src/ip.ts";
import { memoryStore } from "./fixtures/memory_store.ts";
import { STRANGER as NOTHING } from "./fixtures/recall.ts";
import {
  type Change,
  type ClientRecord,
  type ListCache,
  type LiveConn,
  MAX_CACHED_ZONES,
} from "../src/store/store.ts";

/** A realistic clock: records hold absolute times, and 0 + a TTL must not look recent. */
const T0 = Date.UTC(2026, 10, 24, 12, 0, 0);
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** Every TTL different, so that a test can tell which one a result came from. */
const MEM: MemoryConfig = Object.freeze({
  passTtlMs: 24 * HOUR,
  penaltyTtlMs: HOUR,
  strikes: 3,
  boxMs: 10 * MINUTE,
  boxMaxMs: HOUR,
  rate: 5,
  rateStepMs: SECOND,
  rateCapMs: 3 * SECOND,
  maxConns: 0,
  maxRate: 0,
  windowMs: MINUTE,
  liveTtlMs: 20 * MINUTE,
});

const conn = (host: string, pid: number, at = T0): LiveConn => ({ host, pid, start: "4242", at });
const ME = conn("mx1", 100);
const ALIVE = () => true;

/** A record: the empty one with `changes`, deeply frozen so a Change cannot edit it in place. */
function rec(changes: Partial<ClientRecord> = {}): ClientRecord {
  const r = { ...EMPTY, ...changes };
  Object.freeze(r.arrivals);
  r.live.forEach(Object.freeze);
  Object.freeze(r.live);
  return Object.freeze(r);
}

/** Runs a change that must keep a record; checks the expiry it returns against expiresAt(). */
function apply(
  change: Change,
  old: ClientRecord | undefined,
  now: number,
  config = MEM,
): ClientRecord {
  const got = change(old);
  if (!got) assert.fail(`got a deletion, want a record`);
  const want = expiresAt(got.record, config, now);
  assert.equal(got.expiresAt, want, `expiresAt: got ${got.expiresAt}, want ${want}`);
  return got.record;
}

Deno.test("keyOf() is the IPv4 address, or the IPv6 /64", async (t) => {
  const rows: [string, string][] = [
    ["192.0.2.1", "192.0.2.1"],
    ["0.0.0.0", "0.0.0.0"],
    ["255.255.255.255", "255.255.255.255"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:db8::1", "2001:db8::/64"],
    ["2001:DB8:0:1:FFFF:FFFF:FFFF:FFFF", "2001:db8:0:1::/64"],
    ["2001:0db8:000a:0001::5", "2001:db8:a:1::/64"],
    ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff::/64"],
    ["::1", "::/64"],
    ["::", "::/64"],
    ["fe80::1%eth0", "fe80::/64"],
    ["1:0:0:1::1", "1:0:0:1::/64"],
    ["0:0:0:1::1", "0:0:0:1::/64"],
    ["::ffff:192.0.2.1", "192.0.2.1"],
    ["::FFFF:c000:0201", "192.0.2.1"],
    ["0:0:0:0:0:ffff:198.51.100.7", "198.51.100.7"],
  ];
  for (const [text, want] of rows) {
    await t.step(`${text} -> ${want}`, () => {
      const ip = parseIp(text);
      assert.ok(ip, `parseIp(${JSON.stringify(text)}) failed`);
      const got = keyOf(ip);
      assert.equal(got, want, `keyOf(${text}): got ${got}, want ${want}`);
    });
  }
});

Deno.test("keyOf() gives one key to a /64 and different keys to its neighbours", async (t) => {
  const key = (text: string) => keyOf(parseIp(text)!);
  const rows: [string, string, boolean][] = [
    ["2001:db8:0:1::1", "2001:db8:0:1:ffff:ffff:ffff:fffe", true],
    ["2001:db8:0:1::1", "2001:db8:0:1:8000::", true],
    ["2001:db8:0:1::1", "2001:db8:0:2::1", false],
    ["2001:db8:0:1::1", "2001:db8:1:1::1", false],
    ["192.0.2.1", "192.0.2.2", false],
    ["192.0.2.1", "::ffff:192.0.2.1", true],
    ["192.0.2.1", "::192.0.2.1", false], // IPv4-compatible (deprecated) is not mapped
  ];
  for (const [a, b, same] of rows) {
    await t.step(`${a} and ${b}: ${same ? "same" : "different"}`, () => {
      assert.equal(key(a) === key(b), same, `got ${key(a)} and ${key(b)}`);
    });
  }
});

Deno.test("arrive() adds this arrival to the window and this connection to the open ones", async (t) => {
  const a = conn("mx1", 1);
  const b = conn("mx1", 2);
  const dead = conn("mx1", 3);
  const other = conn("mx2", 100); // ME's pid on another host: another connection
  const rows: {
    name: string;
    old: ClientRecord | undefined;
    alive?: (c: LiveConn) => boolean;
    now?: number;
    want: Partial<ClientRecord>;
  }[] = [
    {
      name: "first contact",
      old: undefined,
      want: { arrivals: [T0], live: [ME] },
    },
    {
      name: "arrivals older than the window are pruned (the window's edge is out)",
      old: rec({ arrivals: [T0 - 2 * MINUTE, T0 - MINUTE, T0 - MINUTE + 1, T0 - SECOND] }),
      want: { arrivals: [T0 - MINUTE + 1, T0 - SECOND, T0], live: [ME] },
    },
    {
      name: "arrivals at the same ms are all kept",
      old: rec({ arrivals: [T0, T0] }),
      want: { arrivals: [T0, T0, T0], live: [ME] },
    },
    {
      name: "open connections that are alive stay, in order, this one last",
      old: rec({ live: [a, b] }),
      want: { arrivals: [T0], live: [a, b, ME] },
    },
    {
      name: "the dead are dropped",
      old: rec({ live: [a, dead, b] }),
      alive: (c) => c !== dead,
      want: { arrivals: [T0], live: [a, b, ME] },
    },
    {
      name: "all dead",
      old: rec({ live: [a, dead, b] }),
      alive: () => false,
      want: { arrivals: [T0], live: [ME] },
    },
    {
      name: "an entry with this host and pid is replaced (a reused pid), not counted twice",
      old: rec({ live: [{ ...ME, start: "1", at: T0 - HOUR }, a] }),
      want: { arrivals: [T0], live: [a, ME] },
    },
    {
      name: "the same pid on another host is another connection",
      old: rec({ live: [other] }),
      want: { arrivals: [T0], live: [other, ME] },
    },
    {
      name: "the rest of the record is kept",
      old: rec({
        lastPassAt: T0 - HOUR,
        strikes: 2,
        lastStrikeAt: T0 - MINUTE,
        boxes: 1,
        boxUntil: T0 + MINUTE,
      }),
      want: {
        lastPassAt: T0 - HOUR,
        strikes: 2,
        lastStrikeAt: T0 - MINUTE,
        boxes: 1,
        boxUntil: T0 + MINUTE,
        arrivals: [T0],
        live: [ME],
      },
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const got = apply(arrive(MEM, T0, ME, row.alive ?? ALIVE), row.old, T0);
      assert.deepEqual(got, { ...EMPTY, ...row.want });
    });
  }
});

Deno.test("arrive() asks about the others only, never about this connection", () => {
  const asked: LiveConn[] = [];
  const a = conn("mx1", 1);
  apply(
    arrive(MEM, T0, ME, (c) => (asked.push(c), true)),
    rec({ live: [{ ...ME, start: "1" }, a] }),
    T0,
  );
  assert.deepEqual(asked, [a]);
});

Deno.test("arrive() keeps at most MAX_ARRIVALS arrival times, the newest", async (t) => {
  const rows: [string, number][] = [
    ["one under the cap", MAX_ARRIVALS - 2],
    ["at the cap less one", MAX_ARRIVALS - 1],
    ["at the cap", MAX_ARRIVALS],
    ["over the cap", MAX_ARRIVALS + 500],
  ];
  for (const [name, n] of rows) {
    await t.step(`${name} (${n} before)`, () => {
      const old = Array.from({ length: n }, (_, i) => T0 - n + i); // all within the window
      const got = apply(arrive(MEM, T0, ME, ALIVE), rec({ arrivals: old }), T0).arrivals;
      const want = [...old, T0].slice(-MAX_ARRIVALS);
      assert.equal(got.length, Math.min(n + 1, MAX_ARRIVALS), `got ${got.length} arrivals`);
      assert.deepEqual(got, want);
    });
  }
  assert.equal(MAX_ARRIVALS, 1000);
});

Deno.test("depart() remembers a pass and keeps the connection open", async (t) => {
  const a = conn("mx1", 1);
  const rows: { name: string; old: ClientRecord | undefined; want: ClientRecord }[] = [
    {
      name: "the arrival's record",
      old: rec({ arrivals: [T0 - SECOND], live: [a, ME] }),
      want: rec({ lastPassAt: T0, arrivals: [T0 - SECOND], live: [a, ME] }),
    },
    {
      name: "an older pass is replaced",
      old: rec({ lastPassAt: T0 - HOUR, live: [ME] }),
      want: rec({ lastPassAt: T0, live: [ME] }),
    },
    {
      name: "strikes and box untouched",
      old: rec({ strikes: 2, lastStrikeAt: T0 - MINUTE, boxes: 3, boxUntil: T0 - 1, live: [ME] }),
      want: rec({
        lastPassAt: T0,
        strikes: 2,
        lastStrikeAt: T0 - MINUTE,
        boxes: 3,
        boxUntil: T0 - 1,
        live: [ME],
      }),
    },
    {
      name: "no record (the store forgot it meanwhile)",
      old: undefined,
      want: rec({ lastPassAt: T0 }),
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.deepEqual(apply(depart(MEM, T0, ME, "pass"), row.old, T0), row.want);
    });
  }
});

Deno.test("depart() forgets a connection that is gone, and nothing else", async (t) => {
  const a = conn("mx1", 1);
  const other = conn("mx2", 100);
  const rows: { name: string; old: ClientRecord | undefined; want: ClientRecord }[] = [
    {
      name: "this connection leaves",
      old: rec({ arrivals: [T0], live: [a, ME, other] }),
      want: rec({ arrivals: [T0], live: [a, other] }),
    },
    {
      name: "whatever its start and arrival time (host and pid name it)",
      old: rec({ live: [{ ...ME, start: "9", at: T0 - HOUR }] }),
      want: rec({ live: [] }),
    },
    {
      name: "not in the list: nothing changes",
      old: rec({ live: [a, other] }),
      want: rec({ live: [a, other] }),
    },
    {
      name: "no strike, no pass",
      old: rec({ lastPassAt: T0 - HOUR, strikes: 1, lastStrikeAt: T0 - MINUTE, live: [ME] }),
      want: rec({ lastPassAt: T0 - HOUR, strikes: 1, lastStrikeAt: T0 - MINUTE, live: [] }),
    },
    { name: "no record", old: undefined, want: rec() },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.deepEqual(apply(depart(MEM, T0, ME, "gone"), row.old, T0), row.want);
    });
  }
});

Deno.test("depart() counts an early talker's strikes and boxes the K-th", async (t) => {
  const a = conn("mx1", 1);
  const rows: {
    name: string;
    config?: Partial<MemoryConfig>;
    old: ClientRecord | undefined;
    want: Partial<ClientRecord>;
  }[] = [
    {
      name: "first strike",
      old: undefined,
      want: { strikes: 1, lastStrikeAt: T0 },
    },
    {
      name: "the connection leaves the open list",
      old: rec({ live: [a, ME] }),
      want: { strikes: 1, lastStrikeAt: T0, live: [a] },
    },
    {
      name: "second strike within the penalty TTL",
      old: rec({ strikes: 1, lastStrikeAt: T0 - HOUR + 1 }),
      want: { strikes: 2, lastStrikeAt: T0 },
    },
    {
      name: "the last strike exactly a penalty TTL ago: counting starts over",
      old: rec({ strikes: 2, lastStrikeAt: T0 - HOUR }),
      want: { strikes: 1, lastStrikeAt: T0 },
    },
    {
      name: "the last strike long ago: counting starts over",
      old: rec({ strikes: 2, lastStrikeAt: T0 - 30 * HOUR }),
      want: { strikes: 1, lastStrikeAt: T0 },
    },
    {
      name: "strikes without a time (never recorded): counting starts over",
      old: rec({ strikes: 2 }),
      want: { strikes: 1, lastStrikeAt: T0 },
    },
    {
      name: "the K-th strike: boxed for --box, strikes back to 0",
      old: rec({ strikes: 2, lastStrikeAt: T0 - MINUTE, live: [ME] }),
      want: { strikes: 0, lastStrikeAt: T0, boxes: 1, boxUntil: T0 + 10 * MINUTE },
    },
    {
      name: "the second box doubles",
      old: rec({ strikes: 2, lastStrikeAt: T0 - MINUTE, boxes: 1, boxUntil: T0 - 1 }),
      want: { strikes: 0, lastStrikeAt: T0, boxes: 2, boxUntil: T0 + 20 * MINUTE },
    },
    {
      name: "the third box doubles again",
      old: rec({ strikes: 2, lastStrikeAt: T0 - MINUTE, boxes: 2 }),
      want: { strikes: 0, lastStrikeAt: T0, boxes: 3, boxUntil: T0 + 40 * MINUTE },
    },
    {
      name: "the fourth box is capped at --box-max",
      old: rec({ strikes: 2, lastStrikeAt: T0 - MINUTE, boxes: 3 }),
      want: { strikes: 0, lastStrikeAt: T0, boxes: 4, boxUntil: T0 + HOUR },
    },
    {
      name: "the hundredth box is capped too (no overflow)",
      old: rec({ strikes: 2, lastStrikeAt: T0 - MINUTE, boxes: 99 }),
      want: { strikes: 0, lastStrikeAt: T0, boxes: 100, boxUntil: T0 + HOUR },
    },
    {
      name: "a box shorter than --box-max's cap only when --box-max is smaller",
      config: { boxMs: 2 * HOUR },
      old: rec({ strikes: 2, lastStrikeAt: T0 - MINUTE }),
      want: { strikes: 0, lastStrikeAt: T0, boxes: 1, boxUntil: T0 + HOUR },
    },
    {
      name: "strikes stale but boxes remembered: no box, the count starts over",
      old: rec({ strikes: 2, lastStrikeAt: T0 - 2 * HOUR, boxes: 2 }),
      want: { strikes: 1, lastStrikeAt: T0, boxes: 2 },
    },
    {
      name: "--strikes 1: the first strike boxes",
      config: { strikes: 1 },
      old: undefined,
      want: { strikes: 0, lastStrikeAt: T0, boxes: 1, boxUntil: T0 + 10 * MINUTE },
    },
    {
      name: "--strikes 0: never boxed, strikes keep counting",
      config: { strikes: 0 },
      old: rec({ strikes: 41, lastStrikeAt: T0 - MINUTE }),
      want: { strikes: 42, lastStrikeAt: T0 },
    },
    {
      name: "a strike during a box keeps counting (the box is not shortened)",
      old: rec({ strikes: 0, lastStrikeAt: T0 - MINUTE, boxes: 1, boxUntil: T0 + 5 * MINUTE }),
      want: { strikes: 1, lastStrikeAt: T0, boxes: 1, boxUntil: T0 + 5 * MINUTE },
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const config = { ...MEM, ...row.config };
      const got = apply(depart(config, T0, ME, "early"), row.old, T0, config);
      assert.deepEqual(got, { ...EMPTY, ...row.want });
    });
  }
});

Deno.test("depart() does not edit the record it is given", async (t) => {
  const hows: Departure[] = ["pass", "early", "gone"];
  for (const how of hows) {
    await t.step(how, () => {
      const old = rec({ strikes: 2, lastStrikeAt: T0 - MINUTE, arrivals: [T0], live: [ME] });
      const copy = structuredClone(old);
      apply(depart(MEM, T0, ME, how), old, T0);
      assert.deepEqual(old, copy);
    });
  }
});

Deno.test("recall() says what the record means now", async (t) => {
  const a = conn("mx1", 1);
  const rows: {
    name: string;
    record: Partial<ClientRecord>;
    config?: Partial<MemoryConfig>;
    want: Partial<Recall>;
  }[] = [
    { name: "a first contact", record: {}, want: {} },
    { name: "passed just now", record: { lastPassAt: T0 }, want: { passed: true } },
    {
      name: "passed a pass TTL less 1 ms ago",
      record: { lastPassAt: T0 - 24 * HOUR + 1 },
      want: { passed: true },
    },
    { name: "passed a pass TTL ago: no more", record: { lastPassAt: T0 - 24 * HOUR }, want: {} },
    { name: "passed long ago", record: { lastPassAt: T0 - 48 * HOUR }, want: {} },
    {
      name: "--pass-ttl 0: a pass never counts",
      config: { passTtlMs: 0 },
      record: { lastPassAt: T0 },
      want: {},
    },
    {
      name: "a strike just now",
      record: { strikes: 1, lastStrikeAt: T0 },
      want: { penalised: true },
    },
    {
      name: "a strike a penalty TTL less 1 ms ago",
      record: { strikes: 1, lastStrikeAt: T0 - HOUR + 1 },
      want: { penalised: true },
    },
    {
      name: "a strike a penalty TTL ago: no more",
      record: { strikes: 1, lastStrikeAt: T0 - HOUR },
      want: {},
    },
    {
      name: "penalised after the box too (strikes back to 0)",
      record: { strikes: 0, lastStrikeAt: T0 - MINUTE, boxes: 1, boxUntil: T0 + MINUTE },
      want: { penalised: true, boxUntil: T0 + MINUTE },
    },
    {
      name: "passed and penalised both reported (delayFor picks)",
      record: { lastPassAt: T0 - MINUTE, strikes: 1, lastStrikeAt: T0 - SECOND },
      want: { passed: true, penalised: true },
    },
    { name: "boxed until 1 ms from now", record: { boxUntil: T0 + 1 }, want: { boxUntil: T0 + 1 } },
    { name: "the box ends now", record: { boxUntil: T0 }, want: {} },
    { name: "the box ended", record: { boxUntil: T0 - 1 }, want: {} },
    {
      name: "only arrivals in the window count",
      record: { arrivals: [T0 - 2 * MINUTE, T0 - MINUTE, T0 - MINUTE + 1, T0] },
      want: { arrivals: 2 },
    },
    { name: "no arrival at all", record: { arrivals: [] }, want: { arrivals: 0 } },
    { name: "alone: open 0", record: { live: [ME] }, want: {} },
    { name: "two others open", record: { live: [a, conn("mx2", 5), ME] }, want: { open: 2 } },
    { name: "an empty list (the store lost it): open 0, not -1", record: { live: [] }, want: {} },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const record = rec({ arrivals: [T0], ...row.record });
      const got = recall(record, { ...MEM, ...row.config }, T0);
      assert.deepEqual(got, { ...NOTHING, ...row.want });
    });
  }
});

Deno.test("recall() asks a fast reconnector to wait (arrivals - rate) steps, up to the cap", async (t) => {
  // --rate 5, --rate-step 1 s, --rate-cap 3 s unless the row says otherwise.
  const rows: { arrivals: number; config?: Partial<MemoryConfig>; want: number }[] = [
    { arrivals: 1, want: 0 },
    { arrivals: 4, want: 0 },
    { arrivals: 5, want: 0 },
    { arrivals: 6, want: 1000 },
    { arrivals: 7, want: 2000 },
    { arrivals: 8, want: 3000 },
    { arrivals: 9, want: 3000 },
    { arrivals: 1000, want: 3000 },
    { arrivals: 1000, config: { rate: 0 }, want: 0 },
    { arrivals: 1, config: { rate: 0 }, want: 0 },
    { arrivals: 7, config: { rateStepMs: 250 }, want: 500 },
    { arrivals: 7, config: { rateCapMs: 0 }, want: 0 },
    { arrivals: 2, config: { rate: 1 }, want: 1000 },
  ];
  for (const row of rows) {
    const config = { ...MEM, ...row.config };
    await t.step(
      `${row.arrivals} arrivals, rate ${config.rate} step ${config.rateStepMs} cap ${config.rateCapMs}`,
      () => {
        const arrivals = Array.from({ length: row.arrivals }, (_, i) => T0 - i);
        const got = recall(rec({ arrivals, live: [ME] }), config, T0);
        assert.equal(got.arrivals, row.arrivals, `arrivals: got ${got.arrivals}`);
        assert.equal(got.rateWaitMs, row.want, `got ${got.rateWaitMs} ms, want ${row.want}`);
      },
    );
  }
  await t.step("arrivals outside the window ask for nothing", () => {
    const arrivals = Array.from({ length: 50 }, (_, i) => T0 - MINUTE - i);
    const got = recall(rec({ arrivals: [...arrivals, T0] }), MEM, T0);
    assert.deepEqual([got.arrivals, got.rateWaitMs], [1, 0]);
  });
});

Deno.test("expiresAt() is the latest time anything in the record still counts", async (t) => {
  const rows: { name: string; record: Partial<ClientRecord>; want: number }[] = [
    { name: "only arrivals: the window", record: { arrivals: [T0] }, want: T0 + MINUTE },
    { name: "an empty record: the window", record: {}, want: T0 + MINUTE },
    {
      name: "a pass: the pass TTL",
      record: { lastPassAt: T0 - HOUR },
      want: T0 - HOUR + 24 * HOUR,
    },
    {
      name: "a strike: the penalty TTL",
      record: { strikes: 1, lastStrikeAt: T0 - MINUTE / 2 },
      want: T0 - MINUTE / 2 + HOUR,
    },
    {
      name: "a box longer than the penalty",
      record: { strikes: 0, lastStrikeAt: T0, boxes: 5, boxUntil: T0 + 2 * HOUR },
      want: T0 + 2 * HOUR,
    },
    {
      name: "an open connection: the live TTL",
      record: { live: [conn("mx2", 1, T0 - MINUTE)] },
      want: T0 - MINUTE + 20 * MINUTE,
    },
    {
      name: "the latest open connection",
      record: { live: [conn("mx2", 1, T0 - 5 * MINUTE), conn("mx2", 2, T0 - MINUTE)] },
      want: T0 - MINUTE + 20 * MINUTE,
    },
    {
      name: "the latest of all",
      record: {
        lastPassAt: T0 - 22 * HOUR,
        lastStrikeAt: T0,
        strikes: 1,
        boxUntil: T0 + 30 * MINUTE,
        live: [conn("mx2", 1)],
      },
      want: T0 + 2 * HOUR,
    },
    {
      name: "everything long past: the window from now",
      record: {
        lastPassAt: T0 - 100 * HOUR,
        lastStrikeAt: T0 - 100 * HOUR,
        strikes: 1,
        boxUntil: T0 - 99 * HOUR,
        live: [conn("mx2", 1, T0 - 99 * HOUR)],
      },
      want: T0 + MINUTE,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const got = expiresAt(rec(row.record), MEM, T0);
      assert.equal(
        got,
        row.want,
        `got ${new Date(got).toISOString()}, want ${new Date(row.want).toISOString()}`,
      );
    });
  }
});

Deno.test("forgive() clears pass, strikes and box, and keeps the counts of connections", async (t) => {
  await t.step("no record: nothing to forgive, nothing written", () => {
    assert.equal(forgive(MEM, T0)(undefined), undefined);
  });
  await t.step("a boxed, penalised, passed record", () => {
    const old = rec({
      lastPassAt: T0 - MINUTE,
      strikes: 2,
      lastStrikeAt: T0 - SECOND,
      boxes: 3,
      boxUntil: T0 + HOUR,
      arrivals: [T0 - SECOND, T0],
      live: [ME],
    });
    const got = apply(forgive(MEM, T0), old, T0);
    assert.deepEqual(got, rec({ arrivals: [T0 - SECOND, T0], live: [ME] }));
    const now = recall(got, MEM, T0);
    assert.deepEqual(
      [now.passed, now.penalised, now.boxUntil, now.arrivals],
      [false, false, undefined, 2],
    );
  });
});

Deno.test("a client's story on a store: strikes, a box, a longer box, forgiven", async () => {
  let now = T0;
  const store = memoryStore(() => now);
  const key = "192.0.2.9";
  const early = async () => {
    await store.update(key, arrive(MEM, now, ME, ALIVE));
    await store.update(key, depart(MEM, now, ME, "early"));
    return recall((await store.get(key))!, MEM, now);
  };
  // Three strikes a minute apart: the third boxes for 10 minutes.
  assert.equal((await early()).boxUntil, undefined);
  now += MINUTE;
  assert.equal((await early()).boxUntil, undefined);
  now += MINUTE;
  assert.equal((await early()).boxUntil, now + 10 * MINUTE);
  // Still penalised (the noptr delay) after the box, until the penalty TTL is over.
  now += 11 * MINUTE;
  let r = recall((await store.get(key))!, MEM, now);
  assert.deepEqual([r.boxUntil, r.penalised], [undefined, true]);
  // Three more: the box doubles.
  for (let i = 0; i < 2; i++) {
    assert.equal((await early()).boxUntil, undefined, `strike ${i + 1} of the second round`);
    now += MINUTE;
  }
  assert.equal((await early()).boxUntil, now + 20 * MINUTE);
  // The admin forgives: no box, no penalty; the next strike is a first one.
  await store.update(key, forgive(MEM, now));
  r = recall((await store.get(key))!, MEM, now);
  assert.deepEqual([r.boxUntil, r.penalised], [undefined, false]);
  now += SECOND;
  await early();
  assert.equal((await store.get(key))!.strikes, 1);
  // Left alone for a penalty TTL and a window, the record expires.
  now += HOUR + MINUTE;
  assert.equal(await store.get(key), undefined);
});

Deno.test("keepAnswers() keeps the fresh answers over the old ones of the same address, unexpired", async (t) => {
  const answer = (a: string[], until: number) => ({ a, until });
  const cache = (ip: string, zones: Record<string, { a: string[]; until: number }>) => ({
    ip,
    zones,
  });
  const rows: {
    name: string;
    old: ListCache | undefined;
    fresh: ListCache | undefined;
    want: ListCache | undefined;
  }[] = [
    { name: "nothing", old: undefined, fresh: undefined, want: undefined },
    {
      name: "fresh only",
      old: undefined,
      fresh: cache("192.0.2.7", { "a.test": answer(["127.0.0.2"], T0 + HOUR) }),
      want: cache("192.0.2.7", { "a.test": answer(["127.0.0.2"], T0 + HOUR) }),
    },
    {
      name: "merged by zone, the fresh answer wins",
      old: cache("192.0.2.7", {
        "a.test": answer([], T0 + MINUTE),
        "b.test": answer(["127.0.0.4"], T0 + MINUTE),
      }),
      fresh: cache("192.0.2.7", { "a.test": answer(["127.0.0.2"], T0 + HOUR) }),
      want: cache("192.0.2.7", {
        "a.test": answer(["127.0.0.2"], T0 + HOUR),
        "b.test": answer(["127.0.0.4"], T0 + MINUTE),
      }),
    },
    {
      name: "another address of the /64: the old answers go",
      old: cache("2001:db8::1", { "a.test": answer([], T0 + MINUTE) }),
      fresh: cache("2001:db8::2", { "b.test": answer([], T0 + MINUTE) }),
      want: cache("2001:db8::2", { "b.test": answer([], T0 + MINUTE) }),
    },
    {
      name: "no fresh answers: the old ones stay, the expired go",
      old: cache("192.0.2.7", {
        "a.test": answer([], T0),
        "b.test": answer([], T0 + 1),
      }),
      fresh: undefined,
      want: cache("192.0.2.7", { "b.test": answer([], T0 + 1) }),
    },
    {
      name: "every answer expired: none kept",
      old: cache("192.0.2.7", { "a.test": answer([], T0 - 1) }),
      fresh: undefined,
      want: undefined,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.deepEqual(keepAnswers(row.old, row.fresh, T0), row.want);
    });
  }
  await t.step(`at most ${MAX_CACHED_ZONES} zones, the latest`, () => {
    const zones = Object.fromEntries(
      Array.from({ length: MAX_CACHED_ZONES + 5 }, (_, i) => [`z${i}.test`, answer([], T0 + HOUR)]),
    );
    const kept = keepAnswers(undefined, cache("192.0.2.7", zones), T0)!;
    const names = Object.keys(kept.zones);
    assert.equal(names.length, MAX_CACHED_ZONES);
    assert.equal(names[0], "z5.test");
  });
});

Deno.test("depart() keeps the lists' answers with every departure; an allowed client is no pass", async (t) => {
  const lists = { ip: "192.0.2.7", zones: { "a.test": { a: ["127.0.0.2"], until: T0 + HOUR } } };
  const hows: Departure[] = ["pass", "early", "allowed", "gone"];
  for (const how of hows) {
    await t.step(how, () => {
      const got = apply(depart(MEM, T0, ME, how, lists), rec({ live: [ME] }), T0);
      assert.deepEqual(got.lists, lists);
      assert.equal(got.lastPassAt, how === "pass" ? T0 : undefined);
      assert.equal(got.strikes, how === "early" ? 1 : 0);
      // Handed on at once, it is still open: in the next program.
      assert.deepEqual(got.live, how === "pass" || how === "allowed" ? [ME] : []);
    });
  }
  await t.step("the record lives as long as its answers", () => {
    const later = { ip: "192.0.2.7", zones: { "a.test": { a: [], until: T0 + 2 * 24 * HOUR } } };
    const got = depart(MEM, T0, ME, "gone", later)(rec({ live: [ME] }));
    assert.equal(got?.expiresAt, T0 + 2 * 24 * HOUR);
  });
  await t.step("no answers: none added, the old ones kept", () => {
    const got = apply(depart(MEM, T0, ME, "gone"), rec({ live: [ME], lists }), T0);
    assert.deepEqual(got.lists, lists);
    const none = apply(depart(MEM, T0, ME, "gone"), rec({ live: [ME] }), T0);
    assert.equal("lists" in none, false);
  });
});

Deno.test("recall() gives the lists' answers kept for this very address, unexpired", async (t) => {
  const record = rec({
    lists: {
      ip: "2001:db8::7",
      zones: {
        "a.test": { a: ["127.0.0.2"], until: T0 + 1 },
        "b.test": { a: [], until: T0 },
      },
    },
  });
  await t.step("the same address", () => {
    const got = recall(record, MEM, T0, "2001:db8::7");
    assert.deepEqual([...got.answers], [["a.test", ["127.0.0.2"]]]);
  });
  await t.step("another address of the /64", () => {
    assert.equal(recall(record, MEM, T0, "2001:db8::8").answers.size, 0);
  });
  await t.step("no address given", () => {
    assert.equal(recall(record, MEM, T0).answers.size, 0);
  });
});
