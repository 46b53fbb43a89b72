/**
 * One client's listing: its zones asked at once (ask.ts), or read from the
 * memory's cache, their answers judged as they come (score.ts), until the
 * score decides, the deadline (-t) passes or the screening ends. Warnings:
 * one per zone that failed or did not answer in time, one per answer that
 * is not a listing.
 */
import { formatIpShort, type Ip } from "../ip.ts";
import * as log from "../log.ts";
import type { ListCache } from "../store/store.ts";
import { ask, type Asking, type Datagrams, type Follow, type ListServer } from "./ask.ts";
import { type Answers, judge, type Judgement } from "./score.ts";
import { type Lists, queryName } from "./spec.ts";

/** Longest an answer is kept in the memory, whatever its TTL (postscreen's dnsbl_max_ttl). */
export const MAX_CACHE_SECONDS = 3600;

/** What a listing needs from the screening that starts it. */
export interface ListingParts {
  readonly lists: Lists;
  readonly ip: Ip;
  /** The client's address, as the log writes it. */
  readonly ipText: string;
  readonly server: ListServer;
  /** The memory's answers for this address, still valid; undefined without a memory. */
  readonly cached: Answers | undefined;
  readonly libc: Datagrams;
  readonly follow: Follow;
  /** How long the zones may take to answer (-t). */
  readonly deadlineMs: number;
  /** ms since the epoch, for the cache's expiry. */
  readonly wallNow: () => number;
}

export class Listing {
  private readonly answers = new Map<string, readonly string[]>();
  /** Answers got now, for the memory: addresses and until when (ms since the epoch). */
  private readonly fresh = new Map<string, { addresses: readonly string[]; until: number }>();
  private asking: Asking | undefined;
  private readonly oddSeen = new Set<string>();
  private over = false;
  private final: Judgement | undefined;
  private settle!: () => void;
  /**
   * Resolves once no answer still to come can change the verdict (block,
   * allow or none), or the listing ends.
   */
  readonly decisive: Promise<void> = new Promise((resolve) => this.settle = resolve);

  constructor(private readonly parts: ListingParts) {
    const { lists, ip, cached } = parts;
    for (const zone of lists.zones) {
      const known = cached?.get(zone);
      if (known) this.answers.set(zone, known);
    }
    // The memory's answers may decide alone (a listing that hit, kept when the verdict came
    // before the other zones answered): then no zone is asked. Not for "none": the score is
    // logged, and the answers still to come make it whole.
    const known = judge(lists, this.answers, false).verdict;
    const decided = known === "block" || known === "allow";
    const queries = decided ? [] : lists.zones.filter((zone) => !this.answers.has(zone))
      .map((zone) => ({ zone, name: queryName(ip, zone) }));
    this.asking = queries.length === 0
      ? undefined
      : ask(parts.libc, parts.server, queries, parts.follow, parts.deadlineMs, (zone, answer) => {
        if (this.over) return;
        if (answer.kind === "error") {
          this.warn(zone, answer.reason);
          this.answers.set(zone, []); // counts 0, as a zone that never answers
        } else {
          this.answers.set(zone, answer.addresses);
          const ttl = Math.min(answer.ttlSeconds ?? 0, MAX_CACHE_SECONDS);
          if (ttl > 0) {
            this.fresh.set(zone, {
              addresses: answer.addresses,
              until: parts.wallNow() + ttl * 1000,
            });
          }
        }
        this.heard();
      });
    this.heard();
  }

  /** True while zones may still answer and change the score. */
  get pending(): boolean {
    return !this.over && this.judge().verdict === undefined;
  }

  /** The judgement so far (final once over). */
  judge(): Judgement {
    return this.final ?? judge(this.parts.lists, this.answers, false);
  }

  /**
   * The wait for answers is over (the deadline, or the delay): the zones
   * that did not answer count 0, one warning each. Returns the final
   * judgement.
   */
  finish(): Judgement {
    if (this.final) return this.final;
    for (const zone of this.parts.lists.zones) {
      if (!this.answers.has(zone)) this.warn(zone, "timed out");
    }
    return this.end();
  }

  /** The screening is over without needing the rest: stops asking, says nothing. */
  abandon(): Judgement {
    return this.final ?? this.end();
  }

  /** Resolves once the socket of the queries is closed (at once if none was needed). */
  get closed(): Promise<void> {
    return this.asking?.closed ?? Promise.resolve();
  }

  /** The answers got from the DNS now, for the memory (undefined: none to keep). */
  cache(): ListCache | undefined {
    if (this.fresh.size === 0) return undefined;
    const zones: Record<string, { a: readonly string[]; until: number }> = {};
    for (const [zone, { addresses, until }] of this.fresh) zones[zone] = { a: addresses, until };
    return { ip: formatIpShort(this.parts.ip), zones };
  }

  private end(): Judgement {
    this.over = true;
    this.asking?.stop();
    this.final = judge(this.parts.lists, this.answers, true);
    this.settle(); // nothing more will come: a wait on it ends
    return this.final;
  }

  private heard(): void {
    const judged = this.judge();
    for (const odd of judged.odd) {
      if (this.oddSeen.has(odd)) continue;
      this.oddSeen.add(odd);
      const [zone, address] = odd.split("=");
      log.warning(
        `unable to use ${zone}'s answer for ${this.parts.ipText}: ${address} is not a listing`,
      );
    }
    if (judged.verdict !== undefined) this.settle();
    if (this.parts.lists.zones.every((zone) => this.answers.has(zone))) this.asking?.stop();
  }

  private warn(zone: string, why: string): void {
    log.warning(`unable to ask ${zone} about ${this.parts.ipText}: ${why}`);
  }
}
