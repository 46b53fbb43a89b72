/**
 * The lists' settings, postscreen's syntax: `ZONE[=FILTER][*WEIGHT]` per
 * list, the two thresholds, the reply to a blocklisted client. Pure; a bad
 * value is a UsageError naming what set it.
 */
import { type Ip, reversedLabels } from "../ip.ts";
import { MAX_TEXT } from "../reply.ts";
import { UsageError } from "../usage_error.ts";

/** One octet's accepted values: inclusive ranges. */
export type OctetRanges = ReadonlyArray<readonly [number, number]>;

/** Which answers count: four octets, each in one of its ranges. */
export type Filter = readonly [OctetRanges, OctetRanges, OctetRanges, OctetRanges];

/** One `ZONE[=FILTER][*WEIGHT]`. */
export interface ListSpec {
  /** The zone, lowercase, without a final dot. */
  readonly zone: string;
  /** undefined: any listing answer (see isListing). */
  readonly filter: Filter | undefined;
  /** Added to the score when an answer passes the filter; negative for an allowlist. */
  readonly weight: number;
}

/** What a blocklisted client is told: with -S this reply, without -S rblsmtpd's text. */
export interface ListReply {
  /** 4xx (temporary) or 5xx (permanent). */
  readonly code: number;
  readonly text: string;
}

/** Every list setting in effect for one client. */
export interface Lists {
  readonly specs: readonly ListSpec[];
  /** The distinct zones of `specs`, in their order: one query each. */
  readonly zones: readonly string[];
  /** A score at or above this refuses the client (at least 1). */
  readonly blockThreshold: number;
  /** A score at or below this hands the client on at once (at most -1). */
  readonly allowThreshold: number;
  readonly reply: ListReply;
}

const DEFAULT_BLOCK_THRESHOLD = 1;
const DEFAULT_ALLOW_THRESHOLD = -1;
export const DEFAULT_REPLY: ListReply = Object.freeze({
  code: 421,
  text: "Your address is on a blocklist; try again later (#4.7.1)",
});

/** Largest weight or threshold, either sign. */
const MAX_WEIGHT = 1_000_000;
/** Most specs one client's settings may name. */
const MAX_SPECS = 32;
/** Longest zone: the 64 characters of an IPv6 query's nibbles and dots fit in 253 with it. */
const MAX_ZONE = 189;

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** A zone: two labels or more of letters, digits, `-` and `_`; lowercased, final dot dropped. */
function parseZone(text: string, bad: () => UsageError): string {
  const zone = text.toLowerCase().replace(/\.$/, "");
  const labels = zone.split(".");
  if (zone.length > MAX_ZONE || labels.length < 2 || !labels.every((l) => LABEL.test(l))) {
    throw bad();
  }
  return zone;
}

const BYTE = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

/** One octet of a filter: `N`, or `[` items `]` with items `N` or `N..M` joined by `;`. */
function parseOctet(text: string, bad: () => UsageError): OctetRanges {
  if (BYTE.test(text)) return [[Number(text), Number(text)]];
  const listed = /^\[(.+)\]$/.exec(text);
  if (!listed) throw bad();
  return listed[1]!.split(";").map((item) => {
    const [low, high = low, ...extra] = item.split("..");
    if (extra.length > 0 || !BYTE.test(low!) || !BYTE.test(high!)) throw bad();
    if (Number(low) > Number(high)) throw bad();
    return [Number(low), Number(high)] as const;
  });
}

/** `127.0.0.2`, `127.0.0.[2..11]`, `127.0.[0..255].[1;3;5..7]`. */
function parseFilter(text: string, bad: () => UsageError): Filter {
  const octet = "([0-9]{1,3}|\\[[^\\]]*\\])";
  const octets = new RegExp(`^${octet}\\.${octet}\\.${octet}\\.${octet}$`).exec(text);
  if (!octets) throw bad();
  const [a, b, c, d] = octets.slice(1).map((o) => parseOctet(o, bad));
  return [a!, b!, c!, d!];
}

/** A whole number from -MAX_WEIGHT to MAX_WEIGHT, written without a plus sign. */
function parseWhole(text: string): number | undefined {
  if (!/^-?[0-9]{1,7}$/.test(text) || Math.abs(Number(text)) > MAX_WEIGHT) return undefined;
  return Number(text);
}

/** One `ZONE[=FILTER][*WEIGHT]`; `what` names what set it, for the error. */
export function parseSpec(text: string, what: string): ListSpec {
  const bad = () =>
    new UsageError(
      `${what} wants ZONE[=FILTER][*WEIGHT] (zen.spamhaus.org*3, ` +
        `list.dnswl.org=127.0.[0..255].[1..3]*-5), got "${text.slice(0, 100)}"`,
    );
  const star = text.lastIndexOf("*");
  const weight = star < 0 ? 1 : parseWhole(text.slice(star + 1));
  if (weight === undefined || weight === 0) throw bad();
  const head = star < 0 ? text : text.slice(0, star);
  const equals = head.indexOf("=");
  const zone = parseZone(equals < 0 ? head : head.slice(0, equals), bad);
  const filter = equals < 0 ? undefined : parseFilter(head.slice(equals + 1), bad);
  return Object.freeze({ zone, filter: filter && Object.freeze(filter), weight });
}

/**
 * The specs of one setting: SMTPDELAY_DNSBL's words (spaces between), or
 * the --dnsbl options; `none` (alone) is no list at all.
 */
export function parseSpecs(texts: readonly string[], what: string): ListSpec[] {
  if (texts.length === 1 && texts[0] === "none") return [];
  if (texts.length > MAX_SPECS) {
    throw new UsageError(`${what} names ${texts.length} lists; at most ${MAX_SPECS}`);
  }
  return texts.map((text) => parseSpec(text, what));
}

/** The Lists of `specs`: their zones each once, in their order; frozen. */
export function makeLists(
  specs: readonly ListSpec[],
  blockThreshold = DEFAULT_BLOCK_THRESHOLD,
  allowThreshold = DEFAULT_ALLOW_THRESHOLD,
  reply = DEFAULT_REPLY,
): Lists {
  return Object.freeze({
    specs: Object.freeze([...specs]),
    zones: Object.freeze([...new Set(specs.map((spec) => spec.zone))]),
    blockThreshold,
    allowThreshold,
    reply,
  });
}

/** A threshold: `sign` 1 wants 1 to MAX_WEIGHT, -1 wants -MAX_WEIGHT to -1. */
export function parseThreshold(text: string, sign: 1 | -1, what: string): number {
  const value = parseWhole(text);
  if (value === undefined || Math.sign(value) !== sign) {
    const range = sign > 0 ? `1 to ${MAX_WEIGHT}` : `-${MAX_WEIGHT} to -1`;
    throw new UsageError(`${what} wants a whole number from ${range}, got "${text}"`);
  }
  return value;
}

/** `CODE TEXT`: a 4xx or 5xx code, a space, 1 to MAX_TEXT printable ASCII characters. */
export function parseReply(text: string, what: string): ListReply {
  const parsed = /^([45][0-9][0-9]) ([ -~]+)$/.exec(text);
  if (!parsed || parsed[2]!.length > MAX_TEXT || parsed[2]!.trim() === "") {
    throw new UsageError(
      `${what} wants CODE TEXT, CODE 4xx or 5xx and TEXT 1 to ${MAX_TEXT} printable ` +
        `ASCII characters, got "${text.slice(0, 100)}"`,
    );
  }
  return Object.freeze({ code: Number(parsed[1]), text: parsed[2]! });
}

/**
 * What the weights can reach, as warnings: a threshold no sum of weights
 * reaches does nothing (a blocklist threshold with no positive weight, or an
 * allowlist threshold with no negative one, is the admin's meaning and says
 * nothing).
 */
export function unreachable(lists: Lists, blockWhat: string, allowWhat: string): string[] {
  const plus = lists.specs.reduce((sum, s) => sum + Math.max(s.weight, 0), 0);
  const minus = lists.specs.reduce((sum, s) => sum + Math.min(s.weight, 0), 0);
  const warnings: string[] = [];
  if (plus > 0 && plus < lists.blockThreshold) {
    warnings.push(
      `${blockWhat} ${lists.blockThreshold} is out of reach: the blocklists' weights add up to ${plus}`,
    );
  }
  if (minus < 0 && minus > lists.allowThreshold) {
    warnings.push(
      `${allowWhat} ${lists.allowThreshold} is out of reach: the allowlists' weights add up to ${minus}`,
    );
  }
  return warnings;
}

/** The name to ask `zone` about `ip`: reversed octets, or IPv6's 32 reversed nibbles. */
export function queryName(ip: Ip, zone: string): string {
  return `${reversedLabels(ip)}.${zone}`;
}

/** An answer's four octets, or undefined for anything but a dotted quad. */
function octetsOf(address: string): number[] | undefined {
  const parts = address.split(".");
  return parts.length === 4 && parts.every((p) => BYTE.test(p)) ? parts.map(Number) : undefined;
}

/** Whether `address` passes `filter`. */
export function passes(filter: Filter, address: string): boolean {
  const octets = octetsOf(address);
  return !!octets &&
    filter.every((ranges, i) =>
      ranges.some(([low, high]) => octets[i]! >= low && octets[i]! <= high)
    );
}

/**
 * Whether an answer says "listed" to a spec without a filter: an address in
 * 127.0.0.0/8 (RFC 5782) but not 127.255.255.0/24, where Spamhaus answers a
 * query it refuses (a public resolver, a quota) and DNSWL an overuse. An
 * answer outside 127.0.0.0/8 is a resolver's redirect of a name that does
 * not exist, never a listing.
 */
export function isListing(address: string): boolean {
  const octets = octetsOf(address);
  return !!octets && octets[0] === 127 && !(octets[1] === 255 && octets[2] === 255);
}
