/**
 * screen() end to end with fakes: a scripted client (its Watch and the hold,
 * on a clock the test moves), a fake memory, and a real PTR lookup against
 * the fake DNS server of fixtures/fake_dns.ts, which counts the questions it
 * is asked. Then what the hand-off and the log take from a Screened:
 * outcomeOf, exportsOf, departureOf, recordDeparture (src/act.ts).
 */
import "./fixtures/bind_libc.ts";
import assert from "node:assert/strict";
import { readClient } from "../src/client.ts";
import { type Config, parseConfig } from "../src/config.ts";
import type { Verdict } from "../src/decide.ts";
import type { Departure, Recall } from "../src/history.ts";
import type { Outcome } from "../src/log.ts";
import type { Lookup } from "../src/rdns.ts";
import type { Memory } from "../src/remember.ts";
import { DEFAULT_REPLY } from "../src/lists/spec.ts";
import { BOXED_TEXT, BUSY_TEXT, EARLY_TEXT, REFUSED_TEXT } from "../src/reply.ts";
import { departureOf, exportsOf, outcomeOf, recordDeparture } from "../src/act.ts";
import { libc } from "../src/libc.ts";
import { loadExemptions, screen, type Screened } from "../src/screen.ts";
import type { Watch, Watched } from "../src/watch.ts";
import { type Answer, type FakeDns, reverse4, startFakeDns } from "./fixtures/fake_dns.ts";
import { STRANGER } from "./fixtures/recall.ts";
import { capturingStderr } from "./fixtures/stderr.ts";

// ---------------------------------------------------------------------------
// The fakes.

/** The clock the screening reads: only the fake client and the fake memory move it. */
class Clock {
  ms = 1_000_000;
  readonly read = () => this.ms;
}

/** What the client does, counted from the start of the screening. */
type Act =
  | { kind: "quiet" }
  | { kind: "early"; afterMs: number; bytes: number }
  | { kind: "closed"; afterMs: number };

const QUIET: Act = { kind: "quiet" };
const TALKS_AT_ONCE: Act = { kind: "early", afterMs: 0, bytes: 6 };

/**
 * A client: its Watch and the hold. The hold (the delay) runs on the test's
 * clock, at once; waitAsync (raced with the DNS lookup) runs on real timers
 * too, so that a lookup can be outrun, and moves the clock by as much.
 */
class FakeClient {
  readonly holds: number[] = [];
  private readonly start: number;
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(
    private readonly clock: Clock,
    private readonly act: Act,
    /** How much longer than asked the hold lasts (poll's rounding). */
    private readonly overshootMs: number,
  ) {
    this.start = clock.ms;
  }

  /** What the client has done by now. */
  private seen(): Watched {
    const act = this.act;
    if (act.kind === "quiet" || this.clock.ms - this.start < act.afterMs) return { kind: "quiet" };
    return act.kind === "early"
      ? { kind: "early", bytes: act.bytes, afterMs: act.afterMs }
      : { kind: "closed", afterMs: act.afterMs };
  }

  /** When (ms from now) the client acts within `ms`, or undefined. */
  private actsWithin(ms: number): number | undefined {
    if (this.act.kind === "quiet") return undefined;
    const inMs = Math.max(0, this.act.afterMs - (this.clock.ms - this.start));
    return inMs <= ms ? inMs : undefined;
  }

  /** Moves the clock by `ms`, or to the client's act if it comes first. */
  private pass(ms: number): Watched {
    this.clock.ms += this.actsWithin(ms) ?? ms;
    return this.seen();
  }

  readonly watch: Watch = {
    waitSync: (ms) => this.pass(Math.max(0, ms)),
    waitAsync: (ms) =>
      new Promise((resolve) => {
        const wakeMs = this.actsWithin(ms) ?? ms;
        const id = setTimeout(() => {
          this.timers.delete(id);
          resolve(this.pass(wakeMs));
        }, wakeMs);
        this.timers.add(id);
      }),
  };

  /**
   * The hold. With `until` (the lists still asked), it waits for real, as
   * long as `ms` or until `until` resolves, and moves the clock by as much:
   * the lists' answers come from a real (fake) DNS server.
   */
  readonly hold = async (ms: number, until?: Promise<unknown>): Promise<Watched> => {
    this.holds.push(ms);
    if (this.actsWithin(Math.max(0, ms)) !== undefined) return this.pass(ms);
    if (until) {
      const began = performance.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const first = await Promise.race([
        until.then(() => "until" as const),
        new Promise<"time">((resolve) => timer = setTimeout(() => resolve("time"), ms)),
      ]);
      clearTimeout(timer);
      if (first === "until") {
        this.clock.ms += Math.min(ms, Math.ceil(performance.now() - began));
        return this.seen();
      }
    }
    this.clock.ms += Math.max(0, ms) + this.overshootMs;
    return this.seen();
  };

  /** The pauses (--action ignore: the rest of a delay after the client acted). */
  readonly pauses: number[] = [];
  readonly pause = (ms: number): Promise<void> => {
    this.pauses.push(ms);
    this.clock.ms += Math.max(0, ms);
    return Promise.resolve();
  };

  /** What was written to the client (the teaser). */
  readonly sent: string[] = [];
  readonly send = (text: string): void => {
    this.sent.push(text);
  };

  /** Ends the timers a lookup that was answered first left running. */
  stop(): void {
    for (const id of this.timers) clearTimeout(id);
    this.timers.clear();
  }
}

/** What the fake memory says: off, down, or on with a recall (a stranger's, with changes). */
type Remembers = "off" | { down: string } | Partial<Recall>;

// ---------------------------------------------------------------------------
// The DNS server, counting what it is asked.

/** The answers, noting each question asked (the fake server looks every name up once). */
class CountingAnswers extends Map<string, Answer> {
  /** Everything that happened, in order: `dns NAME` here, `remember` in the fake memory. */
  events: string[] = [];
  override get(name: string): Answer | undefined {
    this.events.push(`dns ${name}`);
    return super.get(name);
  }
}

const PTR_IP = "192.0.2.10";
const PTR_NAME = "mail.example.net";
const DYNAMIC_IP = "192.0.2.11";
const DYNAMIC_NAME = "dsl-192-0-2-11.pool.example.net";
const NXDOMAIN_IP = "192.0.2.12";
const SILENT_IP = "192.0.2.13";
const TRUSTED_IP = "192.0.2.14";
const TRUSTED_NAME = "mx7.trusted.example";
const ODD_IP = "192.0.2.15";
const ALLOWED_NET_IP = "198.51.100.7";
/** PTR_IP's reversed octets, as the lists are asked about it. */
const LISTED_NAME = "10.2.0.192";

function answers(): CountingAnswers {
  return new CountingAnswers([
    [reverse4(PTR_IP), { names: [`${PTR_NAME}.`] }],
    [reverse4(DYNAMIC_IP), { names: [`${DYNAMIC_NAME}.`] }],
    [reverse4(SILENT_IP), { silent: true }],
    [reverse4(TRUSTED_IP), { names: [`${TRUSTED_NAME}.`] }],
    // A newline, a space and a byte over 127 in the name, as the DNS may send them.
    [reverse4(ODD_IP), { names: [["Mail\nX", "caf\xe9 bar", "example", "net"]] }],
    // 198.51.100.7 has a name: a lookup there would be answered, and counted.
    [reverse4(ALLOWED_NET_IP), { names: ["relay.partner.example."] }],
    // The lists: 192.0.2.10 is on bl.test (twice) and wl.test; dead.test never answers.
    [`${LISTED_NAME}.bl.test`, { addresses: ["127.0.0.2", "127.0.0.4"], ttl: 300 }],
    [`${LISTED_NAME}.wl.test`, { addresses: ["127.0.0.5"], ttl: 300 }],
    [`${LISTED_NAME}.dead.test`, { silent: true }],
    // Anything else: NXDOMAIN.
  ]);
}

/** Runs `body` with a counting fake DNS server. */
async function withDns(body: (dns: Dns) => Promise<void>): Promise<void> {
  const table = answers();
  const server = await startFakeDns(table);
  try {
    await body({ server, table });
  } finally {
    await server.stop();
  }
}

interface Dns {
  readonly server: FakeDns;
  readonly table: CountingAnswers;
}

// ---------------------------------------------------------------------------
// One screening.

const ALLOWLIST = `# the allowlist of these tests
${ALLOWED_NET_IP}
203.0.113.0/24
.trusted.example
`;

const ALLOWLIST_NETS_ONLY = `${ALLOWED_NET_IP}\n203.0.113.0/24\n`;

interface Case {
  /** Options before the program (qmail-smtpd); -d 2 -D 16 -P 26 unless given. */
  readonly args?: readonly string[];
  /** The connection's environment: TCPREMOTEIP (192.0.2.10 unless given), TCPREMOTEHOST, ... */
  readonly env?: Readonly<Record<string, string>>;
  readonly allow?: string;
  readonly act?: Act;
  /** What remember() gives; a stranger's memory unless given. */
  readonly memory?: Remembers;
  /** How long opening the memory takes, on the test's clock. */
  readonly memoryMs?: number;
  readonly overshootMs?: number;
  readonly looked?: Lookup;
  readonly patterns?: RegExp[];
  readonly roll?: number;
}

interface Run {
  readonly screened: Screened;
  /** How many times the memory was opened. */
  readonly remembered: number;
  /** What the memory's depart() was given (through recordDeparture()). */
  readonly departs: Departure[];
  /** The client's holds: how long each was asked to wait. */
  readonly holds: number[];
  /** The pauses after the client acted (--action ignore). */
  readonly pauses: number[];
  /** What was written to the client (the teaser). */
  readonly sent: string[];
  /** The PTR questions for the client's address. */
  readonly asked: number;
  /** The DNS questions and the memory's opening, in order. */
  readonly events: string[];
  /** Lines written to stderr meanwhile. */
  readonly logged: string[];
  /** Real time the screening took. */
  readonly realMs: number;
}

const DELAYS = ["-d", "2", "-D", "16", "-P", "26"];

/** A Config as the command line and environment give it. */
function configOf(args: readonly string[], env: Record<string, string>): Config {
  const request = parseConfig([...args, "qmail-smtpd"], env);
  if (request.kind !== "run") throw new Error(`parseConfig(${args.join(" ")}) did not ask to run`);
  return request.config;
}

/** An allowlist file's exemptions, as main loads them. */
async function exemptionsOf(text: string | undefined) {
  if (text === undefined) return undefined;
  const path = await Deno.makeTempFile({ prefix: "smtp-delay-allow-" });
  try {
    await Deno.writeTextFile(path, text);
    return await loadExemptions(path);
  } finally {
    await Deno.remove(path);
  }
}

/** Screens one connection as `c` describes it, then records its departure as main does. */
async function run(dns: Dns, c: Case): Promise<Run> {
  const env: Record<string, string> = {
    TCPREMOTEIP: PTR_IP,
    SMTPDELAY_DNS: dns.server.address,
    ...c.env,
  };
  const config = configOf(c.args ?? DELAYS, env);
  const client = readClient(env);
  const allow = await exemptionsOf(c.allow);
  const clock = new Clock();
  const fake = new FakeClient(clock, c.act ?? QUIET, c.overshootMs ?? 0);
  const events: string[] = [];
  dns.table.events = events;
  const departs: Departure[] = [];
  let remembered = 0;
  const remember = (): Promise<Memory> => {
    remembered++;
    events.push("remember");
    clock.ms += c.memoryMs ?? 0;
    const says = c.memory ?? {};
    if (says === "off") return Promise.resolve({ kind: "off" });
    if ("down" in says) return Promise.resolve({ kind: "down", reason: says.down });
    return Promise.resolve({
      kind: "on",
      remembered: {
        recalled: { ...STRANGER, ...says },
        depart(how: Departure) {
          departs.push(how);
          return Promise.resolve(undefined);
        },
      },
    });
  };
  const began = performance.now();
  try {
    const { value: screened, lines } = await capturingStderr(async () => {
      const screened = await screen({
        config,
        client,
        relayClient: env.RELAYCLIENT !== undefined,
        patterns: c.patterns,
        allow,
        watcher: fake.watch,
        hold: fake.hold,
        pause: fake.pause,
        send: fake.send,
        remember,
        now: clock.read,
        roll: c.roll ?? 50,
        asker: { libc: libc() },
        ...(c.looked ? { looked: c.looked } : {}),
      });
      await recordDeparture(screened.memory, departureOf(screened.verdict));
      return screened;
    });
    const asked = events.filter((e) => e === `dns ${reverse4(client.ipText)}`).length;
    return {
      screened,
      remembered,
      departs,
      holds: fake.holds,
      pauses: fake.pauses,
      sent: fake.sent,
      asked,
      events,
      logged: lines,
      realMs: performance.now() - began,
    };
  } finally {
    fake.stop();
  }
}

/** What a row expects: some fields of the Screened and of the Run. */
type Want = Partial<Screened> & Partial<Omit<Run, "screened">>;

/** Checks each field of `want` against `got`, naming the field that differs. */
function expect(got: Run, want: Want): void {
  const fields = { ...got.screened, ...got } as unknown as Record<string, unknown>;
  for (const [field, value] of Object.entries(want)) {
    assert.deepEqual(
      fields[field],
      value,
      `${field}: got ${JSON.stringify(fields[field])}, want ${JSON.stringify(value)}`,
    );
  }
}

interface Row {
  readonly name: string;
  readonly c: Case;
  readonly want: Want;
}

async function table(t: Deno.TestContext, rows: readonly Row[]): Promise<void> {
  await withDns(async (dns) => {
    for (const row of rows) {
      await t.step(row.name, async () => expect(await run(dns, row.c), row.want));
    }
  });
}

// ---------------------------------------------------------------------------
// Verdicts.

const PASS: Verdict = { kind: "pass", event: "pass", rblsmtpd: undefined };
const PASS_JUSTDELAY: Verdict = { kind: "pass", event: "pass", rblsmtpd: "" };
const REPLY_451: Verdict = { kind: "reply", event: "early", reply: `451 ${EARLY_TEXT}\r\n` };
const PASS_EARLY: Verdict = { kind: "pass", event: "early", rblsmtpd: EARLY_TEXT };
const DROP: Verdict = { kind: "drop", event: "closed" };
const REPLY_BOX: Verdict = {
  kind: "reply",
  event: "refused",
  reply: `421 ${BOXED_TEXT}\r\n`,
  refusal: "box",
};

const S = [...DELAYS, "-S"];

// ---------------------------------------------------------------------------
// Exemptions.

/** What every exempt client gets: handed on at once, no memory, no lookup. */
const EXEMPT: Want = {
  verdict: PASS,
  notes: "exempt",
  delayMs: 0,
  waitedMs: 0,
  tier: undefined,
  name: undefined,
  lookup: "unneeded",
  remembered: 0,
  asked: 0,
  holds: [],
  departs: [],
};

Deno.test("screen() hands an exempt client on at once, without memory or lookup", async (t) => {
  await table(t, [
    { name: "RELAYCLIENT", c: { args: S, env: { RELAYCLIENT: "" } }, want: EXEMPT },
    {
      name: "an address of the allowlist",
      c: { args: S, env: { TCPREMOTEIP: ALLOWED_NET_IP }, allow: ALLOWLIST },
      want: EXEMPT,
    },
    {
      name: "an address in a CIDR of the allowlist",
      c: { args: S, env: { TCPREMOTEIP: "203.0.113.77" }, allow: ALLOWLIST_NETS_ONLY },
      want: EXEMPT,
    },
    {
      name: "a name under an allowed suffix, from TCPREMOTEHOST",
      c: { args: S, env: { TCPREMOTEHOST: "MX1.Trusted.Example." }, allow: ALLOWLIST },
      want: EXEMPT,
    },
    {
      name: "RELAYCLIENT spares even a boxed client the memory",
      c: { args: S, env: { RELAYCLIENT: "" }, memory: { boxUntil: 2e12 } },
      want: EXEMPT,
    },
    {
      name: "an exempt client that talks at once is still handed on",
      c: { args: S, env: { RELAYCLIENT: "" }, act: TALKS_AT_ONCE },
      want: EXEMPT,
    },
    {
      name: "under JUSTDELAY, with RBLSMTPD empty",
      c: { args: S, env: { RELAYCLIENT: "", SMTPDELAY: "JUSTDELAY" } },
      want: { ...EXEMPT, verdict: PASS_JUSTDELAY },
    },
    {
      name: "an exempt client that hung up is dropped, still without memory",
      c: { args: S, env: { RELAYCLIENT: "" }, act: { kind: "closed", afterMs: 0 } },
      want: { ...EXEMPT, verdict: DROP },
    },
  ]);
});

Deno.test("screen() of a client the allowlist does not name is screened as usual", async (t) => {
  await table(t, [
    {
      name: "an address outside the allowlist's networks",
      c: { args: S, env: { TCPREMOTEIP: PTR_IP }, allow: ALLOWLIST_NETS_ONLY },
      want: { verdict: PASS, notes: "", delayMs: 2000, lookup: "found", remembered: 1, asked: 1 },
    },
    {
      name: "TCPREMOTEHOST outside the suffixes: the memory opens at once, no lookup",
      c: { args: S, env: { TCPREMOTEHOST: "mail.untrusted.example" }, allow: ALLOWLIST },
      want: {
        verdict: PASS,
        lookup: "host",
        tier: "ptr",
        remembered: 1,
        asked: 0,
        events: ["remember"],
      },
    },
  ]);
});

Deno.test("screen() with rDNS suffixes in the allowlist looks the name up before the memory", async (t) => {
  await table(t, [
    {
      name: "a name under an allowed suffix: exempt, the memory never opened",
      c: {
        args: S,
        env: { TCPREMOTEIP: TRUSTED_IP },
        allow: ALLOWLIST,
        memory: { boxUntil: 2e12 },
      },
      want: {
        verdict: PASS,
        notes: "exempt",
        delayMs: 0,
        lookup: "found",
        name: TRUSTED_NAME,
        remembered: 0,
        asked: 1,
        holds: [],
        departs: [],
      },
    },
    {
      name: "a name not allowed: the memory opens after the lookup",
      c: { args: S, env: { TCPREMOTEIP: PTR_IP }, allow: ALLOWLIST },
      want: {
        verdict: PASS,
        notes: "",
        tier: "ptr",
        lookup: "found",
        delayMs: 2000,
        remembered: 1,
        events: [`dns ${reverse4(PTR_IP)}`, "remember"],
        departs: ["pass"],
      },
    },
    {
      name: "no name: the memory opens after the lookup",
      c: { args: S, env: { TCPREMOTEIP: NXDOMAIN_IP }, allow: ALLOWLIST },
      want: {
        verdict: PASS,
        tier: "noptr",
        lookup: "none",
        delayMs: 26000,
        events: [`dns ${reverse4(NXDOMAIN_IP)}`, "remember"],
      },
    },
    {
      name: "a boxed client not allowed: the box, after the lookup",
      c: { args: S, env: { TCPREMOTEIP: PTR_IP }, allow: ALLOWLIST, memory: { boxUntil: 2e12 } },
      want: {
        verdict: REPLY_BOX,
        notes: "box",
        lookup: "found",
        remembered: 1,
        events: [`dns ${reverse4(PTR_IP)}`, "remember"],
        holds: [],
        departs: ["gone"],
      },
    },
    {
      name: "a client that talks during the lookup: the memory opens, the strike counts",
      c: {
        args: S,
        env: { TCPREMOTEIP: SILENT_IP },
        allow: ALLOWLIST,
        act: { kind: "early", afterMs: 10, bytes: 4 },
      },
      want: {
        verdict: REPLY_451,
        lookup: "pending",
        tier: undefined,
        remembered: 1,
        departs: ["early"],
      },
    },
  ]);
});

// ---------------------------------------------------------------------------
// The memory off and down.

Deno.test("screen() without a store (--store none) never opens the memory", async (t) => {
  await table(t, [
    {
      name: "a ptr client gets -d, memory=off",
      c: { args: [...S, "--store", "none"], memory: { penalised: true } },
      want: {
        verdict: PASS,
        notes: "off",
        tier: "ptr",
        delayMs: 2000,
        remembered: 0,
        departs: [],
        memory: { kind: "off" },
      },
    },
    {
      name: "SMTPDELAY_STORE=none from tcprules, for one client",
      c: { args: S, env: { SMTPDELAY_STORE: "none" }, memory: { boxUntil: 2e12 } },
      want: { verdict: PASS, notes: "off", remembered: 0 },
    },
  ]);
});

Deno.test("screen() treats a client as a stranger when the memory is down, and says why", async (t) => {
  const reason = "sqlite /var/lib/smtp-delay/state.db: unable to update: database is locked";
  await table(t, [
    {
      name: "a dynamic client gets -D, memory=down, one warning",
      c: { args: S, env: { TCPREMOTEIP: DYNAMIC_IP }, memory: { down: reason } },
      want: {
        verdict: PASS,
        notes: "down",
        tier: "dynamic",
        delayMs: 16000,
        holds: [16000],
        remembered: 1,
        memory: { kind: "down", reason },
        logged: [`smtp-delay: warning: going on without memory: ${reason}`],
      },
    },
    {
      name: "an early talker is still answered 451 (and nothing is recorded)",
      c: { args: S, memory: { down: reason }, act: { kind: "early", afterMs: 500, bytes: 4 } },
      want: {
        verdict: REPLY_451,
        notes: "down",
        departs: [],
        logged: [`smtp-delay: warning: going on without memory: ${reason}`],
      },
    },
    {
      name: "the memory that said off: memory=off, no warning",
      c: { args: S, memory: "off" },
      want: { verdict: PASS, notes: "off", remembered: 1, logged: [] },
    },
  ]);
});

// ---------------------------------------------------------------------------
// The box and the limits.

/** A client the memory turns away on arrival: no lookup, no tier, no delay, no hold. */
const TURNED_AWAY: Want = {
  lookup: "unneeded",
  tier: undefined,
  name: undefined,
  delayMs: undefined,
  waitedMs: 0,
  asked: 0,
  holds: [],
  remembered: 1,
  departs: ["gone"],
};

Deno.test("screen() refuses a boxed or over-limit client before any lookup", async (t) => {
  const boxed = { boxUntil: 2e12 };
  await table(t, [
    {
      name: "the box, with -S: 421",
      c: { args: S, memory: boxed },
      want: { ...TURNED_AWAY, verdict: REPLY_BOX, notes: "box" },
    },
    {
      name: "the box, without -S: RBLSMTPD",
      c: { args: DELAYS, memory: boxed },
      want: {
        ...TURNED_AWAY,
        verdict: { kind: "pass", event: "refused", rblsmtpd: BOXED_TEXT, refusal: "box" },
        notes: "box",
      },
    },
    {
      name: "a boxed client that talks at once gets the box's 421, not 451, and no strike",
      c: { args: S, memory: boxed, act: TALKS_AT_ONCE },
      want: { ...TURNED_AWAY, verdict: REPLY_BOX, notes: "box" },
    },
    {
      name: "a boxed client with a dynamic name: still no lookup",
      c: { args: S, env: { TCPREMOTEIP: DYNAMIC_IP }, memory: boxed },
      want: { ...TURNED_AWAY, verdict: REPLY_BOX, notes: "box" },
    },
    {
      name: "--max-conns 2 with 2 open",
      c: { args: [...S, "--max-conns", "2"], memory: { open: 2 } },
      want: {
        ...TURNED_AWAY,
        verdict: {
          kind: "reply",
          event: "refused",
          reply: `421 ${BUSY_TEXT}\r\n`,
          refusal: "conns",
        },
        notes: "conns",
      },
    },
    {
      name: "--max-rate 5 with 6 arrivals",
      c: { args: [...S, "--max-rate", "5"], memory: { arrivals: 6 } },
      want: {
        ...TURNED_AWAY,
        verdict: {
          kind: "reply",
          event: "refused",
          reply: `421 ${BUSY_TEXT}\r\n`,
          refusal: "maxrate",
        },
        notes: "maxrate",
      },
    },
    {
      name: "--max-conns 2 with 1 open: looked up and passed",
      c: { args: [...S, "--max-conns", "2"], memory: { open: 1 } },
      want: { verdict: PASS, notes: "", lookup: "found", asked: 1, holds: [2000] },
    },
    {
      name: "a box that has run out (boxUntil undefined): looked up and passed",
      c: { args: S, memory: { boxUntil: undefined, penalised: true } },
      want: { verdict: PASS, notes: "penalty", lookup: "found", asked: 1, delayMs: 26000 },
    },
  ]);
});

// ---------------------------------------------------------------------------
// The lookup, raced with the client.

Deno.test("screen() acts on a client that talks during the lookup, long before -t", async (t) => {
  const early: Act = { kind: "early", afterMs: 20, bytes: 8 };
  const rows: Row[] = [
    {
      name: "with -S: 451",
      c: { args: S, env: { TCPREMOTEIP: SILENT_IP }, act: early },
      want: { verdict: REPLY_451, departs: ["early"] },
    },
    {
      name: "without -S: RBLSMTPD for rblsmtpd",
      c: { args: DELAYS, env: { TCPREMOTEIP: SILENT_IP }, act: early },
      want: { verdict: PASS_EARLY, departs: ["early"] },
    },
    {
      name: "a client that hangs up: dropped",
      c: { args: S, env: { TCPREMOTEIP: SILENT_IP }, act: { kind: "closed", afterMs: 20 } },
      want: { verdict: DROP, departs: ["gone"] },
    },
  ];
  await withDns(async (dns) => {
    for (const row of rows) {
      await t.step(row.name, async () => {
        const got = await run(dns, row.c);
        expect(got, {
          ...row.want,
          lookup: "pending",
          tier: undefined,
          name: undefined,
          delayMs: undefined,
          waitedMs: 20,
          holds: [],
          notes: "",
        });
        assert.ok(got.asked >= 1, `asked: got ${got.asked} PTR questions, want the lookup started`);
        // -t is 5 s: the verdict came as soon as the client acted, not at the deadline.
        assert.ok(got.realMs < 1000, `took ${got.realMs.toFixed(0)} ms, want well under -t (5 s)`);
      });
    }
  });
});

Deno.test("screen() gives up the lookup at -t, or at -P, and counts it as no name", async (t) => {
  const warning = `smtp-delay: warning: unable to look up the PTR of ${SILENT_IP}: timed out`;
  await table(t, [
    {
      name: "-t 0.03: a timeout, the noptr delay counted from the start",
      c: { args: [...S, "-t", "0.03"], env: { TCPREMOTEIP: SILENT_IP } },
      want: {
        verdict: PASS,
        lookup: "timeout",
        tier: "noptr",
        delayMs: 26000,
        holds: [26000 - 30],
        waitedMs: 26000,
        logged: [warning],
      },
    },
    {
      name: "-P 0.03 under -t 5: the lookup ends with the noptr delay",
      c: { args: ["-S", "-P", "0.03"], env: { TCPREMOTEIP: SILENT_IP } },
      want: { verdict: PASS, lookup: "timeout", tier: "noptr", delayMs: 30, logged: [warning] },
    },
    {
      name: "-N 100 never refuses a client whose lookup failed",
      c: { args: [...S, "-t", "0.03", "-N", "100"], env: { TCPREMOTEIP: SILENT_IP }, roll: 0 },
      want: { verdict: PASS, lookup: "timeout", tier: "noptr" },
    },
    {
      name: "-t 0: no lookup at all (skipped)",
      c: { args: [...S, "-t", "0"], env: { TCPREMOTEIP: PTR_IP } },
      want: { verdict: PASS, lookup: "skipped", tier: "noptr", asked: 0, logged: [] },
    },
  ]);
});

// ---------------------------------------------------------------------------
// The delay.

Deno.test("screen() holds a client for its tier's delay, as the memory adjusts it", async (t) => {
  await table(t, [
    {
      name: "a name: -d",
      c: { args: S },
      want: {
        verdict: PASS,
        tier: "ptr",
        name: PTR_NAME,
        lookup: "found",
        delayMs: 2000,
        holds: [2000],
        waitedMs: 2000,
        notes: "",
        departs: ["pass"],
      },
    },
    {
      name: "a dynamic name: -D",
      c: { args: S, env: { TCPREMOTEIP: DYNAMIC_IP } },
      want: { verdict: PASS, tier: "dynamic", name: DYNAMIC_NAME, delayMs: 16000, holds: [16000] },
    },
    {
      name: "no PTR: -P",
      c: { args: S, env: { TCPREMOTEIP: NXDOMAIN_IP } },
      want: { verdict: PASS, tier: "noptr", name: undefined, lookup: "none", delayMs: 26000 },
    },
    {
      name: "TCPREMOTEHOST: its name, no lookup",
      c: { args: S, env: { TCPREMOTEHOST: "Cable-7.Example.ORG." } },
      want: {
        tier: "dynamic",
        name: "cable-7.example.org",
        lookup: "host",
        delayMs: 16000,
        asked: 0,
      },
    },
    {
      name: "serve's own lookup (looked) that found no name: not asked again",
      c: { args: S, looked: { kind: "none" } },
      want: { tier: "noptr", lookup: "none", delayMs: 26000, asked: 0 },
    },
    {
      name: "the patterns given replace the built-in ones",
      c: { args: S, patterns: [/^mail$/i] },
      want: { tier: "dynamic", name: PTR_NAME, delayMs: 16000 },
    },
    {
      name: "a recent pass: the ptr delay for a dynamic name",
      c: { args: S, env: { TCPREMOTEIP: DYNAMIC_IP }, memory: { passed: true } },
      want: { tier: "dynamic", delayMs: 2000, holds: [2000], notes: "passed" },
    },
    {
      name: "a recent pass: the ptr delay without a name",
      c: { args: S, env: { TCPREMOTEIP: NXDOMAIN_IP }, memory: { passed: true } },
      want: { tier: "noptr", delayMs: 2000, notes: "passed" },
    },
    {
      name: "a penalty: the noptr delay for a name",
      c: { args: S, memory: { penalised: true } },
      want: { tier: "ptr", delayMs: 26000, holds: [26000], notes: "penalty" },
    },
    {
      name: "a penalty outranks a pass",
      c: { args: S, memory: { penalised: true, passed: true } },
      want: { delayMs: 26000, notes: "penalty" },
    },
    {
      name: "the reconnect rate lengthens a stranger's wait",
      c: { args: S, memory: { rateWaitMs: 40000 } },
      want: { delayMs: 40000, holds: [40000], notes: "rate" },
    },
    {
      name: "the time spent opening the memory counts in the delay",
      c: { args: S, memoryMs: 300 },
      want: { delayMs: 2000, holds: [1700], waitedMs: 2000 },
    },
    {
      name: "waitedMs is the time to the outcome, the hold's overshoot included",
      c: { args: S, overshootMs: 1.25 },
      want: { delayMs: 2000, holds: [2000], waitedMs: 2001.25 },
    },
    {
      name: "a client that talks during the delay: 451 then, and a strike",
      c: { args: S, act: { kind: "early", afterMs: 1500, bytes: 5 } },
      want: {
        verdict: REPLY_451,
        tier: "ptr",
        delayMs: 2000,
        holds: [2000],
        waitedMs: 1500,
        departs: ["early"],
      },
    },
    {
      name: "a client that hangs up during the delay: dropped",
      c: { args: S, act: { kind: "closed", afterMs: 700 } },
      want: { verdict: DROP, tier: "ptr", waitedMs: 700, departs: ["gone"] },
    },
    {
      name: "-N 100 refuses a client without a PTR at once: 421, not a memory note",
      c: { args: [...S, "-N", "100"], env: { TCPREMOTEIP: NXDOMAIN_IP }, roll: 0 },
      want: {
        verdict: {
          kind: "reply",
          event: "refused",
          reply: `421 ${REFUSED_TEXT}\r\n`,
          refusal: "noptr",
        },
        tier: "noptr",
        lookup: "none",
        delayMs: 26000,
        holds: [],
        waitedMs: 0,
        notes: "",
        departs: ["gone"],
      },
    },
    {
      name: "JUSTDELAY: -N spared, RBLSMTPD empty",
      c: {
        args: [...S, "-N", "100"],
        env: { TCPREMOTEIP: NXDOMAIN_IP, SMTPDELAY: "JUSTDELAY" },
        roll: 0,
      },
      want: { verdict: PASS_JUSTDELAY, tier: "noptr", holds: [26000], departs: ["pass"] },
    },
  ]);
});

// ---------------------------------------------------------------------------
// What the log and the hand-off take from the result.

interface UseRow {
  readonly name: string;
  readonly c: Case;
  readonly relayed?: boolean;
  readonly data?: Uint8Array;
  readonly outcome: Omit<Outcome, "pid" | "ip">;
  readonly exports: Record<string, string>;
  readonly departure: Departure;
}

Deno.test("outcomeOf(), exportsOf() and departureOf() say what the screening found", async (t) => {
  const data = new TextEncoder().encode("EHLO x\r\n");
  const rows: UseRow[] = [
    {
      name: "a pass after -d: three decimals of seconds, rounded",
      c: { args: S, overshootMs: 12.625 },
      outcome: {
        event: "pass",
        tier: "ptr",
        ptr: PTR_NAME,
        lookup: "found",
        delayMs: 2000,
        waitedMs: 2012.625,
        action: "exec",
        memory: "",
      },
      exports: { SMTPDELAY_TIER: "ptr", SMTPDELAY_PTR: PTR_NAME, SMTPDELAY_WAITED: "2.013" },
      departure: "pass",
    },
    {
      name: "a pass through the relay (--max-idle), after a recent pass",
      c: {
        args: [...S, "--max-idle", "60"],
        env: { TCPREMOTEIP: DYNAMIC_IP },
        memory: { passed: true },
      },
      relayed: true,
      outcome: {
        event: "pass",
        tier: "dynamic",
        ptr: DYNAMIC_NAME,
        lookup: "found",
        delayMs: 2000,
        waitedMs: 2000,
        action: "relay",
        memory: "passed",
      },
      exports: {
        SMTPDELAY_TIER: "dynamic",
        SMTPDELAY_PTR: DYNAMIC_NAME,
        SMTPDELAY_WAITED: "2.000",
      },
      departure: "pass",
    },
    {
      name: "a name with bytes outside 33..126: each a ?",
      c: { args: S, env: { TCPREMOTEIP: ODD_IP } },
      outcome: {
        event: "pass",
        tier: "ptr",
        ptr: "mail\nx.caf\xe9 bar.example.net",
        lookup: "found",
        delayMs: 2000,
        waitedMs: 2000,
        action: "exec",
        memory: "",
      },
      exports: {
        SMTPDELAY_TIER: "ptr",
        SMTPDELAY_PTR: "mail?x.caf??bar.example.net",
        SMTPDELAY_WAITED: "2.000",
      },
      departure: "pass",
    },
    {
      name: "a TCPREMOTEHOST of 300 characters: SMTPDELAY_PTR cut at 255",
      c: { args: S, env: { TCPREMOTEHOST: `${"a".repeat(290)}.example` } },
      outcome: {
        event: "pass",
        tier: "ptr",
        ptr: `${"a".repeat(290)}.example`,
        lookup: "host",
        delayMs: 2000,
        waitedMs: 2000,
        action: "exec",
        memory: "",
      },
      exports: {
        SMTPDELAY_TIER: "ptr",
        SMTPDELAY_PTR: "a".repeat(255),
        SMTPDELAY_WAITED: "2.000",
      },
      departure: "pass",
    },
    {
      name: "JUSTDELAY: action justdelay, RBLSMTPD empty",
      c: { args: S, env: { SMTPDELAY: "JUSTDELAY", TCPREMOTEIP: NXDOMAIN_IP } },
      relayed: true,
      outcome: {
        event: "pass",
        tier: "noptr",
        ptr: undefined,
        lookup: "none",
        delayMs: 26000,
        waitedMs: 26000,
        action: "justdelay",
        memory: "",
      },
      exports: {
        SMTPDELAY_TIER: "noptr",
        SMTPDELAY_PTR: "",
        SMTPDELAY_WAITED: "26.000",
        RBLSMTPD: "",
      },
      departure: "pass",
    },
    {
      name: "an early talker during the lookup, without -S: rblsmtpd, tier empty",
      c: {
        args: DELAYS,
        env: { TCPREMOTEIP: SILENT_IP },
        act: { kind: "early", afterMs: 5, bytes: 8 },
      },
      data,
      outcome: {
        event: "early",
        tier: undefined,
        ptr: undefined,
        lookup: "pending",
        delayMs: undefined,
        waitedMs: 5,
        action: "rblsmtpd",
        memory: "",
        bytes: 8,
        data,
      },
      exports: {
        SMTPDELAY_TIER: "",
        SMTPDELAY_PTR: "",
        SMTPDELAY_WAITED: "0.005",
        RBLSMTPD: EARLY_TEXT,
      },
      departure: "early",
    },
    {
      name: "an early talker with -S: 451, the bytes and data on the line",
      c: { args: S, act: { kind: "early", afterMs: 250, bytes: 8 } },
      data,
      outcome: {
        event: "early",
        tier: "ptr",
        ptr: PTR_NAME,
        lookup: "found",
        delayMs: 2000,
        waitedMs: 250,
        action: "451",
        memory: "",
        bytes: 8,
        data,
      },
      exports: { SMTPDELAY_TIER: "ptr", SMTPDELAY_PTR: PTR_NAME, SMTPDELAY_WAITED: "0.250" },
      departure: "early",
    },
    {
      name: "a boxed client with -S: 421, no strike",
      c: { args: S, memory: { boxUntil: 2e12 } },
      outcome: {
        event: "refused",
        tier: undefined,
        ptr: undefined,
        lookup: "unneeded",
        delayMs: undefined,
        waitedMs: 0,
        action: "421",
        memory: "box",
      },
      exports: { SMTPDELAY_TIER: "", SMTPDELAY_PTR: "", SMTPDELAY_WAITED: "0.000" },
      departure: "gone",
    },
    {
      name: "an over-limit client without -S: rblsmtpd with the busy text",
      c: { args: [...DELAYS, "--max-conns", "1"], memory: { open: 1 } },
      outcome: {
        event: "refused",
        tier: undefined,
        ptr: undefined,
        lookup: "unneeded",
        delayMs: undefined,
        waitedMs: 0,
        action: "rblsmtpd",
        memory: "conns",
      },
      exports: {
        SMTPDELAY_TIER: "",
        SMTPDELAY_PTR: "",
        SMTPDELAY_WAITED: "0.000",
        RBLSMTPD: BUSY_TEXT,
      },
      departure: "gone",
    },
    {
      name: "a client that hung up: exit",
      c: { args: S, env: { TCPREMOTEIP: DYNAMIC_IP }, act: { kind: "closed", afterMs: 3000 } },
      data,
      outcome: {
        event: "closed",
        tier: "dynamic",
        ptr: DYNAMIC_NAME,
        lookup: "found",
        delayMs: 16000,
        waitedMs: 3000,
        action: "exit",
        memory: "",
      },
      exports: {
        SMTPDELAY_TIER: "dynamic",
        SMTPDELAY_PTR: DYNAMIC_NAME,
        SMTPDELAY_WAITED: "3.000",
      },
      departure: "gone",
    },
    {
      name: "an exempt client: memory=exempt, delay 0",
      c: { args: S, env: { RELAYCLIENT: "" } },
      outcome: {
        event: "pass",
        tier: undefined,
        ptr: undefined,
        lookup: "unneeded",
        delayMs: 0,
        waitedMs: 0,
        action: "exec",
        memory: "exempt",
      },
      exports: { SMTPDELAY_TIER: "", SMTPDELAY_PTR: "", SMTPDELAY_WAITED: "0.000" },
      departure: "pass",
    },
  ];
  await withDns(async (dns) => {
    for (const row of rows) {
      await t.step(row.name, async () => {
        const { screened } = await run(dns, row.c);
        const ip = readClient({ TCPREMOTEIP: PTR_IP, ...row.c.env }).ipText;
        const got = outcomeOf(screened, ip, 4711, row.data, row.relayed ?? false);
        assert.deepEqual(got, { pid: 4711, ip, ...row.outcome });
        assert.deepEqual(exportsOf(screened), row.exports);
        assert.equal(departureOf(screened.verdict), row.departure);
      });
    }
  });
});

Deno.test("recordDeparture() records the departure in the memory, and logs a failure", async (t) => {
  await t.step("on: depart() gets it", async () => {
    const got: Departure[] = [];
    const memory: Memory = {
      kind: "on",
      remembered: {
        recalled: STRANGER,
        depart: (how) => Promise.resolve(void got.push(how)),
      },
    };
    const { lines } = await capturingStderr(() => recordDeparture(memory, "early"));
    assert.deepEqual(got, ["early"]);
    assert.deepEqual(lines, []);
  });
  await t.step("on, the store failing: one warning, no throw", async () => {
    const memory: Memory = {
      kind: "on",
      remembered: {
        recalled: STRANGER,
        depart: () => Promise.resolve("sqlite /x.db: unable to update: disk I/O error"),
      },
    };
    const { lines } = await capturingStderr(() => recordDeparture(memory, "pass"));
    assert.deepEqual(lines, [
      "smtp-delay: warning: unable to remember the outcome: sqlite /x.db: unable to update: disk I/O error",
    ]);
  });
  for (const memory of [{ kind: "off" }, { kind: "down", reason: "x" }] as Memory[]) {
    await t.step(`${memory.kind}: nothing to do`, async () => {
      const { lines } = await capturingStderr(() => recordDeparture(memory, "gone"));
      assert.deepEqual(lines, []);
    });
  }
});

Deno.test("loadExemptions() without an allowlist gives none", async () => {
  assert.equal(await loadExemptions(undefined), undefined);
});

// ---------------------------------------------------------------------------
// --action ignore and the teaser.

const IGNORE = [...S, "--action", "ignore"];

Deno.test("screen() with --action ignore: every test runs, every delay is waited, nobody is refused", async (t) => {
  await table(t, [
    {
      name: "an early talker waits out its delay, then goes on: would have been 451",
      c: { args: IGNORE, act: { kind: "early", afterMs: 500, bytes: 6 } },
      want: {
        verdict: { kind: "pass", event: "early", rblsmtpd: undefined, would: "451" },
        tier: "ptr",
        delayMs: 2000,
        holds: [2000],
        pauses: [1500],
        waitedMs: 2000,
        departs: ["early"],
      },
    },
    {
      name: "a client that talks during the lookup: the lookup goes on, the tier's delay is waited",
      c: {
        args: IGNORE,
        env: { TCPREMOTEIP: SILENT_IP },
        act: { kind: "early", afterMs: 20, bytes: 6 },
      },
      want: {
        verdict: { kind: "pass", event: "early", rblsmtpd: undefined, would: "451" },
        tier: "noptr",
        lookup: "timeout",
        delayMs: 26000,
        departs: ["early"],
      },
    },
    {
      name: "a boxed client: looked up, held its tier's delay, handed on (would have been 421)",
      c: { args: IGNORE, memory: { boxUntil: 2e12 } },
      want: {
        verdict: {
          kind: "pass",
          event: "refused",
          rblsmtpd: undefined,
          would: "421",
          refusal: "box",
        },
        lookup: "found",
        tier: "ptr",
        holds: [2000],
        notes: "box",
        asked: 1,
        departs: ["gone"],
      },
    },
    {
      name: "a client that hangs up is let go, as when enforcing",
      c: { args: IGNORE, act: { kind: "closed", afterMs: 500 } },
      want: { verdict: DROP, departs: ["gone"] },
    },
  ]);
});

Deno.test("screen() sends the teaser as the delay starts, to the tiers that get it", async (t) => {
  const TEASE = [...S, "--teaser", "mx.example.org ESMTP"];
  const LINE = "220-mx.example.org ESMTP\r\n";
  await table(t, [
    {
      name: "a dynamic name (a default tier): the 220- line, then the hold",
      c: { args: TEASE, env: { TCPREMOTEIP: DYNAMIC_IP } },
      want: { verdict: PASS, tier: "dynamic", sent: [LINE], holds: [16000] },
    },
    {
      name: "no PTR (a default tier): the line",
      c: { args: TEASE, env: { TCPREMOTEIP: NXDOMAIN_IP } },
      want: { tier: "noptr", sent: [LINE] },
    },
    {
      name: "a ptr name (not a default tier): nothing sent",
      c: { args: TEASE },
      want: { verdict: PASS, tier: "ptr", sent: [] },
    },
    {
      name: "--teaser-tiers ptr: the ptr tier gets it",
      c: { args: [...TEASE, "--teaser-tiers", "ptr"] },
      want: { tier: "ptr", sent: [LINE] },
    },
    {
      name: "--teaser-tiers none: nobody",
      c: { args: [...TEASE, "--teaser-tiers", "none"], env: { TCPREMOTEIP: DYNAMIC_IP } },
      want: { sent: [] },
    },
    {
      name: "an early talker after the teaser: 451, as any other",
      c: {
        args: TEASE,
        env: { TCPREMOTEIP: DYNAMIC_IP },
        act: { kind: "early", afterMs: 500, bytes: 6 },
      },
      want: { verdict: REPLY_451, sent: [LINE] },
    },
    {
      name: "a client that talked before the delay began: no teaser",
      c: {
        args: TEASE,
        env: { TCPREMOTEIP: SILENT_IP },
        act: { kind: "early", afterMs: 20, bytes: 6 },
      },
      want: { verdict: REPLY_451, sent: [] },
    },
    {
      name: "an exempt client: no teaser",
      c: { args: TEASE, env: { TCPREMOTEIP: DYNAMIC_IP, RELAYCLIENT: "" } },
      want: { verdict: PASS, sent: [] },
    },
    {
      name: "a boxed client: refused at once, no teaser",
      c: { args: TEASE, env: { TCPREMOTEIP: DYNAMIC_IP }, memory: { boxUntil: 2e12 } },
      want: { verdict: REPLY_BOX, sent: [] },
    },
    {
      name: "SMTPDELAY_TEASER from tcprules for one client",
      c: { args: S, env: { TCPREMOTEIP: DYNAMIC_IP, SMTPDELAY_TEASER: "hello" } },
      want: { sent: ["220-hello\r\n"] },
    },
  ]);
});

Deno.test("screen() acts on the lists' score as soon as it is known, never after the delay", async (t) => {
  const lists = (...specs: string[]) => specs.flatMap((spec) => ["--dnsbl", spec]);
  const listed = (score: number, hits: string[]) => ({ score, hits, verdict: undefined });
  const rows: (Row & { check?: (run: Run) => void })[] = [
    {
      name: "blocklisted, -S: refused before its 2 s delay, as the answer comes",
      c: { args: [...S, ...lists("bl.test")] },
      want: {
        verdict: {
          kind: "reply",
          event: "listed",
          reply: `421 ${DEFAULT_REPLY.text}\r\n`,
          refusal: "listed",
        },
        departs: ["gone"],
        logged: [],
      },
      check: (run) => {
        assert.ok(run.screened.waitedMs < 1000, `waited ${run.screened.waitedMs} ms`);
        assert.deepEqual(run.screened.answers?.zones["bl.test"]?.a, ["127.0.0.2", "127.0.0.4"]);
        assert.equal(run.screened.listed?.score, 1); // a zone counts once
      },
    },
    {
      name: "a filter that takes no answer: not listed, the delay as usual",
      c: { args: ["-S", "-d", "0.2", ...lists("bl.test=127.0.0.3")] },
      want: { verdict: PASS, delayMs: 200, waitedMs: 200, departs: ["pass"] },
      check: (run) => assert.equal(run.screened.listed?.score, 0),
    },
    {
      name: "two zones' weights summed reach the threshold",
      c: { args: [...S, ...lists("bl.test*2", "wl.test*2"), "--dnsbl-threshold", "4"] },
      want: { departs: ["gone"] },
      check: (run) => {
        assert.equal(run.screened.verdict.event, "listed");
        assert.deepEqual(run.screened.listed?.hits, ["bl.test", "wl.test"]);
      },
    },
    {
      name: "allowlisted: handed on with no delay, RBLSMTPD empty, no pass",
      c: { args: [...S, ...lists("wl.test*-3")] },
      want: {
        verdict: { kind: "pass", event: "pass", rblsmtpd: "", allowed: true },
        delayMs: 0,
        departs: ["allowed"],
      },
      check: (run) => assert.ok(run.screened.waitedMs < 1000, `${run.screened.waitedMs} ms`),
    },
    {
      name: "a zone that never answers: given up at -t, counted 0, the delay waited",
      c: { args: ["-S", "-d", "0.5", "-t", "0.2", ...lists("dead.test", "bl.test=127.0.0.3")] },
      want: {
        verdict: PASS,
        delayMs: 500,
        waitedMs: 500,
        logged: [
          `smtp-delay: warning: unable to ask dead.test about ${PTR_IP}: timed out`,
        ],
      },
      check: (run) => {
        assert.deepEqual(run.screened.listed, {
          ...listed(0, []),
          verdict: "none",
          odd: [],
        });
        assert.ok(run.realMs >= 190, `${run.realMs} ms`);
      },
    },
    {
      name: "the memory's answers: no question asked, refused at once",
      c: {
        args: [...S, ...lists("bl.test")],
        memory: { answers: new Map([["bl.test", ["127.0.0.2"]]]) },
      },
      want: { departs: ["gone"] },
      check: (run) => {
        assert.equal(run.screened.verdict.event, "listed");
        assert.ok(!run.events.includes(`dns ${LISTED_NAME}.bl.test`), run.events.join(" "));
        assert.equal(run.screened.answers, undefined); // nothing new to keep
      },
    },
    {
      name: "--action ignore: a blocklisted client waits its delay, would have been 421",
      c: { args: ["-S", "-d", "0.2", "--action", "ignore", ...lists("bl.test")] },
      want: {
        verdict: {
          kind: "pass",
          event: "listed",
          rblsmtpd: undefined,
          would: "421",
          refusal: "listed",
        },
        delayMs: 200,
        waitedMs: 200,
      },
    },
    {
      name: "exempt: no list asked",
      c: { args: [...S, ...lists("bl.test")], env: { RELAYCLIENT: "" } },
      want: { verdict: PASS, listed: undefined },
      check: (run) => assert.ok(!run.events.some((e) => e.endsWith(".bl.test")), run.events.join()),
    },
  ];
  await withDns(async (dns) => {
    for (const row of rows) {
      await t.step(row.name, async () => {
        const got = await run(dns, row.c);
        expect(got, row.want);
        row.check?.(got);
      });
    }
  });
});
