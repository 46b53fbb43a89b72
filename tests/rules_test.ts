import assert from "node:assert/strict";
import { CdbError, openCdb } from "../src/serve/cdb.ts";
import {
  lookupRule,
  lookupRuleInCdb,
  parseRule,
  type Rule,
  ruleKeys,
  type RuleMatch,
  type RuleQuery,
} from "../src/serve/rules.ts";
import { tcprules, tcprulescheck } from "./fixtures/tcprules.ts";
import { withTempDir } from "./fixtures/temp_dir.ts";

const bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0)); // "\xe9" is one byte

/** A rules table without a file: key -> record data given as a binary string. */
const table = (records: Record<string, string>) => (key: string) =>
  Object.hasOwn(records, key) ? bytes(records[key]!) : undefined;

const JOE: RuleQuery = { ip: "1.2.3.4", host: "mail.example.com", info: "joe" };

Deno.test("ruleKeys() lists the keys in tcpserver's order", async (t) => {
  const rows: [string, RuleQuery, string[]][] = [
    ["ip only", { ip: "1.2.3.4" }, ["1.2.3.4", "1.2.3.", "1.2.", "1.", ""]],
    ["ip and host", { ip: "1.2.3.4", host: "a.b.c" }, [
      "1.2.3.4",
      "=a.b.c",
      "1.2.3.",
      "1.2.",
      "1.",
      "=.b.c",
      "=.c",
      "=",
      "",
    ]],
    ["ip, host and info", JOE, [
      "joe@1.2.3.4",
      "joe@=mail.example.com",
      "1.2.3.4",
      "=mail.example.com",
      "1.2.3.",
      "1.2.",
      "1.",
      "=.example.com",
      "=.com",
      "=",
      "",
    ]],
    ["info without host", { ip: "1.2.3.4", info: "joe" }, [
      "joe@1.2.3.4",
      "1.2.3.4",
      "1.2.3.",
      "1.2.",
      "1.",
      "",
    ]],
    ["host without a dot", { ip: "10.0.0.1", host: "localhost" }, [
      "10.0.0.1",
      "=localhost",
      "10.0.0.",
      "10.0.",
      "10.",
      "=",
      "",
    ]],
    ["empty host and info, kept as tcpserver keeps them", { ip: "1.2.3.4", host: "", info: "" }, [
      "@1.2.3.4",
      "@=",
      "1.2.3.4",
      "=",
      "1.2.3.",
      "1.2.",
      "1.",
      "=",
      "",
    ]],
    ["IPv6: prefixes end with ':'", { ip: "2001:db8::1" }, [
      "2001:db8::1",
      "2001:db8::",
      "2001:db8:",
      "2001:",
      "",
    ]],
  ];
  for (const [name, query, want] of rows) {
    await t.step(name, () => {
      assert.deepEqual(ruleKeys(query), want);
    });
  }
});

// One row per step of the order: the file holds the keys from that step on, plus keys that
// must never match this connection; the row says which key wins. tcprulescheck must agree.
Deno.test("lookupRuleInCdb() takes the first key present, as tcprulescheck does", async (t) => {
  const order = ruleKeys(JOE);
  const decoys = ["bob@1.2.3.4", "joe@1.2.3.5", "1.2.3.5", "=example.com", "=mail", "1.3.", "2."];
  await withTempDir(async (dir) => {
    for (let step = 0; step <= order.length; step++) {
      const want = order[step]; // undefined past the end: no rule at all
      await t.step(
        want === undefined ? "no rule: default allow" : JSON.stringify(want),
        async () => {
          const keys = [...decoys, ...order.slice(step)];
          const lines = keys.map((key) => `${key}:allow,RULE="${key}"\n`).join("");
          const path = `${dir}/step${step}.cdb`;
          const got = lookupRuleInCdb(openCdb(await tcprules(path, lines)), JOE);
          const env = want === undefined ? {} : { RULE: want };
          assert.deepEqual(got, { kind: "allow", env, key: want });
          const checked = await tcprulescheck(path, JOE);
          assert.equal(checked.key, got.key, `tcprulescheck: got ${checked.key}, want ${got.key}`);
        },
      );
    }
  });
});

Deno.test("lookupRule() takes the first IPv6 prefix present", async (t) => {
  const query = { ip: "2001:db8::1", host: "h.example" };
  const rows: [Record<string, string>, string | undefined][] = [
    [{ "2001:db8::1": "", "2001:db8::": "", "2001:": "", "=h.example": "" }, "2001:db8::1"],
    [{ "2001:db8::": "", "2001:": "", "=h.example": "" }, "=h.example"],
    [{ "2001:db8::": "", "2001:db8:": "", "2001:": "", "=.example": "" }, "2001:db8::"],
    [{ "2001:db8:": "", "2001:": "", "=.example": "" }, "2001:db8:"],
    [{ "2001:": "", "=.example": "" }, "2001:"],
    [{ "2001": "", "=.example": "", "": "" }, "=.example"],
    [{ "2001:d": "" }, undefined],
  ];
  for (const [records, want] of rows) {
    await t.step(String(want), () => {
      assert.equal(lookupRule(table(records), query).key, want);
    });
  }
});

Deno.test("parseRule() reads record data as tcpserver's found() does", async (t) => {
  const rows: [string, string, Rule][] = [
    ["allow: tcprules writes nothing", "", { kind: "allow", env: {} }],
    ["deny", "D\0", { kind: "deny", env: {} }],
    ["variables, one empty", "+A=x\0+B=\0", { kind: "allow", env: { A: "x", B: "" } }],
    ["deny with a variable", "D\0+X=y\0", { kind: "deny", env: { X: "y" } }],
    ["deny after a variable", "+X=y\0D\0", { kind: "deny", env: { X: "y" } }],
    ["a later variable wins", "+A=1\0+A=2\0", { kind: "allow", env: { A: "2" } }],
    ["split at the first =", "+E=a=b\0", { kind: "allow", env: { E: "a=b" } }],
    ["an empty name, as tcpserver passes it", "+=x\0", { kind: "allow", env: { "": "x" } }],
    ["'A' does not undo 'D'", "D\0A\0", { kind: "deny", env: {} }],
    ["'+' without '=' is ignored", "+A\0+B=1\0", { kind: "allow", env: { B: "1" } }],
    ["'=' in a later entry is not this entry's", "+A\0=x\0", { kind: "allow", env: {} }],
    ["only the first byte counts", "X\0allow\0\0Deny\0", { kind: "deny", env: {} }],
    ["bytes after the last NUL are ignored", "+A=1\0+B=2", { kind: "allow", env: { A: "1" } }],
    ["a D without NUL is ignored", "D", { kind: "allow", env: {} }],
    ["__proto__ is a name like any", "+__proto__=x\0", {
      kind: "allow",
      env: Object.fromEntries([["__proto__", "x"]]),
    }],
    ["UTF-8 is kept", "+V=\xc3\xa9\0", { kind: "allow", env: { V: "é" } }],
    ["bytes that are not UTF-8 become U+FFFD", "+V=\xe9\xff\0", {
      kind: "allow",
      env: { V: "\ufffd\ufffd" },
    }],
  ];
  for (const [name, data, want] of rows) {
    await t.step(name, () => {
      assert.deepEqual(parseRule(bytes(data)), want);
    });
  }
});

Deno.test("lookupRuleInCdb() reads allow, deny and variables as tcprules writes them", async (t) => {
  const rules = [
    "1.2.3.4:deny",
    '1.2.:allow,A="x",B=""',
    "=.example.com:allow,C=/y/",
    '5.6.7.8:allow,V="é",W="a=b",A="1",A="2"',
    ':allow,DEFAULT="1"',
  ].join("\n") + "\n";
  const rows: [RuleQuery, RuleMatch][] = [
    [{ ip: "1.2.3.4" }, { kind: "deny", env: {}, key: "1.2.3.4" }],
    [{ ip: "1.2.3.5" }, { kind: "allow", env: { A: "x", B: "" }, key: "1.2." }],
    [{ ip: "9.9.9.9", host: "a.example.com" }, {
      kind: "allow",
      env: { C: "y" },
      key: "=.example.com",
    }],
    [{ ip: "5.6.7.8" }, { kind: "allow", env: { V: "é", W: "a=b", A: "2" }, key: "5.6.7.8" }],
    [{ ip: "9.9.9.9" }, { kind: "allow", env: { DEFAULT: "1" }, key: "" }],
  ];
  await withTempDir(async (dir) => {
    const path = `${dir}/rules.cdb`;
    const cdb = openCdb(await tcprules(path, rules));
    for (const [query, want] of rows) {
      await t.step(JSON.stringify(query), async () => {
        const got = lookupRuleInCdb(cdb, query);
        assert.deepEqual(got, want);
        const checked = await tcprulescheck(path, query);
        assert.deepEqual([checked.key, checked.kind], [got.key, got.kind], "tcprulescheck");
        if (got.kind === "allow") assert.deepEqual(Object.fromEntries(checked.env), got.env);
      });
    }
  });
});

Deno.test("lookupRuleInCdb() allows with no variables when no rule applies", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/empty.cdb`;
    const got = lookupRuleInCdb(openCdb(await tcprules(path, "# nothing\n")), JOE);
    assert.deepEqual(got, { kind: "allow", env: {}, key: undefined });
    assert.equal((await tcprulescheck(path, JOE)).key, undefined, "tcprulescheck: want default");
  });
});

Deno.test("lookupRuleInCdb() passes on CdbError from a truncated file", async () => {
  await withTempDir(async (dir) => {
    const full = await tcprules(`${dir}/rules.cdb`, "1.2.3.4:deny\n");
    const cdb = openCdb(full.subarray(0, 2050)); // the header, and 2 bytes of the record
    assert.throws(() => lookupRuleInCdb(cdb, { ip: "1.2.3.4" }), CdbError);
  });
});
