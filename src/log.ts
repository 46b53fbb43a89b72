/**
 * The only stderr writer. One line per event, no timestamps (multilog adds
 * them): `smtp-delay: info|warning|fatal: ...`. Outcome lines start with a
 * fixed uppercase event word, then key=value fields in a fixed order.
 * Anything that came from outside (DNS names, client bytes) is cleaned first.
 */
import type { Tier } from "./classify.ts";
import type { Event } from "./decide.ts";
import { printable } from "./reply.ts";

const PREFIX = "smtp-delay: ";

/** What one connection's outcome line says. */
export interface Outcome {
  readonly event: Event;
  readonly pid: number;
  readonly ip: string;
  readonly tier: Tier | undefined;
  readonly ptr: string | undefined;
  readonly lookup: string;
  readonly delayMs: number | undefined;
  readonly waitedMs: number;
  /** exec | justdelay | relay | 451 | 421 (or --dnsbl-reply's code) | rblsmtpd | exit | ignore */
  readonly action: string;
  /** action=ignore: what enforcing would have done (451, 421, rblsmtpd). */
  readonly would?: string;
  /** The memory's rules that applied, comma-separated ("" for none): see README. */
  readonly memory: string;
  /**
   * With lists configured: the score at the verdict (undefined: not asked)
   * and the zones that hit.
   */
  readonly lists?: { readonly score: number | undefined; readonly hits: readonly string[] };
  /** EARLY only: bytes waiting when the client was caught, and the first of them. */
  readonly bytes?: number;
  readonly data?: Uint8Array | undefined;
}

/** Longest field kept in a log line. */
export const MAX_FIELD = 100;

/** Longest `lists=` field: zones are the admin's, and a key in one can make it long. */
const MAX_LISTS = 1000;

/** Bytes or text for a log field: 33..126 kept, anything else `?`, cut at `max`, "-" if empty. */
export function clean(value: string | Uint8Array | undefined, max = MAX_FIELD): string {
  if (value === undefined) return "-";
  let out = "";
  const n = Math.min(value.length, max);
  for (let i = 0; i < n; i++) {
    const c = typeof value === "string" ? value.charCodeAt(i) : value[i]!;
    out += c >= 33 && c <= 126 ? String.fromCharCode(c) : "?";
  }
  return out === "" ? "-" : out;
}

/**
 * Why an operation failed, as a log line says it: the error's message
 * without what Deno adds to the system's (`No such file or directory (os
 * error 2): readfile '/x'` becomes `No such file or directory`).
 */
export function reason(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.replace(/ \(os error \d+\)[^]*$/, "");
}

/** Milliseconds as seconds with three decimals. */
export function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

/** The outcome line, without its newline. */
export function formatOutcome(o: Outcome): string {
  const fields = [
    `${o.event.toUpperCase()} pid=${o.pid} ip=${clean(o.ip)}`,
    `tier=${o.tier ?? "-"} ptr=${clean(o.ptr)} lookup=${o.lookup}`,
    `delay=${o.delayMs === undefined ? "-" : seconds(o.delayMs)} waited=${seconds(o.waitedMs)}`,
    `action=${o.action}${o.would ? ` would=${o.would}` : ""} memory=${clean(o.memory)}`,
  ];
  if (o.lists) {
    fields.push(`score=${o.lists.score ?? "-"} lists=${clean(o.lists.hits.join(","), MAX_LISTS)}`);
  }
  if (o.event === "early") fields.push(`bytes=${o.bytes ?? -1} data=${clean(o.data)}`);
  return `${PREFIX}info: ${fields.join(" ")}`;
}

/** Who reads every line as it is written (serve's --metrics), if anyone. */
let reader: ((line: string) => void) | undefined;

/**
 * Hands every line written from now on, without its newline, to `read`
 * (undefined: to nobody): serve's metrics count the lines where they are
 * made, so they say what the log says. Nothing reads them by default.
 */
export function tap(read: ((line: string) => void) | undefined): void {
  reader = read;
}

function emit(line: string): void {
  let bytes = new TextEncoder().encode(line + "\n");
  try {
    while (bytes.length > 0) bytes = bytes.subarray(Deno.stderr.writeSync(bytes));
  } catch {
    // stderr gone (the logger died): nothing better to do than carry on.
  }
  reader?.(line);
}

export function outcome(o: Outcome): void {
  emit(formatOutcome(o));
}

/** Longest warning or fatal message kept: printable ASCII only, so one line. */
const MAX_MESSAGE = 300;

export function warning(message: string): void {
  emit(`${PREFIX}warning: ${printable(message, MAX_MESSAGE)}`);
}

export function fatal(message: string): void {
  emit(`${PREFIX}fatal: ${printable(message, MAX_MESSAGE)}`);
}

/** A line of tcpserver's own shape (serve mode): `tcpserver: ...`, for log tools that read them. */
export function tcpserver(line: string): void {
  emit(`tcpserver: ${line}`);
}

/** A server event line (serve mode): `smtp-delay: info: WORD key=value ...`. */
export function event(line: string): void {
  emit(`${PREFIX}info: ${line}`);
}

/** How a session after the hand-off ended, when smtp-delay saw it end (a relay, or a cap). */
export interface SessionEnd {
  readonly pid: number;
  readonly ip: string;
  /** eof | idle | session | reset */
  readonly why: string;
  /** Bytes read from the client and from the next program; undefined when not relayed. */
  readonly fromClient: number | undefined;
  readonly fromChild: number | undefined;
  readonly ms: number;
}

/** `END pid=PID ip=IP why=WHY in=N out=N seconds=S` (`-` for bytes not counted). */
export function formatEnd(e: SessionEnd): string {
  return `END pid=${e.pid} ip=${clean(e.ip)} why=${e.why} in=${e.fromClient ?? "-"} ` +
    `out=${e.fromChild ?? "-"} seconds=${seconds(e.ms)}`;
}

export function end(e: SessionEnd): void {
  event(formatEnd(e));
}

/** -v: the version and usage, on stderr (stdout may be the client). */
export function usage(text: string): void {
  emit(text);
}
