import assert from "node:assert/strict";
import { type Answers, judge, type ListVerdict } from "../src/lists/score.ts";
import { type Lists, makeLists, parseSpecs } from "../src/lists/spec.ts";

/** Lists of these specs and thresholds. */
const listsOf = (specs: string[], block = 1, allow = -1): Lists =>
  makeLists(parseSpecs(specs, "--dnsbl"), block, allow);

const ZEN_DNSWL = listsOf(
  [
    "zen.test*3",
    "spamcop.test*2",
    "dnswl.test=127.0.[0..255].[1..3]*-5",
  ],
  3,
  -2,
);

interface Row {
  readonly name: string;
  readonly lists: Lists;
  /** Each answered zone's addresses; a zone missing has not answered. */
  readonly answers: Record<string, string[]>;
  readonly final?: boolean;
  readonly score: number;
  readonly hits: string[];
  readonly verdict: ListVerdict;
  readonly odd?: string[];
}

Deno.test("judge() sums the weights of the specs that hit, and decides as soon as it can", async (t) => {
  const rows: Row[] = [
    {
      name: "nothing answered yet: it depends",
      lists: ZEN_DNSWL,
      answers: {},
      score: 0,
      hits: [],
      verdict: undefined,
    },
    {
      name: "listed by zen (3), dnswl not yet: its -5 could still bring the score under 3",
      lists: ZEN_DNSWL,
      answers: { "zen.test": ["127.0.0.2"] },
      score: 3,
      hits: ["zen.test"],
      verdict: undefined,
    },
    {
      name: "zen (3) and spamcop (2), dnswl not yet: 5-5=0 could still fall below 3",
      lists: ZEN_DNSWL,
      answers: { "zen.test": ["127.0.0.2"], "spamcop.test": ["127.0.0.2"] },
      score: 5,
      hits: ["zen.test", "spamcop.test"],
      verdict: undefined,
    },
    {
      name: "zen and spamcop, dnswl says not listed: 5 >= 3",
      lists: ZEN_DNSWL,
      answers: { "zen.test": ["127.0.0.2"], "spamcop.test": ["127.0.0.2"], "dnswl.test": [] },
      score: 5,
      hits: ["zen.test", "spamcop.test"],
      verdict: "block",
    },
    {
      name: "dnswl lists it (-5), zen not yet: -5+3+2=0 > -2, it depends",
      lists: ZEN_DNSWL,
      answers: { "dnswl.test": ["127.0.10.2"] },
      score: -5,
      hits: ["dnswl.test"],
      verdict: undefined,
    },
    {
      name: "dnswl lists it, zen does not, spamcop not yet: -5+2=-3 <= -2 at most",
      lists: ZEN_DNSWL,
      answers: { "dnswl.test": ["127.0.10.2"], "zen.test": [] },
      score: -5,
      hits: ["dnswl.test"],
      verdict: "allow",
    },
    {
      name: "dnswl's answer outside its filter (trust 0) counts nothing",
      lists: ZEN_DNSWL,
      answers: { "dnswl.test": ["127.0.10.0"], "zen.test": [], "spamcop.test": [] },
      score: 0,
      hits: [],
      verdict: "none",
    },
    {
      name: "every zone answered, none listed",
      lists: ZEN_DNSWL,
      answers: { "dnswl.test": [], "zen.test": [], "spamcop.test": [] },
      score: 0,
      hits: [],
      verdict: "none",
    },
    {
      name: "final: zones that never answered count 0",
      lists: ZEN_DNSWL,
      answers: { "spamcop.test": ["127.0.0.2"] },
      final: true,
      score: 2,
      hits: ["spamcop.test"],
      verdict: "none",
    },
    {
      name: "final: zen alone reaches 3",
      lists: ZEN_DNSWL,
      answers: { "zen.test": ["127.0.0.4"] },
      final: true,
      score: 3,
      hits: ["zen.test"],
      verdict: "block",
    },
    {
      name: "weights summed across zones: two of weight 1 reach 2, one does not",
      lists: listsOf(["a.test", "b.test", "c.test"], 2),
      answers: { "a.test": ["127.0.0.2"], "b.test": ["127.0.0.2"] },
      score: 2,
      hits: ["a.test", "b.test"],
      verdict: "block",
    },
    {
      name: "one zone of three at weight 1, the others silent for good",
      lists: listsOf(["a.test", "b.test", "c.test"], 2),
      answers: { "a.test": ["127.0.0.2"] },
      final: true,
      score: 1,
      hits: ["a.test"],
      verdict: "none",
    },
    {
      name: "two specs of one zone, each with its filter: both count, the zone named once",
      lists: listsOf(["zen.test=127.0.0.[10;11]*8", "zen.test=127.0.0.[4..7]*6"], 20),
      answers: { "zen.test": ["127.0.0.4", "127.0.0.10"] },
      score: 14,
      hits: ["zen.test"],
      verdict: "none",
    },
    {
      name: "a filter that excludes the answer: not listed",
      lists: listsOf(["zen.test=127.0.0.2"]),
      answers: { "zen.test": ["127.0.0.4"] },
      score: 0,
      hits: [],
      verdict: "none",
    },
    {
      name: "several answers, one spec: its weight once",
      lists: listsOf(["zen.test*2"], 3),
      answers: { "zen.test": ["127.0.0.2", "127.0.0.4", "127.0.0.10"] },
      score: 2,
      hits: ["zen.test"],
      verdict: "none",
    },
    {
      name: "Spamhaus refuses the resolver (127.255.255.254): no listing, noted",
      lists: listsOf(["zen.test"]),
      answers: { "zen.test": ["127.255.255.254"] },
      score: 0,
      hits: [],
      verdict: "none",
      odd: ["zen.test=127.255.255.254"],
    },
    {
      name: "a resolver that answers NXDOMAIN with its own address: no listing, noted",
      lists: listsOf(["zen.test"]),
      answers: { "zen.test": ["198.51.100.80"] },
      score: 0,
      hits: [],
      verdict: "none",
      odd: ["zen.test=198.51.100.80"],
    },
    {
      name: "an explicit filter may take what the default would not",
      lists: listsOf(["odd.test=10.0.0.[1..2]"]),
      answers: { "odd.test": ["10.0.0.1"] },
      score: 1,
      hits: ["odd.test"],
      verdict: "block",
    },
    {
      name: "a filtered allowlist's 127.0.0.255 (over its quota): not counted, noted",
      lists: listsOf(["a.test", "dnswl.test=127.0.[0..255].[1..3]*-5"]),
      answers: { "dnswl.test": ["127.0.0.255"], "a.test": [] },
      score: 0,
      hits: [],
      verdict: "none",
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const answers: Answers = new Map(Object.entries(row.answers));
      const got = judge(row.lists, answers, row.final ?? false);
      assert.deepEqual(
        { score: got.score, hits: got.hits, verdict: got.verdict, odd: got.odd },
        { score: row.score, hits: row.hits, verdict: row.verdict, odd: row.odd ?? [] },
      );
    });
  }
});

Deno.test("judge(): a decision taken never changes as more answers come", () => {
  // Every order of answers and every subset: once block or allow, always the same.
  const lists = ZEN_DNSWL;
  const answers: Array<[string, string[]]> = [
    ["zen.test", ["127.0.0.2"]],
    ["spamcop.test", []],
    ["dnswl.test", ["127.0.0.3"]],
  ];
  const orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
  for (const order of orders) {
    const got = new Map<string, string[]>();
    let decided: ListVerdict;
    for (const i of order) {
      got.set(...answers[i]!);
      const verdict = judge(lists, got, false).verdict;
      if (decided === "block" || decided === "allow") assert.equal(verdict, decided, `${order}`);
      decided = verdict;
    }
    assert.equal(decided, judge(lists, got, true).verdict);
  }
});
