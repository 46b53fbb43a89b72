/**
 * A Listing for real over UDP: ask.ts's socket (through libc, watched by
 * poll on a helper thread, the filter's way) against the fake DNS server of
 * fixtures/fake_dns.ts, which counts the questions it is asked.
 */
import "./fixtures/bind_libc.ts";
import assert from "node:assert/strict";
import { parseIp } from "../src/ip.ts";
import { libc } from "../src/libc.ts";
import { listServer, polled } from "../src/lists/ask.ts";
import { Listing, MAX_CACHE_SECONDS } from "../src/lists/listing.ts";
import type { Answers } from "../src/lists/score.ts";
import { type Lists, makeLists, parseSpecs } from "../src/lists/spec.ts";
import {
  type Answer,
  type FakeDns,
  NXDOMAIN,
  SERVFAIL,
  startFakeDns,
} from "./fixtures/fake_dns.ts";
import { capturingStderr } from "./fixtures/stderr.ts";

const IP = "192.0.2.77";
const REVERSED = "77.2.0.192";

/** Lists of these specs and thresholds. */
const listsOf = (specs: string[], block = 1, allow = -1): Lists =>
  makeLists(parseSpecs(specs, "--dnsbl"), block, allow);

/** `promise`, or a failure after 5 s: a listing that never settles fails its test, not the run. */
async function settled(promise: Promise<void>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      promise,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("the listing never settled")), 5000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The questions of the fake server, as names, in order. */
class Counting extends Map<string, Answer> {
  readonly asked: string[] = [];
  override get(name: string): Answer | undefined {
    this.asked.push(name);
    return super.get(name);
  }
}

interface Setup {
  readonly lists: Lists;
  /** Answers by zone, for IP. */
  readonly answers: Record<string, Answer>;
  readonly cached?: Answers;
  readonly deadlineMs?: number;
  /** Where the queries go instead of the fake server. */
  readonly port?: number;
}

/** Starts a Listing for IP as `setup` says; `body` gets it, the fake server and the clock. */
async function withListing(
  setup: Setup,
  body: (listing: Listing, dns: Counting, wallNow: number) => Promise<void>,
): Promise<string[]> {
  const table = new Counting(
    Object.entries(setup.answers).map(([zone, answer]) => [`${REVERSED}.${zone}`, answer]),
  );
  const dns: FakeDns = await startFakeDns(table);
  const wallNow = 1_700_000_000_000;
  try {
    const { lines } = await capturingStderr(async () => {
      const listing = new Listing({
        lists: setup.lists,
        ip: parseIp(IP)!,
        ipText: IP,
        server: listServer({ ipAddr: "127.0.0.1", port: setup.port ?? dns.server.port }),
        cached: setup.cached,
        libc: libc(),
        follow: polled(libc()),
        deadlineMs: setup.deadlineMs ?? 2000,
        wallNow: () => wallNow,
      });
      try {
        await body(listing, table, wallNow);
      } finally {
        listing.abandon();
        await settled(listing.closed);
      }
    });
    return lines;
  } finally {
    await dns.stop();
  }
}

Deno.test("a listed client: the score decides as the answer comes, and the answer is kept for its TTL", async () => {
  const lines = await withListing({
    lists: listsOf(["bl.test*2", "wl.test*-3"], 2),
    answers: {
      "bl.test": { addresses: ["127.0.0.2"], ttl: 600 },
      "wl.test": { rcode: NXDOMAIN, soaTtl: 90 },
    },
  }, async (listing, dns, wallNow) => {
    await settled(listing.decisive);
    const judged = listing.judge();
    assert.deepEqual([judged.score, judged.hits, judged.verdict], [2, ["bl.test"], "block"]);
    await settled(listing.closed); // both answered: the socket is closed without waiting for the deadline
    assert.deepEqual(dns.asked.sort(), [`${REVERSED}.bl.test`, `${REVERSED}.wl.test`]);
    assert.deepEqual(listing.cache(), {
      ip: IP,
      zones: {
        "bl.test": { a: ["127.0.0.2"], until: wallNow + 600_000 },
        "wl.test": { a: [], until: wallNow + 90_000 },
      },
    });
  });
  assert.deepEqual(lines, []);
});

Deno.test("an allowlisted client: decided as soon as no blocklist can outweigh it", async () => {
  await withListing({
    lists: listsOf(["bl.test", "wl.test*-5"], 1, -3),
    // The blocklist answers late; -5 + 1 = -4 <= -3 whatever it says.
    answers: {
      "wl.test": { addresses: ["127.0.0.3"] },
      "bl.test": { addresses: ["127.0.0.2"], afterMs: 3000 },
    },
  }, async (listing) => {
    const t0 = performance.now();
    await settled(listing.decisive);
    assert.ok(performance.now() - t0 < 1500, "decided before the blocklist answered");
    assert.equal(listing.judge().verdict, "allow");
  });
});

Deno.test("answers in the memory: no question asked, the score known at once", async () => {
  await withListing({
    lists: listsOf(["bl.test", "b2.test"], 2),
    answers: { "b2.test": { addresses: ["127.0.0.2"] } },
    cached: new Map([["bl.test", ["127.0.0.2"]]]),
  }, async (listing, dns) => {
    await settled(listing.decisive);
    assert.equal(listing.judge().verdict, "block");
    await settled(listing.closed);
    assert.deepEqual(dns.asked, [`${REVERSED}.b2.test`]); // only the zone not in the memory
    assert.deepEqual(Object.keys(listing.cache()!.zones), ["b2.test"]); // only what is new
  });
  await withListing({
    lists: listsOf(["bl.test"]),
    answers: {},
    cached: new Map([["bl.test", []]]),
  }, async (listing, dns) => {
    assert.equal(listing.judge().verdict, "none");
    assert.equal(listing.pending, false);
    await settled(listing.decisive); // settled already: nothing to ask
    assert.deepEqual(dns.asked, []);
    assert.equal(listing.cache(), undefined);
  });
  // A listing kept from a client refused before its other zones answered decides alone.
  await withListing({
    lists: listsOf(["bl.test*3", "b2.test", "b3.test"], 3),
    answers: { "b2.test": { addresses: ["127.0.0.2"] }, "b3.test": { rcode: NXDOMAIN } },
    cached: new Map([["bl.test", ["127.0.0.2"]]]),
  }, async (listing, dns) => {
    assert.equal(listing.judge().verdict, "block");
    await settled(listing.closed);
    assert.deepEqual(dns.asked, []);
  });
});

Deno.test("a zone that does not answer in time counts 0, with one warning", async () => {
  const lines = await withListing({
    lists: listsOf(["bl.test", "dead.test*5"], 1),
    answers: { "bl.test": { rcode: NXDOMAIN }, "dead.test": { silent: true } },
    deadlineMs: 300,
  }, async (listing) => {
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(listing.pending, true);
    const judged = listing.finish();
    assert.deepEqual([judged.score, judged.verdict], [0, "none"]);
    assert.equal(listing.finish(), judged); // once
    assert.equal(listing.cache(), undefined); // NXDOMAIN without an SOA has no TTL to keep
  });
  assert.deepEqual(lines, [`smtp-delay: warning: unable to ask dead.test about ${IP}: timed out`]);
});

Deno.test("a zone that fails counts 0 at once, with one warning, and is not kept", async () => {
  const lines = await withListing({
    lists: listsOf(["bl.test", "broken.test"]),
    answers: { "bl.test": { addresses: ["127.0.0.2"] }, "broken.test": { rcode: SERVFAIL } },
  }, async (listing) => {
    await settled(listing.decisive);
    await settled(listing.closed);
    assert.equal(listing.judge().verdict, "block");
    assert.deepEqual(Object.keys(listing.cache()!.zones), ["bl.test"]);
  });
  assert.deepEqual(lines, [`smtp-delay: warning: unable to ask broken.test about ${IP}: SERVFAIL`]);
});

Deno.test("no name server there: every zone fails at once (ICMP), never a hang", async () => {
  const closed = await startFakeDns(new Map());
  const port = closed.server.port;
  await closed.stop();
  const t0 = performance.now();
  const lines = await withListing(
    { lists: listsOf(["a.test", "b.test"]), answers: {}, port },
    async (listing) => {
      await settled(listing.decisive);
      assert.equal(listing.pending, false);
      assert.deepEqual(listing.judge().verdict, "none");
    },
  );
  assert.ok(performance.now() - t0 < 1500);
  assert.equal(lines.length, 2);
  assert.match(
    lines[0]!,
    /^smtp-delay: warning: unable to ask [ab]\.test about 192\.0\.2\.77: unable to (send|receive): Connection refused$/,
  );
});

Deno.test("an answer that is no listing says so once, and counts nothing", async () => {
  const lines = await withListing({
    lists: listsOf(["zen.test"]),
    answers: { "zen.test": { addresses: ["127.255.255.254"] } },
  }, async (listing) => {
    await settled(listing.closed);
    assert.deepEqual([listing.judge().score, listing.judge().verdict], [0, "none"]);
  });
  assert.deepEqual(lines, [
    `smtp-delay: warning: unable to use zen.test's answer for ${IP}: 127.255.255.254 is not a listing`,
  ]);
});

Deno.test("a TTL longer than an hour is kept an hour; a TTL of 0 is not kept", async () => {
  await withListing({
    lists: listsOf(["bl.test", "zero.test"], 5),
    answers: {
      "bl.test": { addresses: ["127.0.0.2"], ttl: 86400 },
      "zero.test": { addresses: ["127.0.0.2"], ttl: 0 },
    },
  }, async (listing, _dns, wallNow) => {
    await settled(listing.closed);
    assert.deepEqual(listing.cache(), {
      ip: IP,
      zones: { "bl.test": { a: ["127.0.0.2"], until: wallNow + MAX_CACHE_SECONDS * 1000 } },
    });
  });
});

Deno.test("listServer(): SMTPDELAY_DNS, else resolv.conf's first nameserver, else 127.0.0.1", () => {
  const text = (server: { ip: { bytes: Uint8Array }; port: number }) =>
    `${[...server.ip.bytes].join(".")}:${server.port}`;
  assert.equal(
    text(listServer({ ipAddr: "192.0.2.53", port: 5353 }, "nameserver 10.0.0.1")),
    "192.0.2.53:5353",
  );
  assert.equal(
    text(listServer(undefined, "# x\nsearch example\nnameserver 10.0.0.9\nnameserver 10.0.0.1\n")),
    "10.0.0.9:53",
  );
  assert.equal(text(listServer(undefined, "  nameserver\t10.1.2.3  \n")), "10.1.2.3:53");
  assert.equal(text(listServer(undefined, "nameserver bogus\n")), "127.0.0.1:53");
  assert.equal(text(listServer(undefined, "")), "127.0.0.1:53");
  assert.equal(listServer(undefined, "nameserver 2001:db8::53").ip.family, 6);
});
