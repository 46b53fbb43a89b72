/**
 * act(): the one place that acts on a verdict, for both modes. A fake hand
 * (the mode: in place like the filter's exec, or not like serve's spawn), a
 * fake libc that records what was read and written, a memory that records
 * its departures, and stderr caught: each row says what the client got, in
 * which order the outcome line, the departure and the start came, and what
 * the lines say.
 */
import assert from "node:assert/strict";
import { act, type Acted, type Hand, type Started } from "../src/act.ts";
import { type Config, parseConfig } from "../src/config.ts";
import type { Verdict } from "../src/decide.ts";
import type { Departure } from "../src/history.ts";
import { EARLY_TEXT, reply } from "../src/reply.ts";
import type { Screened } from "../src/screen.ts";
import { STRANGER } from "./fixtures/recall.ts";
import { capturingStderr } from "./fixtures/stderr.ts";

const encoder = new TextEncoder();

function configOf(args: readonly string[], program = ["qmail-smtpd"]): Config {
  const request = parseConfig([...args, ...program], {});
  if (request.kind !== "run") throw new Error("not a run");
  return request.config;
}

/** What happened, in order: "outcome", "warning", "depart:HOW", "start", "write", "shutdown". */
type Events = string[];

/** A screened client of `verdict`: a ptr client that waited 0.25 s, or talked at 0.02 s. */
function screenedOf(verdict: Screened["verdict"], events: Events): Screened {
  const early = verdict.event === "early";
  return {
    verdict,
    watched: early ? { kind: "early", bytes: 6, afterMs: 20 } : { kind: "quiet" },
    tier: "ptr",
    name: "mail.example.net",
    lookup: "found",
    delayMs: 250,
    waitedMs: early ? 20 : 251,
    notes: "passed",
    listed: undefined,
    answers: undefined,
    memory: {
      kind: "on",
      remembered: {
        recalled: STRANGER,
        depart(how: Departure) {
          events.push(`depart:${how}`);
          return Promise.resolve(undefined);
        },
      },
    },
  };
}

/** A client's socket: `waiting` bytes to read; records what is written and the FIN. */
function fakeLibc(waiting: string, events: Events) {
  let rest = encoder.encode(waiting);
  const written: string[] = [];
  return {
    written,
    libc: {
      peek: (_fd: number, max: number) => rest.slice(0, max),
      bytesWaiting: () => rest.length,
      readWaiting: (_fd: number, max: number) => {
        const got = rest.slice(0, max);
        rest = rest.slice(got.length);
        return got;
      },
      writeAll: (_fd: number, bytes: Uint8Array) => {
        events.push("write");
        written.push(new TextDecoder().decode(bytes));
        return true;
      },
      shutdownWrite: () => {
        events.push("shutdown");
      },
    },
  };
}

/** A mode's hand: the filter's (in place, pid 4711) or serve's (pid 0, the child 5000). */
function handOf(inPlace: boolean, events: Events, started: Started): Hand & { given: unknown[] } {
  const given: unknown[] = [];
  return {
    input: 0,
    output: inPlace ? 1 : 0,
    ip: "192.0.2.2",
    pid: inPlace ? 4711 : 0,
    inPlace,
    warnEachClient: inPlace,
    given,
    start(exports, relayed) {
      events.push("start");
      given.push({ exports, relayed });
      return Promise.resolve(started);
    },
  };
}

interface Row {
  name: string;
  verdict: Screened["verdict"];
  inPlace: boolean;
  args?: string[];
  program?: string[];
  started?: Started;
  /** The client's bytes waiting. */
  waiting?: string;
  want: {
    acted: Acted;
    events: Events;
    written?: string[];
    /** The outcome line's pid and action, and the warnings. */
    outcome: RegExp;
    warnings?: string[];
  };
}

const PASS: Verdict = { kind: "pass", event: "pass", rblsmtpd: undefined };
const EARLY_451: Verdict = { kind: "reply", event: "early", reply: reply(451, EARLY_TEXT) };
const EARLY_RBLSMTPD: Verdict = { kind: "pass", event: "early", rblsmtpd: EARLY_TEXT };
const CLOSED: Verdict = { kind: "drop", event: "closed" };
const NO_RBLSMTPD = "smtp-delay: warning: without -S, early talkers go on to qmail-smtpd with " +
  "RBLSMTPD set, and only rblsmtpd acts on it (put rblsmtpd after smtp-delay, or use -S)";

const rows: Row[] = [
  {
    name: "a hang-up: let go, nothing written, the departure gone",
    verdict: CLOSED,
    inPlace: true,
    want: {
      acted: { kind: "let go" },
      events: ["outcome", "depart:gone"],
      outcome: / CLOSED pid=4711 .* action=exit /,
    },
  },
  {
    name: "an early talker with -S: 451, FIN, the bytes in the line, a strike",
    verdict: EARLY_451,
    inPlace: false,
    waiting: "EHLO x\r\n",
    want: {
      acted: { kind: "let go" },
      events: ["write", "shutdown", "outcome", "depart:early"],
      written: [`451 ${EARLY_TEXT}\r\n`],
      outcome: / EARLY pid=0 .* action=451 memory=passed bytes=6 data=EHLO\?x\?\?$/,
    },
  },
  {
    name: "in place (the filter's exec): the line and the departure before the start",
    verdict: PASS,
    inPlace: true,
    started: { failed: "No such file or directory" },
    want: {
      acted: { kind: "failed", reason: "No such file or directory" },
      events: ["outcome", "depart:pass", "start"],
      outcome: / PASS pid=4711 .* action=exec /,
    },
  },
  {
    name: "not in place (serve's spawn): the start first, the line with the child's pid",
    verdict: PASS,
    inPlace: false,
    started: { pid: 5000 },
    want: {
      acted: { kind: "started", pid: 5000, status: undefined },
      events: ["start", "outcome", "depart:pass"],
      outcome: / PASS pid=5000 .* action=exec /,
    },
  },
  {
    name: "not in place, a start that fails: the line with pid 0, the departure gone",
    verdict: PASS,
    inPlace: false,
    started: { failed: "Permission denied" },
    want: {
      acted: { kind: "failed", reason: "Permission denied" },
      events: ["start", "outcome", "depart:gone"],
      outcome: / PASS pid=0 .* action=exec /,
    },
  },
  {
    name: "a cap that needs the relay: started relayed, action=relay",
    verdict: PASS,
    inPlace: true,
    args: ["--max-idle", "60"],
    started: { pid: 5001, status: 0 },
    want: {
      acted: { kind: "started", pid: 5001, status: 0 },
      events: ["outcome", "depart:pass", "start"],
      outcome: / PASS pid=4711 .* action=relay /,
    },
  },
  {
    name: "without -S, an early talker to a chain without rblsmtpd: a warning, then on",
    verdict: EARLY_RBLSMTPD,
    inPlace: true,
    started: { failed: "exec'd" },
    waiting: "EHLO x\r\n",
    want: {
      acted: { kind: "failed", reason: "exec'd" },
      events: ["warning", "outcome", "depart:early", "start"],
      outcome: / EARLY pid=4711 .* action=rblsmtpd .* bytes=6 data=EHLO\?x\?\?$/,
      warnings: [NO_RBLSMTPD],
    },
  },
  {
    name: "--action ignore: handed on, action=ignore would=451, a strike, no warning",
    verdict: { kind: "pass", event: "early", rblsmtpd: undefined, would: "451" },
    inPlace: true,
    started: { failed: "exec'd" },
    waiting: "EHLO x\r\n",
    want: {
      acted: { kind: "failed", reason: "exec'd" },
      events: ["outcome", "depart:early", "start"],
      outcome: / EARLY pid=4711 .* action=ignore would=451 memory=passed bytes=6 /,
      warnings: [],
    },
  },
  {
    name: "the same to rblsmtpd: no warning",
    verdict: EARLY_RBLSMTPD,
    inPlace: true,
    program: ["rblsmtpd", "qmail-smtpd"],
    started: { failed: "exec'd" },
    waiting: "EHLO x\r\n",
    want: {
      acted: { kind: "failed", reason: "exec'd" },
      events: ["outcome", "depart:early", "start"],
      outcome: / EARLY pid=4711 .* action=rblsmtpd /,
      warnings: [],
    },
  },
];

Deno.test("act() answers, lets go or hands on, with its line and the departure, in order", async (t) => {
  for (const row of rows) {
    await t.step(row.name, async () => {
      const events: Events = [];
      const { libc, written } = fakeLibc(row.waiting ?? "", events);
      const config = configOf(row.args ?? [], row.program);
      const hand = handOf(row.inPlace, events, row.started ?? { failed: "not started" });
      const screened = screenedOf(row.verdict, events);
      const { value, lines } = await capturingStderr(async () => {
        // Each line is an event: its kind, in order with the others.
        const stderr = Deno.stderr as { writeSync(bytes: Uint8Array): number };
        const write = stderr.writeSync;
        stderr.writeSync = (bytes) => {
          const text = new TextDecoder().decode(bytes);
          events.push(text.includes(": warning: ") ? "warning" : "outcome");
          return write(bytes);
        };
        try {
          return await act(screened, config, hand, libc);
        } finally {
          stderr.writeSync = write;
        }
      });
      assert.deepEqual(value, row.want.acted);
      assert.deepEqual(events, row.want.events);
      assert.deepEqual(written, row.want.written ?? []);
      const outcomes = lines.filter((l) => l.startsWith("smtp-delay: info: "));
      assert.equal(outcomes.length, 1, lines.join("\n"));
      assert.match(outcomes[0]!, row.want.outcome);
      if (row.want.warnings) {
        assert.deepEqual(lines.filter((l) => l.includes(": warning: ")), row.want.warnings);
      }
    });
  }
});

Deno.test("act() gives the started program the verdict's variables", async () => {
  const events: Events = [];
  const hand = handOf(false, events, { pid: 5000 });
  const { libc } = fakeLibc("", events);
  const justDelay: Verdict = { kind: "pass", event: "pass", rblsmtpd: "" };
  await capturingStderr(() => act(screenedOf(justDelay, events), configOf([]), hand, libc));
  assert.deepEqual(hand.given, [{
    exports: {
      SMTPDELAY_TIER: "ptr",
      SMTPDELAY_PTR: "mail.example.net",
      SMTPDELAY_WAITED: "0.251",
      RBLSMTPD: "",
    },
    relayed: false,
  }]);
});
