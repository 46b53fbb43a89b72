/**
 * src/serve/rules_file.ts with cdbs made by the real tcprules, which writes a
 * temporary file and renames it over the old one, as an admin's `make` does.
 */
import assert from "node:assert/strict";
import { Rules, type RulesAnswer } from "../src/serve/rules_file.ts";
import { tcprules, tcprulescheck } from "./fixtures/tcprules.ts";
import { withTempDir } from "./fixtures/temp_dir.ts";

/** The answer's kind and, for a rule, its key and variables: what a row compares. */
function summary(answer: RulesAnswer): string {
  if (answer.kind === "unreadable") return "unreadable";
  const env = Object.entries(answer.env).map(([k, v]) => `${k}=${v}`).join(",");
  return `${answer.kind} key=${answer.key ?? "(none)"} env=${env}`;
}

/** Fails unless `answer` is unreadable with a reason. */
function assertUnreadable(answer: RulesAnswer): void {
  assert.equal(answer.kind, "unreadable", `got ${JSON.stringify(answer)}, want unreadable`);
  if (answer.kind === "unreadable") assert.notEqual(answer.reason, "", "the reason is empty");
}

/** Renames `bytes`, written to a temporary file, over `path`, as tcprules replaces a file. */
function replaceWith(path: string, bytes: Uint8Array): void {
  Deno.writeFileSync(`${path}.new`, bytes);
  Deno.renameSync(`${path}.new`, path);
}

const RULES = [
  "192.0.2.9:deny",
  '192.0.2.:allow,RELAYCLIENT="",NET="doc"',
  "=bad.example:deny",
  '=.example.org:allow,ORG="1"',
  '198.51.100.7:allow,SMTPDELAY="JUSTDELAY",TCPREMOTEHOST="set.by.rule"',
  ":allow",
  "",
].join("\n");

Deno.test("Rules.lookup() answers as tcprulescheck does for the same file", async (t) => {
  await withTempDir(async (dir) => {
    const path = `${dir}/rules.cdb`;
    await tcprules(path, RULES);
    const rules = new Rules(path, false);
    const rows: { name: string; ip: string; host?: string }[] = [
      { name: "an address denied", ip: "192.0.2.9" },
      { name: "a prefix with variables", ip: "192.0.2.10" },
      { name: "a host denied", ip: "203.0.113.1", host: "bad.example" },
      { name: "a host suffix", ip: "203.0.113.1", host: "mx.example.org" },
      { name: "the address before the host", ip: "192.0.2.9", host: "mx.example.org" },
      { name: "a rule that sets TCPREMOTEHOST", ip: "198.51.100.7" },
      { name: "the default rule", ip: "203.0.113.1" },
      { name: "IPv6 falls to the default rule", ip: "2001:db8::1" },
    ];
    for (const row of rows) {
      await t.step(row.name, async () => {
        const got = rules.lookup(row.ip, row.host);
        const want = await tcprulescheck(path, { ip: row.ip, host: row.host });
        assert.notEqual(got.kind, "unreadable", JSON.stringify(got));
        if (got.kind === "unreadable") return;
        assert.deepEqual(
          { key: got.key, kind: got.kind, env: got.env },
          { key: want.key, kind: want.kind, env: Object.fromEntries(want.env) },
        );
      });
    }
  });
});

Deno.test("Rules.lookup() sees a file that tcprules replaced at the next lookup, without forget()", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/rules.cdb`;
    const rules = new Rules(path, false);
    const generations: [string, string][] = [
      ['127.0.0.1:allow,GEN="a"\n', "allow key=127.0.0.1 env=GEN=a"],
      // The same size as the first: only the new file (inode) tells them apart.
      ['127.0.0.1:allow,GEN="b"\n', "allow key=127.0.0.1 env=GEN=b"],
      ["127.0.0.:deny\n", "deny key=127.0.0. env="],
      ['127.0.0.1:allow,GEN="a"\n', "allow key=127.0.0.1 env=GEN=a"],
      ["", "allow key=(none) env="],
      ["127.:deny\n", "deny key=127. env="],
    ];
    const got: string[] = [];
    for (const [text] of generations) {
      await tcprules(path, text);
      got.push(summary(rules.lookup("127.0.0.1", undefined)));
      got.push(summary(rules.lookup("127.0.0.1", undefined))); // from memory, the same
    }
    assert.deepEqual(got, generations.flatMap(([, want]) => [want, want]));
  });
});

/** Rules on `dir`/rules.cdb, read once while it holds GEN="a"; `other` is a scratch cdb beside it. */
async function readGenA(dir: string): Promise<{ path: string; other: string; rules: Rules }> {
  const path = `${dir}/rules.cdb`;
  await tcprules(path, '127.0.0.1:allow,GEN="a"\n');
  const rules = new Rules(path, false);
  assert.equal(summary(rules.lookup("127.0.0.1", undefined)), "allow key=127.0.0.1 env=GEN=a");
  return { path, other: `${dir}/other.cdb`, rules };
}

Deno.test("Rules.lookup() sees a file rewritten in place when its size changed", async () => {
  await withTempDir(async (dir) => {
    const { path, other, rules } = await readGenA(dir);
    const bigger = await tcprules(other, '127.0.0.1:allow,GEN="longer"\n');
    const inode = Deno.statSync(path).ino;
    Deno.writeFileSync(path, bigger);
    assert.equal(Deno.statSync(path).ino, inode, "the rewrite made a new file");
    assert.equal(
      summary(rules.lookup("127.0.0.1", undefined)),
      "allow key=127.0.0.1 env=GEN=longer",
    );
  });
});

Deno.test("Rules keeps the file in memory while it looks unchanged; forget() reads it again", async () => {
  await withTempDir(async (dir) => {
    const { path, other, rules } = await readGenA(dir);
    // Same inode, same size, the old mtime back: the stamp cannot tell.
    const before = Deno.statSync(path);
    Deno.writeFileSync(path, await tcprules(other, '127.0.0.1:allow,GEN="b"\n'));
    Deno.utimeSync(path, before.atime!, before.mtime!);
    assert.equal(
      summary(rules.lookup("127.0.0.1", undefined)),
      "allow key=127.0.0.1 env=GEN=a",
      "the file was read again though its stamp did not change",
    );
    rules.forget();
    assert.equal(summary(rules.lookup("127.0.0.1", undefined)), "allow key=127.0.0.1 env=GEN=b");
  });
});

Deno.test("Rules.lookup() answers unreadable for a corrupt file, then reads a good one again", async (t) => {
  await withTempDir(async (dir) => {
    const path = `${dir}/rules.cdb`;
    const good = await tcprules(path, '127.0.0.1:allow,GEN="good"\n');
    const rows: { name: string; bytes: Uint8Array }[] = [
      { name: "shorter than the header", bytes: good.slice(0, 1000) },
      { name: "empty", bytes: new Uint8Array(0) },
      { name: "the header only: the tables are past the end", bytes: good.slice(0, 2048) },
      { name: "cut in the hash tables at the end", bytes: good.slice(0, good.length - 20) },
    ];
    for (const missingOk of [false, true]) {
      const rules = new Rules(path, missingOk);
      for (const row of rows) {
        await t.step(`${row.name}${missingOk ? ", -X" : ""}`, () => {
          replaceWith(path, good);
          assert.equal(
            summary(rules.lookup("127.0.0.1", undefined)),
            "allow key=127.0.0.1 env=GEN=good",
          );
          replaceWith(path, row.bytes);
          assertUnreadable(rules.lookup("127.0.0.1", undefined));
          assertUnreadable(rules.lookup("127.0.0.1", undefined)); // not a cached good answer
          replaceWith(path, good);
          assert.equal(
            summary(rules.lookup("127.0.0.1", undefined)),
            "allow key=127.0.0.1 env=GEN=good",
          );
        });
      }
    }
  });
});

Deno.test("Rules.lookup() answers unreadable for a missing file, allow under -X", async (t) => {
  await withTempDir(async (dir) => {
    const path = `${dir}/rules.cdb`;
    await t.step("never there, without -X", () => {
      const answer = new Rules(path, false).lookup("127.0.0.1", undefined);
      assertUnreadable(answer);
    });
    await t.step("never there, with -X: allow, no variables, no key", () => {
      assert.deepEqual(new Rules(path, true).lookup("127.0.0.1", undefined), {
        kind: "allow",
        env: {},
        key: undefined,
      });
    });
    await t.step("removed after it was read, without -X: not the rules in memory", async () => {
      await tcprules(path, '127.0.0.1:allow,GEN="a"\n');
      const rules = new Rules(path, false);
      assert.equal(summary(rules.lookup("127.0.0.1", undefined)), "allow key=127.0.0.1 env=GEN=a");
      Deno.removeSync(path);
      assertUnreadable(rules.lookup("127.0.0.1", undefined));
      await tcprules(path, "127.0.0.1:deny\n");
      assert.equal(summary(rules.lookup("127.0.0.1", undefined)), "deny key=127.0.0.1 env=");
    });
    await t.step("removed after it was read, with -X: allow, then back", async () => {
      await tcprules(path, "127.0.0.1:deny\n");
      const rules = new Rules(path, true);
      assert.equal(summary(rules.lookup("127.0.0.1", undefined)), "deny key=127.0.0.1 env=");
      Deno.removeSync(path);
      assert.equal(summary(rules.lookup("127.0.0.1", undefined)), "allow key=(none) env=");
      await tcprules(path, "127.0.0.1:deny\n");
      assert.equal(summary(rules.lookup("127.0.0.1", undefined)), "deny key=127.0.0.1 env=");
    });
  });
});

Deno.test("Rules.lookup() answers unreadable for a file it cannot read, even under -X", async (t) => {
  await withTempDir(async (dir) => {
    const rows: { name: string; path: string }[] = [
      { name: "a directory", path: dir },
      { name: "under a file, not a directory", path: `${dir}/file/rules.cdb` },
    ];
    Deno.writeTextFileSync(`${dir}/file`, "");
    for (const row of rows) {
      for (const missingOk of [false, true]) {
        await t.step(`${row.name}${missingOk ? ", -X" : ""}`, () => {
          assertUnreadable(new Rules(row.path, missingOk).lookup("127.0.0.1", undefined));
        });
      }
    }
  });
});
