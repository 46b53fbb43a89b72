/**
 * One log line -> a typed record. Pure, and fast enough for millions of
 * lines: no regular expression on the way of an outcome line.
 *
 * A line is smtp-delay's when it reads `smtp-delay: info|warning|fatal: ...`
 * (src/log.ts), after an optional stamp: multilog's `@` + TAI64N label and a
 * space, or the `YYYY-MM-DD HH:MM:SS.NNNNNNNNN ` of tai64nlocal (local
 * time). Every field of a record is printable ASCII (33..126, as log.ts
 * cleans them; a message 32..126): a line with any other byte, a missing or
 * malformed field, or a malformed stamp is damaged (parseLine returns
 * undefined, isOurs says true). Fields a later version adds are ignored, and
 * an uppercase word this file does not know is kept as an `event` record.
 */

/** The tiers of README's "Tiers", and `-` in a line read as undefined. */
export type { Tier } from "../classify.ts";
import type { Tier } from "../classify.ts";
export const TIERS: readonly Tier[] = ["ptr", "dynamic", "noptr"];

/** The event words of the outcome lines this version writes (src/decide.ts's Event, upper case). */
export const OUTCOME_EVENTS = ["PASS", "EARLY", "CLOSED", "REFUSED", "LISTED"] as const;

interface Stamped {
  /** When the line was written, ms since the Unix epoch, from its stamp; undefined without one. */
  readonly atMs: number | undefined;
}

/**
 * One connection's outcome: `PASS|EARLY|CLOSED|REFUSED|LISTED pid= ip=
 * tier= ptr= lookup= delay= waited= action= memory= [score= lists=]
 * [bytes= data=]`. Any uppercase word with the fields pid, ip, tier,
 * lookup, waited and action is one.
 */
export interface OutcomeRecord extends Stamped {
  readonly kind: "outcome";
  readonly event: string;
  readonly pid: number;
  readonly ip: string;
  readonly tier: Tier | undefined;
  readonly ptr: string | undefined;
  /** host | found | none | timeout | error | skipped | unneeded | pending */
  readonly lookup: string;
  readonly delaySeconds: number | undefined;
  readonly waitedSeconds: number;
  /** exec | justdelay | relay | 451 | 421 | rblsmtpd | exit | ignore */
  readonly action: string;
  /** action=ignore (--action ignore): what enforcing would have done, 451 | 421 | rblsmtpd. */
  readonly would: string | undefined;
  /** The memory's rules that applied: [] for `-`; ["off"], ["down"] as written. */
  readonly memory: readonly string[];
  /** With lists configured: their score at the verdict; undefined for `-` (not asked) or without. */
  readonly score: number | undefined;
  /**
   * With lists configured: the zones that hit, as written ([] for `-`);
   * undefined when the line has no `lists=` (no lists configured).
   */
  readonly lists: readonly string[] | undefined;
  /** EARLY: the bytes waiting (-1 when they could not be counted). */
  readonly bytes: number | undefined;
  /** EARLY: the first of them, cleaned, undefined for `-`. */
  readonly data: string | undefined;
}

/** `END pid= ip= why= in= out= seconds=`: a relayed or capped session ended. */
export interface EndRecord extends Stamped {
  readonly kind: "end";
  readonly pid: number;
  readonly ip: string;
  /** eof | idle | session | reset */
  readonly why: string;
  readonly inBytes: number | undefined;
  readonly outBytes: number | undefined;
  readonly seconds: number;
}

/** `BUSY ip= why= waiting= action=`: serve turned a client away before its screening. */
export interface BusyRecord extends Stamped {
  readonly kind: "busy";
  readonly ip: string;
  /** waiting | per-ip | fds | rules */
  readonly why: string;
  readonly waiting: number;
  readonly action: string;
}

/** `STRESS on|off waiting= limit=` */
export interface StressRecord extends Stamped {
  readonly kind: "stress";
  readonly on: boolean;
  readonly waiting: number;
  readonly limit: number;
}

/** `STOP waiting= children=` (SIGTERM) and `RELOAD ...` (SIGHUP). */
export interface ServerRecord extends Stamped {
  readonly kind: "stop" | "reload";
  readonly waiting: number;
  readonly children: number;
}

/** An uppercase word this version does not know, with its `key=value` fields and other words. */
export interface EventRecord extends Stamped {
  readonly kind: "event";
  readonly event: string;
  readonly fields: Readonly<Record<string, string>>;
  readonly words: readonly string[];
}

/** A warning, a fatal error, or an info line that is no event (lowercase text). */
export interface MessageRecord extends Stamped {
  readonly kind: "warning" | "fatal" | "info";
  readonly message: string;
}

export type LogRecord =
  | OutcomeRecord
  | EndRecord
  | BusyRecord
  | StressRecord
  | ServerRecord
  | EventRecord
  | MessageRecord;

const PREFIX = "smtp-delay: ";
/** `@` and 24 hex digits: 16 of TAI64 seconds, 8 of nanoseconds. */
const TAI64N_LENGTH = 25;
/** 2^62 + 10: the TAI64 label of the Unix epoch, as daemontools' tai64n writes it. */
const TAI64_EPOCH_HIGH = 0x40000000;
const TAI64_EPOCH_OFFSET = 10;

/**
 * A TAI64N label (`@4000000065a1b2c3...`, 25 characters) -> ms since the
 * Unix epoch, as daemontools' tai64nlocal reads it (2^62 + 10 s is 1970-01-01,
 * no leap-second table); undefined when it is not one.
 */
export function decodeTai64n(label: string): number | undefined {
  if (label.length !== TAI64N_LENGTH || label.charCodeAt(0) !== 64) return undefined;
  const high = hex(label, 1, 9);
  const low = hex(label, 9, 17);
  const nanos = hex(label, 17, 25);
  if (high < 0 || low < 0 || nanos < 0 || nanos > 999_999_999) return undefined;
  const seconds = (high - TAI64_EPOCH_HIGH) * 0x1_0000_0000 + low - TAI64_EPOCH_OFFSET;
  return seconds * 1000 + Math.floor(nanos / 1e6);
}

/** ms since the Unix epoch -> the TAI64N label multilog would write (the inverse of decodeTai64n). */
export function encodeTai64n(ms: number): string {
  const seconds = Math.floor(ms / 1000) + TAI64_EPOCH_OFFSET;
  const nanos = Math.round((ms - Math.floor(ms / 1000) * 1000) * 1e6);
  const high = TAI64_EPOCH_HIGH + Math.floor(seconds / 0x1_0000_0000);
  const low = seconds % 0x1_0000_0000;
  const h = (n: number) => n.toString(16).padStart(8, "0");
  return `@${h(high)}${h(low)}${h(nanos)}`;
}

/** The value of hex digits s[from..to) (lowercase or uppercase), -1 if any is not one. */
function hex(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    const d = c >= 48 && c <= 57
      ? c - 48
      : c >= 97 && c <= 102
      ? c - 87
      : c >= 65 && c <= 70
      ? c - 55
      : -1;
    if (d < 0) return -1;
    n = n * 16 + d;
  }
  return n;
}

/** Digits s[from..to) as a number, -1 if any is not a digit. */
function digits(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/** tai64nlocal's stamp, `2026-12-05 10:11:12.123456789`, local time -> ms; undefined if not one. */
function localStamp(s: string): number | undefined {
  if (
    s.length !== 29 || s[4] !== "-" || s[7] !== "-" || s[10] !== " " || s[13] !== ":" ||
    s[16] !== ":" || s[19] !== "."
  ) return undefined;
  const parts = [
    digits(s, 0, 4),
    digits(s, 5, 7),
    digits(s, 8, 10),
    digits(s, 11, 13),
    digits(s, 14, 16),
    digits(s, 17, 19),
    digits(s, 20, 29),
  ];
  if (parts.some((p) => p < 0)) return undefined;
  const [y, mo, d, h, mi, sec, nanos] = parts as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return undefined;
  return new Date(y, mo - 1, d, h, mi, sec, Math.floor(nanos / 1e6)).getTime();
}

/**
 * Where smtp-delay's text starts in `line` and the stamp's time: after
 * `@TAI64N `, after tai64nlocal's stamp, or at 0. `at` is NaN for a stamp
 * that is malformed; start is -1 when the line is not smtp-delay's at all.
 */
function split(line: string): { start: number; atMs: number | undefined } {
  if (line.startsWith(PREFIX)) return { start: 0, atMs: undefined };
  if (line.charCodeAt(0) === 64) { // "@"
    const space = line.indexOf(" ");
    if (space < 0 || !line.startsWith(PREFIX, space + 1)) return { start: -1, atMs: undefined };
    return { start: space + 1, atMs: decodeTai64n(line.slice(0, space)) ?? NaN };
  }
  if (line.length > 30 && line.charCodeAt(29) === 32 && line.startsWith(PREFIX, 30)) {
    return { start: 30, atMs: localStamp(line.slice(0, 29)) ?? NaN };
  }
  return { start: -1, atMs: undefined };
}

/**
 * Whether `line` is smtp-delay's (its prefix, after an optional stamp): a
 * line for which parseLine returns undefined is then damaged, not another
 * program's.
 */
export function isOurs(line: string): boolean {
  return split(stripCr(line)).start >= 0;
}

function stripCr(line: string): string {
  return line.charCodeAt(line.length - 1) === 13 ? line.slice(0, -1) : line;
}

/** Whether s[from..] is printable ASCII: 33..126, or 32..126 with `spaces`. */
function printable(s: string, from: number, spaces: boolean): boolean {
  const low = spaces ? 32 : 33;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < low || c > 126) return false;
  }
  return true;
}

/** `N.NNN` or `N` -> a number; NaN for anything else (a sign, an exponent, hex). */
function decimal(v: string | undefined): number {
  if (v === undefined || v.length === 0) return NaN;
  let dot = -1;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 46 && dot < 0 && i > 0 && i < v.length - 1) dot = i;
    else if (c < 48 || c > 57) return NaN;
  }
  return Number(v);
}

/** A whole number (with `-1` where `negative` allows it); NaN for anything else. */
function integer(v: string | undefined, negative = false): number {
  if (v === undefined || v.length === 0 || v.length > 15) return NaN;
  if (negative && v === "-1") return -1;
  const n = digits(v, 0, v.length);
  return n < 0 ? NaN : n;
}

/** A whole number, with `-` before it when negative (a score can be); NaN for anything else. */
function signed(v: string): number {
  if (v.charCodeAt(0) !== 45) return integer(v);
  const n = integer(v.slice(1));
  return n === 0 ? 0 : -n;
}

/** A count or `-` (not counted). */
function countOrDash(v: string | undefined): number | undefined | null {
  if (v === "-") return undefined;
  const n = integer(v);
  return Number.isNaN(n) ? null : n;
}

/** An IPv4 or IPv6 address as log.ts writes it (digits, hex, `.` and `:`). */
function address(v: string | undefined): v is string {
  if (v === undefined || v.length < 2 || v.length > 45) return false;
  let colon = false;
  let dot = false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 58) colon = true;
    else if (c === 46) dot = true;
    else if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70))) {
      return false;
    }
  }
  return colon || dot;
}

/** A field that log.ts wrote as `-` when empty. */
const orDash = (v: string): string | undefined => v === "-" ? undefined : v;

/**
 * One raw line (with or without its stamp, with or without its newline or a
 * CR) -> the record it says; undefined for another program's line (see
 * isOurs) and for a damaged one.
 */
export function parseLine(raw: string): LogRecord | undefined {
  const line = raw.charCodeAt(raw.length - 1) === 10 ? stripCr(raw.slice(0, -1)) : stripCr(raw);
  const { start, atMs } = split(line);
  if (start < 0 || Number.isNaN(atMs)) return undefined;
  const body = start + PREFIX.length;
  if (line.startsWith("info: ", body)) return info(line, body + 6, atMs);
  for (const kind of ["warning", "fatal"] as const) {
    if (line.startsWith(kind, body) && line.startsWith(": ", body + kind.length)) {
      const from = body + kind.length + 2;
      if (from >= line.length || !printable(line, from, true)) return undefined;
      return { kind, message: line.slice(from), atMs };
    }
  }
  return undefined;
}

/** An uppercase word of A-Z (and `-`, `_` after the first letter). */
function isWord(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 65 && c <= 90) || (i > 0 && (c === 45 || c === 95)))) return false;
  }
  return true;
}

/**
 * The `key=value` fields of one line, in slots (one object, reused: no
 * object per line on the way of millions of them); keys of no slot, and
 * words without `=`, aside.
 */
class Fields {
  pid: string | undefined;
  ip: string | undefined;
  tier: string | undefined;
  ptr: string | undefined;
  lookup: string | undefined;
  delay: string | undefined;
  waited: string | undefined;
  action: string | undefined;
  memory: string | undefined;
  bytes: string | undefined;
  data: string | undefined;
  would: string | undefined;
  score: string | undefined;
  lists: string | undefined;
  other: Record<string, string> | undefined;
  words: string[] | undefined;

  /** Reads the fields of line[from..]; false when one is empty, or a space ends the line or meets another. */
  read(line: string, from: number): boolean {
    this.pid =
      this.ip =
      this.tier =
      this.ptr =
      this.lookup =
      this.delay =
        undefined;
    this.waited =
      this.action =
      this.memory =
      this.bytes =
      this.data =
      this.would =
      this.score =
      this.lists =
        undefined;
    this.other = this.words = undefined;
    let at = from;
    while (at < line.length) {
      let stop = line.indexOf(" ", at);
      if (stop < 0) stop = line.length;
      if (stop === at) return false; // two spaces, or one at the end: not log.ts's
      const eq = line.indexOf("=", at);
      if (eq < 0 || eq >= stop) (this.words ??= []).push(line.slice(at, stop));
      else if (eq === at || eq === stop - 1) return false;
      else this.set(line.slice(at, eq), line.slice(eq + 1, stop));
      at = stop + 1;
    }
    return line.charCodeAt(line.length - 1) !== 32;
  }

  private set(key: string, value: string): void {
    switch (key) {
      case "pid":
        this.pid = value;
        break;
      case "ip":
        this.ip = value;
        break;
      case "tier":
        this.tier = value;
        break;
      case "ptr":
        this.ptr = value;
        break;
      case "lookup":
        this.lookup = value;
        break;
      case "delay":
        this.delay = value;
        break;
      case "waited":
        this.waited = value;
        break;
      case "action":
        this.action = value;
        break;
      case "memory":
        this.memory = value;
        break;
      case "bytes":
        this.bytes = value;
        break;
      case "data":
        this.data = value;
        break;
      case "would":
        this.would = value;
        break;
      case "score":
        this.score = value;
        break;
      case "lists":
        this.lists = value;
        break;
      default:
        (this.other ??= {})[key] = value;
    }
  }

  /** Every field, as an object. */
  all(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const key of SLOTS) {
      const v = this[key];
      if (v !== undefined) out[key] = v;
    }
    return { ...out, ...this.other };
  }
}

const SLOTS = [
  "pid",
  "ip",
  "tier",
  "ptr",
  "lookup",
  "delay",
  "waited",
  "action",
  "memory",
  "bytes",
  "data",
  "would",
  "score",
  "lists",
] as const;

const fields = new Fields();

/** The word as a constant string (hashed once, wherever it is a key later), or as it is. */
function wordOf(word: string): string {
  switch (word) {
    case "PASS":
      return "PASS";
    case "EARLY":
      return "EARLY";
    case "CLOSED":
      return "CLOSED";
    case "REFUSED":
      return "REFUSED";
    case "LISTED":
      return "LISTED";
    default:
      return word;
  }
}

/** `info: ...` from `from`: an event word and its fields, or a message. */
function info(line: string, from: number, atMs: number | undefined): LogRecord | undefined {
  if (from >= line.length || !printable(line, from, true)) return undefined;
  let space = line.indexOf(" ", from);
  if (space < 0) space = line.length;
  const word = line.slice(from, space);
  if (!isWord(word)) return { kind: "info", message: line.slice(from), atMs };
  if (!fields.read(line, space + 1)) return undefined;
  switch (word) {
    case "END":
      return end(fields.all(), atMs);
    case "BUSY":
      return busy(fields.all(), atMs);
    case "STRESS":
      return stress(fields.words ?? [], fields.all(), atMs);
    case "STOP":
    case "RELOAD":
      return server(word === "STOP" ? "stop" : "reload", fields.all(), atMs);
  }
  if (
    fields.pid !== undefined && fields.ip !== undefined && fields.tier !== undefined &&
    fields.lookup !== undefined && fields.waited !== undefined && fields.action !== undefined
  ) return outcome(wordOf(word), fields, atMs);
  if ((OUTCOME_EVENTS as readonly string[]).includes(word)) return undefined;
  return { kind: "event", event: word, fields: fields.all(), words: fields.words ?? [], atMs };
}

/** The tier as a constant string; undefined for `-`, null for what is no tier. */
function tierOf(v: string): Tier | undefined | null {
  switch (v) {
    case "ptr":
      return "ptr";
    case "dynamic":
      return "dynamic";
    case "noptr":
      return "noptr";
    case "-":
      return undefined;
    default:
      return null;
  }
}

function outcome(event: string, f: Fields, atMs: number | undefined): OutcomeRecord | undefined {
  const pid = integer(f.pid);
  const waitedSeconds = decimal(f.waited);
  const delaySeconds = f.delay === undefined || f.delay === "-" ? undefined : decimal(f.delay);
  const tier = tierOf(f.tier!);
  if (
    Number.isNaN(pid) || Number.isNaN(waitedSeconds) || Number.isNaN(delaySeconds) ||
    !address(f.ip) || tier === null
  ) return undefined;
  const bytes = f.bytes === undefined ? undefined : integer(f.bytes, true);
  const score = f.score === undefined || f.score === "-" ? undefined : signed(f.score);
  if (Number.isNaN(bytes) || Number.isNaN(score)) return undefined;
  const memory = f.memory;
  return {
    kind: "outcome",
    event,
    pid,
    ip: f.ip,
    tier,
    ptr: f.ptr === undefined ? undefined : orDash(f.ptr),
    lookup: f.lookup!,
    delaySeconds,
    waitedSeconds,
    action: f.action!,
    would: f.would,
    memory: memory === undefined || memory === "-" ? NO_RULES : memory.split(","),
    score,
    lists: f.lists === undefined ? undefined : f.lists === "-" ? NO_ZONES : f.lists.split(","),
    bytes,
    data: f.data === undefined ? undefined : orDash(f.data),
    atMs,
  };
}

const NO_RULES: readonly string[] = Object.freeze([]);
const NO_ZONES: readonly string[] = NO_RULES;

function end(f: Record<string, string>, atMs: number | undefined): EndRecord | undefined {
  const pid = integer(f.pid);
  const seconds = decimal(f.seconds);
  const inBytes = countOrDash(f.in);
  const outBytes = countOrDash(f.out);
  if (
    Number.isNaN(pid) || Number.isNaN(seconds) || !address(f.ip) || f.why === undefined ||
    inBytes === null || outBytes === null
  ) return undefined;
  return { kind: "end", pid, ip: f.ip, why: f.why, inBytes, outBytes, seconds, atMs };
}

function busy(f: Record<string, string>, atMs: number | undefined): BusyRecord | undefined {
  const waiting = integer(f.waiting);
  if (!address(f.ip) || f.why === undefined || Number.isNaN(waiting) || f.action === undefined) {
    return undefined;
  }
  return { kind: "busy", ip: f.ip, why: f.why, waiting, action: f.action, atMs };
}

function stress(
  words: string[],
  f: Record<string, string>,
  atMs: number | undefined,
): StressRecord | undefined {
  const waiting = integer(f.waiting);
  const limit = integer(f.limit);
  const on = words[0];
  if (words.length !== 1 || (on !== "on" && on !== "off")) return undefined;
  if (Number.isNaN(waiting) || Number.isNaN(limit)) return undefined;
  return { kind: "stress", on: on === "on", waiting, limit, atMs };
}

function server(
  kind: "stop" | "reload",
  f: Record<string, string>,
  atMs: number | undefined,
): ServerRecord | undefined {
  const waiting = integer(f.waiting);
  const children = integer(f.children);
  if (Number.isNaN(waiting) || Number.isNaN(children)) return undefined;
  return { kind, waiting, children, atMs };
}
