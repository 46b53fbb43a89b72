/**
 * An SPF record's grammar (RFC 7208 4.5, 4.6, 5, 6, 7.1), pure: which of a
 * name's TXT records is its SPF record, and that record's terms as values.
 * A record with any syntax error is bad as a whole, as check_host() treats
 * it (4.6: permerror before any term is evaluated).
 */
import { parseIp } from "../ip.ts";
import { clean } from "../log.ts";
import type { Family } from "./cidr.ts";

/** `+` pass, `-` fail, `~` softfail, `?` neutral. */
export type Qualifier = "+" | "-" | "~" | "?";

/**
 * A domain-spec: a name, lowercase and without its final dot, or one with
 * macros (`%{i}._spf.example.org`), which depend on the client and the
 * sender, kept as written.
 */
export type DomainSpec =
  | { readonly kind: "name"; readonly name: string }
  | { readonly kind: "macro"; readonly text: string };

/** A network of an `ip4:` or `ip6:` mechanism, host bits as written. */
export interface Net {
  readonly family: Family;
  readonly bytes: Uint8Array;
  readonly bits: number;
}

export type Mechanism =
  | { readonly kind: "all" }
  | { readonly kind: "include"; readonly domain: DomainSpec }
  | {
    readonly kind: "a" | "mx";
    /** Absent: the domain whose record this is. */
    readonly domain: DomainSpec | undefined;
    /** The dual CIDR length: `/24//64`; 32 and 128 when not given. */
    readonly bits: Readonly<Record<Family, number>>;
  }
  | { readonly kind: "ptr"; readonly domain: DomainSpec | undefined }
  | { readonly kind: "ip"; readonly net: Net }
  | { readonly kind: "exists"; readonly domain: DomainSpec };

export interface Directive {
  readonly qualifier: Qualifier;
  readonly mechanism: Mechanism;
  /** The term as written, for reports. */
  readonly term: string;
}

export interface SpfRecord {
  /** The mechanisms, in order. */
  readonly directives: readonly Directive[];
  /** `redirect=`, with the term as written. */
  readonly redirect: { readonly domain: DomainSpec; readonly term: string } | undefined;
}

/** A record parsed: its terms, or why it is bad (the first bad term, quoted). */
export type Parsed =
  | { readonly kind: "record"; readonly record: SpfRecord }
  | { readonly kind: "bad"; readonly reason: string };

/** Which of a name's TXT records (each one's strings joined) is its SPF record. */
export type Found =
  | { readonly kind: "none" }
  | { readonly kind: "many"; readonly count: number }
  | { readonly kind: "one"; readonly text: string };

/** An SPF record starts with `v=spf1`, then a space or nothing (4.5; `v=spf10` is not one). */
export function isSpf(text: string): boolean {
  return /^v=spf1( |$)/i.test(text);
}

/** The SPF record among a name's TXT records: none, one, or several (permerror, 4.5). */
export function findRecord(txts: readonly string[]): Found {
  const spf = txts.filter(isSpf);
  if (spf.length === 0) return { kind: "none" };
  if (spf.length > 1) return { kind: "many", count: spf.length };
  return { kind: "one", text: spf[0]! };
}

/** A macro-expand (7.1): `%{` letter, digits, `r`, delimiters `}`, or the escapes `%%` `%_` `%-`. */
const MACRO = /%(?:\{[slodiphv][0-9]*r?[-.+,/_=]*\}|[%_-])/gi;
/** A macro-expand of any letter, as an unknown modifier may hold (`c`, `r`, `t`: `exp=` text's). */
const ANY_MACRO = /%(?:\{[slodiphcrtv][0-9]*r?[-.+,/_=]*\}|[%_-])/gi;
/** A domain-spec that ends with a macro-expand, which 4.6.1's domain-end allows. */
const MACRO_END = new RegExp(`(?:${MACRO.source})$`, "i");
/** The last label (4.6.1's toplabel): letters and digits, not all digits; hyphens inside. */
const TOPLABEL = /^(?:[a-z0-9]*[a-z][a-z0-9]*|[a-z0-9]+-[a-z0-9-]*[a-z0-9])$/i;
/** A label of macro-literal characters: visible ASCII but `%`. */
const LABEL = /^[!-$&-~]{1,63}$/;

/** A domain-spec (4.6.1, 7.1), or undefined when it is not one. */
export function parseDomainSpec(text: string): DomainSpec | undefined {
  const macro = text.includes("%");
  const literal = macro ? text.replace(MACRO, "x") : text;
  if (literal.includes("%")) return undefined; // a `%` that starts no macro
  // domain-end: a macro-expand, or "." and a top label.
  if (macro && MACRO_END.test(text) && /^[!-~]+$/.test(text)) return { kind: "macro", text };
  const labels = literal.replace(/\.$/, "").split(".");
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l))) return undefined;
  if (!TOPLABEL.test(labels.at(-1)!)) return undefined;
  if (macro) return { kind: "macro", text };
  const name = text.replace(/\.$/, "").toLowerCase();
  return name.length > 253 ? undefined : { kind: "name", name };
}

/** A CIDR length of the grammar: no leading zero, at most `max`; undefined when absent. */
function cidrLength(text: string | undefined, max: number): number | undefined {
  if (text === undefined) return undefined;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(text) || Number(text) > max) throw new Bad();
  return Number(text);
}

/** Thrown inside the parser for a bad term; parseRecord turns it into a value. */
class Bad extends Error {}

function domainOf(text: string): DomainSpec {
  const domain = parseDomainSpec(text);
  if (!domain) throw new Bad();
  return domain;
}

/** `a` and `mx`: `[:domain-spec][/N][//N]`, the first `/` outside a macro starting the lengths. */
function dualCidr(rest: string): { domain: DomainSpec | undefined; bits: Record<Family, number> } {
  let cut = rest.length;
  for (let i = 0, inMacro = false; i < rest.length; i++) {
    if (rest.startsWith("%{", i)) inMacro = true;
    else if (rest[i] === "}") inMacro = false;
    else if (rest[i] === "/" && !inMacro) {
      cut = i;
      break;
    }
  }
  const spec = rest.slice(0, cut);
  const lengths = /^(?:\/([0-9]+))?(?:\/\/([0-9]+))?$/.exec(rest.slice(cut));
  if (!lengths || (spec !== "" && !spec.startsWith(":"))) throw new Bad();
  return {
    domain: spec === "" ? undefined : domainOf(spec.slice(1)),
    bits: { 4: cidrLength(lengths[1], 32) ?? 32, 6: cidrLength(lengths[2], 128) ?? 128 },
  };
}

/** `ip4:` and `ip6:` networks; an IPv4-mapped `ip6:` address keeps its 16 bytes. */
function network(family: Family, rest: string): Net {
  const m = /^:([0-9a-f.:]+)(?:\/([0-9]+))?$/i.exec(rest);
  if (!m || (family === 4) === m[1]!.includes(":")) throw new Bad();
  const ip = parseIp(m[1]!);
  if (!ip || (family === 4 && ip.family !== 4)) throw new Bad();
  const bytes = family === 6 && ip.family === 4
    ? Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...ip.bytes])
    : ip.bytes;
  const max = family === 4 ? 32 : 128;
  return { family, bytes, bits: cidrLength(m[2], max) ?? max };
}

function mechanism(name: string, rest: string): Mechanism {
  const needsDomain = () => {
    if (!rest.startsWith(":")) throw new Bad();
    return domainOf(rest.slice(1));
  };
  switch (name) {
    case "all":
      if (rest !== "") throw new Bad();
      return { kind: "all" };
    case "include":
      return { kind: "include", domain: needsDomain() };
    case "exists":
      return { kind: "exists", domain: needsDomain() };
    case "a":
    case "mx":
      return { kind: name, ...dualCidr(rest) };
    case "ptr":
      return { kind: "ptr", domain: rest === "" ? undefined : needsDomain() };
    case "ip4":
      return { kind: "ip", net: network(4, rest) };
    case "ip6":
      return { kind: "ip", net: network(6, rest) };
  }
  throw new Bad();
}

/**
 * The terms of an SPF record (`v=spf1 ...`), or why it is bad: an unknown
 * mechanism, a malformed domain-spec, network or CIDR length, `redirect=` or
 * `exp=` twice, a byte outside visible ASCII. Unknown modifiers are checked
 * and ignored, as `exp=` is (it only explains a fail).
 */
export function parseRecord(text: string): Parsed {
  if (!isSpf(text)) return { kind: "bad", reason: "it does not start with v=spf1" };
  const directives: Directive[] = [];
  let redirect: SpfRecord["redirect"];
  let exp = false;
  for (const term of text.slice(6).split(" ").filter((t) => t !== "")) {
    try {
      if (!/^[!-~]+$/.test(term)) throw new Bad();
      const modifier = /^([a-z][a-z0-9_.-]*)=(.*)$/i.exec(term);
      if (modifier) {
        const name = modifier[1]!.toLowerCase();
        const value = modifier[2]!;
        if (name === "redirect") {
          if (redirect) throw new Bad();
          redirect = { domain: domainOf(value), term };
        } else if (name === "exp") {
          if (exp) throw new Bad();
          domainOf(value);
          exp = true;
        } else if (value.replace(ANY_MACRO, "").includes("%")) {
          throw new Bad();
        }
        continue;
      }
      const directive = /^([-+~?]?)([a-z0-9]+)(.*)$/i.exec(term);
      if (!directive) throw new Bad();
      directives.push({
        qualifier: (directive[1] || "+") as Qualifier,
        mechanism: mechanism(directive[2]!.toLowerCase(), directive[3]!),
        term,
      });
    } catch (e) {
      if (!(e instanceof Bad)) throw e;
      // Cleaned: a record's bytes reach a log line and a comment line.
      return { kind: "bad", reason: `bad term "${clean(term)}"` };
    }
  }
  return { kind: "record", record: { directives, redirect } };
}
