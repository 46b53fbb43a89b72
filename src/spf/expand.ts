/**
 * A domain's SPF record expanded into the networks it passes, over a
 * resolver: check_host() of RFC 7208 run for every client at once. The
 * terms are taken in order, as check_host() takes them; the first that
 * matches a client decides, so each mechanism lists only the addresses no
 * term before it matched, and only `+` mechanisms list any: `-`, `~` and
 * `?` ones (`-all` too) take their addresses out of what follows and list
 * nothing. `include:` lists what the included record passes; `redirect=`
 * (unless the record has `all`) what its target passes, to the clients no
 * mechanism matched.
 *
 * Where check_host() would give permerror (an 11th DNS lookup, a 3rd void
 * lookup, an `include:` of a name without a good SPF record, a loop, more
 * than 10 MX names), the expansion stops there and keeps what it found:
 * the clients matched before that point pass at every receiver; those
 * that reach it do not. The counts are those of a client that matches
 * nothing (the most any client causes), so what is kept never holds a
 * client a receiver's check would not pass. `ptr`, `exists:` and macros
 * depend on the client: they list nothing and are reported.
 */
import {
  coversAll,
  everything,
  type Family,
  netRange,
  type Range,
  subtract,
  union,
} from "./cidr.ts";
import {
  type DomainSpec,
  findRecord,
  parseRecord,
  type Qualifier,
  type SpfRecord,
} from "./record.ts";

/** The DNS as the expansion needs it. A method throws only when the DNS fails (not for "none"). */
export interface Resolver {
  /** The TXT records of `name`, each one's strings joined; none when the name has none. */
  txt(name: string): Promise<readonly string[]>;
  /** The A (4) or AAAA (6) addresses of `name`, as bytes; none when it has none. */
  addresses(name: string, family: Family): Promise<readonly Uint8Array[]>;
  /** The exchange names of `name`'s MX records (a null MX, `.`, gives none). */
  mx(name: string): Promise<readonly string[]>;
}

/** RFC 7208 4.6.4: terms that query the DNS, per top domain. */
export const MAX_LOOKUPS = 10;
/** RFC 7208 4.6.4: terms that find nothing (NXDOMAIN or no record), per family. */
export const MAX_VOID_LOOKUPS = 2;
/** RFC 7208 4.6.4: MX names one `mx` may look up. */
export const MAX_MX_NAMES = 10;

const FAMILIES: readonly Family[] = [4, 6];

/** Something the expansion could not list, said against the term and the record it is in. */
export type Note =
  /** A term that depends on the client: it lists nothing. */
  | {
    readonly kind: "unexpandable";
    readonly domain: string;
    readonly term: string;
    readonly why: string;
  }
  /** Where check_host() gives permerror: nothing after it is listed, for those families. */
  | {
    readonly kind: "stopped";
    readonly domain: string;
    readonly term: string;
    readonly why: string;
    readonly families: readonly Family[];
  };

/** A top domain expanded, or why it cannot be. */
export type Expansion =
  | {
    readonly kind: "expanded";
    readonly domain: string;
    /** What its SPF record passes, merged. */
    readonly ranges: readonly Range[];
    /** DNS lookups counted against MAX_LOOKUPS, at most MAX_LOOKUPS. */
    readonly lookups: number;
    readonly notes: readonly Note[];
  }
  | {
    readonly kind: "failed";
    readonly domain: string;
    readonly reason: string;
    readonly notes: readonly Note[];
  };

/** The state of one top domain's expansion: its counts, and where it stopped. */
class Walk {
  lookups = 0;
  readonly voids: Record<Family, number> = { 4: 0, 6: 0 };
  readonly stopped = new Set<Family>();
  readonly notes: Note[] = [];

  constructor(readonly resolver: Resolver) {}

  /** The families still expanded. */
  live(): Family[] {
    return FAMILIES.filter((f) => !this.stopped.has(f));
  }

  stop(domain: string, term: string, why: string, families: readonly Family[] = this.live()) {
    const now = families.filter((f) => !this.stopped.has(f));
    if (now.length === 0) return;
    now.forEach((f) => this.stopped.add(f));
    this.notes.push({ kind: "stopped", domain, term, why, families: now });
  }

  /** Counts a term that queries the DNS; false (and stopped) when it is one too many. */
  count(domain: string, term: string): boolean {
    if (++this.lookups <= MAX_LOOKUPS) return true;
    this.stop(domain, term, `more than ${MAX_LOOKUPS} DNS lookups`);
    return false;
  }

  /** Counts a term that found no address of `family`; true when it is one too many. */
  void(family: Family): boolean {
    return ++this.voids[family] > MAX_VOID_LOOKUPS;
  }

  unexpandable(domain: string, term: string, why: string): void {
    this.notes.push({ kind: "unexpandable", domain, term, why });
  }

  /** The SPF record of `name`, or why there is no good one. */
  async fetch(name: string): Promise<{ record: SpfRecord } | { error: string }> {
    const found = findRecord(await this.resolver.txt(name));
    if (found.kind === "none") return { error: `no SPF record at ${name}` };
    if (found.kind === "many") return { error: `${found.count} SPF records at ${name}` };
    const parsed = parseRecord(found.text);
    return parsed.kind === "bad"
      ? { error: `a bad SPF record at ${name}: ${parsed.reason}` }
      : parsed;
  }
}

const MACRO = "a macro depends on the client";

/** A target of `include:` or `redirect=` that can be expanded, or undefined (noted, or stopped). */
function target(
  walk: Walk,
  domain: string,
  term: string,
  spec: DomainSpec,
  path: readonly string[],
): string | undefined {
  if (spec.kind === "macro") return void walk.unexpandable(domain, term, MACRO);
  if (!path.includes(spec.name)) return spec.name;
  walk.stop(domain, term, `a loop: ${spec.name} is already being expanded`);
  return undefined;
}

/** What `record`, the SPF record of `domain`, passes; `path`: the domains being expanded. */
async function evaluate(
  walk: Walk,
  domain: string,
  record: SpfRecord,
  path: readonly string[],
): Promise<Range[]> {
  let covered: Range[] = [];
  let pass: Range[] = [];
  /** A mechanism that matches `ranges` (of the families in `families`) with `qualifier`. */
  const add = (qualifier: Qualifier, ranges: readonly Range[], families: readonly Family[]) => {
    const mine = ranges.filter((r) => families.includes(r.family));
    if (qualifier === "+") pass = union([...pass, ...subtract(mine, covered)]);
    covered = union([...covered, ...mine]);
  };
  /** The record of an `include:` or `redirect=` target, expanded; undefined when it stopped. */
  const inner = async (term: string, spec: DomainSpec): Promise<Range[] | undefined> => {
    const name = target(walk, domain, term, spec, path);
    if (name === undefined) return undefined;
    const fetched = await walk.fetch(name);
    if ("error" in fetched) return void walk.stop(domain, term, fetched.error);
    return await evaluate(walk, name, fetched.record, [...path, name]);
  };

  for (const { qualifier, mechanism: m, term } of record.directives) {
    const live = walk.live();
    if (live.length === 0) return pass;
    switch (m.kind) {
      case "all": // the last term any client reaches; redirect= is not used
        add(qualifier, live.map(everything), live);
        return pass;
      case "ip":
        add(qualifier, [netRange(m.net.family, m.net.bytes, m.net.bits)], live);
        break;
      case "ptr":
      case "exists":
        if (!walk.count(domain, term)) return pass;
        walk.unexpandable(
          domain,
          term,
          m.kind === "ptr" ? "ptr depends on the client's name" : "exists depends on the client",
        );
        break;
      case "a":
      case "mx": {
        if (!walk.count(domain, term)) return pass;
        const spec = m.domain ?? { kind: "name", name: domain };
        if (spec.kind === "macro") {
          walk.unexpandable(domain, term, MACRO);
          break;
        }
        const hosts = m.kind === "a" ? [spec.name] : await walk.resolver.mx(spec.name);
        if (hosts.length > MAX_MX_NAMES) {
          walk.stop(domain, term, `more than ${MAX_MX_NAMES} MX names at ${spec.name}`);
          return pass;
        }
        const ranges: Range[] = [];
        const overVoid: Family[] = [];
        for (const family of live) {
          const before = ranges.length;
          for (const host of hosts) {
            for (const bytes of await walk.resolver.addresses(host, family)) {
              ranges.push(netRange(family, bytes, m.bits[family]));
            }
          }
          if (ranges.length === before && walk.void(family)) overVoid.push(family);
        }
        add(qualifier, ranges, live);
        walk.stop(domain, term, `more than ${MAX_VOID_LOOKUPS} void lookups`, overVoid);
        break;
      }
      case "include": {
        if (!walk.count(domain, term)) return pass;
        const included = await inner(term, m.domain);
        // What the included record passes matches; the rest goes on (or stopped in there).
        if (included) add(qualifier, included, live);
        break;
      }
    }
  }
  if (record.redirect && walk.live().length > 0) {
    const live = walk.live();
    const { term, domain: spec } = record.redirect;
    if (!walk.count(domain, term)) return pass;
    const redirected = await inner(term, spec);
    if (redirected) add("+", redirected, live);
  }
  return pass;
}

/**
 * Expands the SPF record of `domain` (a name, lowercase). Fails when it has
 * no good SPF record, passes no address that can be listed, or passes every
 * address of a family (`+all`): an allowlist of everyone exempts everyone.
 * Throws what the resolver throws when the DNS fails.
 */
export async function expand(domain: string, resolver: Resolver): Promise<Expansion> {
  const walk = new Walk(resolver);
  const failed = (reason: string): Expansion => ({
    kind: "failed",
    domain,
    reason,
    notes: walk.notes,
  });
  const fetched = await walk.fetch(domain);
  if ("error" in fetched) return failed(fetched.error);
  const ranges = union(await evaluate(walk, domain, fetched.record, [domain]));
  for (const family of FAMILIES) {
    if (coversAll(ranges, family)) return failed(`it passes every IPv${family} address`);
  }
  if (ranges.length === 0) {
    const stop = walk.notes.find((n) => n.kind === "stopped");
    return failed(`it passes no address that can be listed${stop ? ` (${stop.why})` : ""}`);
  }
  return {
    kind: "expanded",
    domain,
    ranges,
    lookups: Math.min(walk.lookups, MAX_LOOKUPS),
    notes: walk.notes,
  };
}
