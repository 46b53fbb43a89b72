/**
 * The lists' answers -> a score and what it decides. Pure. A spec counts its
 * weight once when any answer of its zone passes its filter; the score is the
 * sum. It decides as soon as the zones still unanswered cannot change the
 * outcome, whatever they answer.
 */
import { isListing, type Lists, passes } from "./spec.ts";

/** Each answered zone's addresses ([]: not listed). A zone not in the map has not answered. */
export type Answers = ReadonlyMap<string, readonly string[]>;

/**
 * What the score decides: `block` (at or above the blocklist threshold),
 * `allow` (at or below the allowlist threshold), `none` (neither, and no
 * answer can change it), or undefined (the zones still unanswered decide).
 */
export type ListVerdict = "block" | "allow" | "none" | undefined;

export interface Judgement {
  /** The weights of the specs that hit, summed. */
  readonly score: number;
  /** The zones with a spec that hit, each once, in the specs' order. */
  readonly hits: readonly string[];
  readonly verdict: ListVerdict;
  /** `ZONE=ADDRESS` of answers that are not listings (see isListing) and no filter took. */
  readonly odd: readonly string[];
}

/** Whether one answer counts for one spec. */
function counts(spec: Lists["specs"][number], address: string): boolean {
  return spec.filter ? passes(spec.filter, address) : isListing(address);
}

/**
 * Judges the answers so far. `final`: no more answers will come (the
 * deadline, or the delay, is over), and a zone that has not answered counts 0.
 */
export function judge(lists: Lists, answers: Answers, final: boolean): Judgement {
  let score = 0;
  // What the unanswered zones could still add, at least and at most.
  let least = 0;
  let most = 0;
  const hits: string[] = [];
  for (const spec of lists.specs) {
    const addresses = answers.get(spec.zone);
    if (addresses === undefined) {
      if (spec.weight < 0) least += spec.weight;
      else most += spec.weight;
    } else if (addresses.some((address) => counts(spec, address))) {
      score += spec.weight;
      if (!hits.includes(spec.zone)) hits.push(spec.zone);
    }
  }
  const odd: string[] = [];
  for (const [zone, addresses] of answers) {
    const specs = lists.specs.filter((s) => s.zone === zone);
    for (const address of addresses) {
      if (!isListing(address) && !specs.some((s) => counts(s, address))) {
        odd.push(`${zone}=${address}`);
      }
    }
  }
  if (final) least = most = 0;
  const verdict: ListVerdict = score + least >= lists.blockThreshold
    ? "block"
    : score + most <= lists.allowThreshold
    ? "allow"
    : score + most < lists.blockThreshold && score + least > lists.allowThreshold
    ? "none"
    : undefined;
  return { score, hits, verdict, odd };
}
