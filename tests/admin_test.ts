/**
 * `smtp-delay state ...`: the pure helpers, then the real main.ts under
 * `deno run` with the permission flags of `make dist`, on a SQLite file the
 * test seeds through the store and history's changes.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { describeRecord, keyFor, penalised } from "../src/admin.ts";
import { UsageError } from "../src/usage_error.ts";
import { arrive, depart, EMPTY, type MemoryConfig } from "../src/history.ts";
import { openSqlite } from "../src/store/sqlite.ts";
import type { ClientRecord, LiveConn } from "../src/store/store.ts";
import { PERMISSIONS, ROOT, runFileEnv } from "./fixtures/source.ts";

const T0 = Date.UTC(2026, 10, 24, 12, 0, 0);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const iso = (ms: number) => new Date(ms).toISOString();

/** The defaults of the run file (parseConfig's), as the admin's commands use them. */
const MEM: MemoryConfig = {
  passTtlMs: 24 * HOUR,
  penaltyTtlMs: 24 * HOUR,
  strikes: 3,
  boxMs: 10 * MINUTE,
  boxMaxMs: 24 * HOUR,
  rate: 30,
  rateStepMs: 1000,
  rateCapMs: 60_000,
  maxConns: 0,
  maxRate: 0,
  windowMs: MINUTE,
  liveTtlMs: 20 * MINUTE,
};

const conn = (pid: number, at = T0): LiveConn => ({ host: "mx1", pid, start: "1", at });
const rec = (changes: Partial<ClientRecord>): ClientRecord => ({ ...EMPTY, ...changes });

Deno.test("keyFor() turns what the admin typed into the key the filter uses", async (t) => {
  const rows: [string, string][] = [
    ["192.0.2.1", "192.0.2.1"],
    ["::ffff:192.0.2.1", "192.0.2.1"],
    ["2001:db8::1", "2001:db8::/64"],
    ["2001:db8:0:1:ffff::1", "2001:db8:0:1::/64"],
    ["2001:DB8:0:1::", "2001:db8:0:1::/64"],
    ["2001:db8:0:1::/64", "2001:db8:0:1::/64"], // as `list` prints it
    ["2001:db8::/64", "2001:db8::/64"],
    ["2001:db8:0:0::/64", "2001:db8::/64"],
    ["::1", "::/64"],
  ];
  for (const [text, want] of rows) {
    await t.step(`${text} -> ${want}`, () => {
      assert.equal(keyFor(text), want);
    });
  }
});

Deno.test("keyFor() rejects what is not an address, quoting it", async (t) => {
  const rows = [
    "",
    "garbage",
    "mail.example.net",
    "256.0.0.1",
    "192.0.2",
    "192.0.2.0/24",
    "2001:db8::/48",
    "2001:db8::1/128",
    "2001:db8::/64/64",
    " 192.0.2.1",
  ];
  for (const text of rows) {
    await t.step(JSON.stringify(text), () => {
      assert.throws(
        () => keyFor(text),
        (e) => e instanceof UsageError && e.message.includes(`not an IP address: "${text}"`),
      );
    });
  }
});

Deno.test("describeRecord() prints one line of key=value fields", async (t) => {
  const rows: { name: string; record: ClientRecord; want: string }[] = [
    {
      name: "passed, penalised, boxed, two open, two arrivals in the window",
      record: rec({
        lastPassAt: T0 - HOUR,
        strikes: 2,
        lastStrikeAt: T0 - MINUTE,
        boxes: 1,
        boxUntil: T0 + 10 * MINUTE,
        arrivals: [T0 - 2 * MINUTE, T0 - MINUTE / 2, T0],
        live: [conn(1), conn(2)],
      }),
      want: `192.0.2.1 passed=${iso(T0 - HOUR)} strikes=2 last-strike=${iso(T0 - MINUTE)} ` +
        `boxes=1 box-until=${iso(T0 + 10 * MINUTE)} arrivals=2 open=2`,
    },
    {
      name: "a pass and a strike older than their TTLs are marked (old), a past box is -",
      record: rec({
        lastPassAt: T0 - 24 * HOUR,
        strikes: 1,
        lastStrikeAt: T0 - 25 * HOUR,
        boxes: 3,
        boxUntil: T0 - 1,
      }),
      want: `192.0.2.1 passed=${iso(T0 - 24 * HOUR)}(old) strikes=1 ` +
        `last-strike=${iso(T0 - 25 * HOUR)}(old) boxes=3 box-until=- arrivals=0 open=0`,
    },
    {
      name: "a pass only",
      record: rec({ lastPassAt: T0, arrivals: [T0], live: [conn(1)] }),
      want: `192.0.2.1 passed=${iso(T0)} strikes=0 last-strike=- boxes=0 box-until=- ` +
        `arrivals=1 open=1`,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.equal(describeRecord("192.0.2.1", row.record, MEM, T0), row.want);
    });
  }
});

// "(old)" marks a pass that no longer counts, not the absence of one.
Deno.test({
  name: "describeRecord() prints passed=- for a client that never passed",
  fn() {
    const got = describeRecord("192.0.2.1", rec({ strikes: 1, lastStrikeAt: T0 }), MEM, T0);
    assert.ok(got.includes(" passed=- "), `got ${JSON.stringify(got)}, want " passed=- "`);
  },
});

Deno.test("penalised() is a strike within the penalty TTL or a box not over", async (t) => {
  const rows: [string, ClientRecord, boolean][] = [
    ["nothing", rec({ arrivals: [T0] }), false],
    ["a pass only", rec({ lastPassAt: T0 }), false],
    ["a strike just now", rec({ strikes: 1, lastStrikeAt: T0 }), true],
    ["a strike 1 ms inside the TTL", rec({ strikes: 1, lastStrikeAt: T0 - 24 * HOUR + 1 }), true],
    ["a strike a TTL ago", rec({ strikes: 1, lastStrikeAt: T0 - 24 * HOUR }), false],
    ["boxed, the strike long ago", rec({ lastStrikeAt: T0 - 48 * HOUR, boxUntil: T0 + 1 }), true],
    ["the box ends now", rec({ lastStrikeAt: T0 - 48 * HOUR, boxUntil: T0 }), false],
    ["boxes counted but none now", rec({ boxes: 5 }), false],
  ];
  for (const [name, record, want] of rows) {
    await t.step(name, () => {
      assert.equal(penalised(record, MEM, T0), want);
    });
  }
});

// ---------------------------------------------------------------------------
// End to end: `deno run FLAGS main.ts state ...`.

const decoder = new TextDecoder();

/** `smtp-delay state ARGS...` from source, under an almost empty environment. */
async function state(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMISSIONS, `${ROOT}main.ts`, "state", ...args],
    cwd: ROOT,
    clearEnv: true,
    env: runFileEnv(env),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Checks the exit code, and that stderr is empty (code 0) or one fatal line (else). */
function assertExit(
  got: { code: number; stdout: string; stderr: string },
  code: number,
  ...stderrParts: string[]
): void {
  const show = `code ${got.code}, stdout ${JSON.stringify(got.stdout)}, stderr ${
    JSON.stringify(got.stderr)
  }`;
  assert.equal(got.code, code, `got ${show}, want code ${code}`);
  if (code === 0) {
    assert.equal(got.stderr, "", `got ${show}, want nothing on stderr`);
    return;
  }
  assert.equal(got.stdout, "", `got ${show}, want nothing on stdout`);
  assert.match(got.stderr, /^smtp-delay: fatal: [^\n]*\n$/, `got ${show}, want one fatal line`);
  for (const part of stderrParts) {
    assert.ok(got.stderr.includes(part), `got ${show}, want stderr to contain ${part}`);
  }
}

/** Seeds a store the way the filter would: arrivals and departures at `now`. */
async function seed(path: string, now: number): Promise<void> {
  const store = openSqlite(path, 2_000);
  const me = (pid: number): LiveConn => ({ host: "mx1", pid, start: "1", at: now });
  const alive = () => true;
  const visit = async (key: string, pid: number, how: "pass" | "early" | "gone" | "open") => {
    await store.update(key, arrive(MEM, now, me(pid), alive));
    if (how !== "open") await store.update(key, depart(MEM, now, me(pid), how));
  };
  try {
    await visit("192.0.2.1", 101, "early"); // penalised
    await visit("192.0.2.2", 102, "pass"); // passed, not penalised
    await visit("192.0.2.2", 103, "open"); // and one still open
    for (let pid = 104; pid < 107; pid++) await visit("192.0.2.3", pid, "early"); // boxed
    await visit("2001:db8:0:1::/64", 107, "early"); // penalised, IPv6
    await store.update("192.0.2.9", () => ({ record: rec({ strikes: 1 }), expiresAt: now - 1 }));
  } finally {
    store.close();
  }
}

Deno.test("smtp-delay state works on a SQLite store", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smtp-delay-admin-" });
  const path = `${dir}/state.db`;
  const store = ["--store", `sqlite:${path}`];
  try {
    const now = Date.now();
    await seed(path, now);
    /** The line `show` and `list` print for `key`, as describeRecord() would at `now`. */
    const line = async (key: string) => {
      const s = openSqlite(path, 2_000);
      try {
        return describeRecord(key, (await s.get(key))!, MEM, now);
      } finally {
        s.close();
      }
    };

    await t.step("show: a penalised client", async () => {
      const got = await state([...store, "show", "192.0.2.1"]);
      assertExit(got, 0);
      assert.equal(got.stdout, `${await line("192.0.2.1")}\n`);
      assert.match(
        got.stdout,
        /^192\.0\.2\.1 passed=\S+ strikes=1 last-strike=\d{4}-\S+Z boxes=0 box-until=- arrivals=1 open=0\n$/,
      );
    });

    await t.step("show: a passed client with one connection open", async () => {
      const got = await state([...store, "show", "192.0.2.2"]);
      assertExit(got, 0);
      assert.match(
        got.stdout,
        /^192\.0\.2\.2 passed=\d{4}-\S+Z strikes=0 last-strike=- boxes=0 box-until=- arrivals=2 open=2\n$/,
      );
    });

    await t.step("show: a boxed client", async () => {
      const got = await state([...store, "show", "192.0.2.3"]);
      assertExit(got, 0);
      const until = iso(now + MEM.boxMs);
      assert.match(got.stdout, /^192\.0\.2\.3 .* strikes=0 .* boxes=1 box-until=(\S+) /);
      assert.ok(got.stdout.includes(` box-until=${until} `), `got ${got.stdout}, want ${until}`);
    });

    await t.step("show: an IPv6 address finds its /64", async () => {
      const want = `${await line("2001:db8:0:1::/64")}\n`;
      for (const address of ["2001:db8:0:1::25", "2001:db8:0:1::/64"]) {
        const got = await state([...store, "show", address]);
        assertExit(got, 0);
        assert.equal(got.stdout, want, `show ${address}`);
      }
    });

    await t.step("show: a client never seen, and one whose record expired", async () => {
      for (const address of ["198.51.100.1", "192.0.2.9"]) {
        const got = await state([...store, "show", address]);
        assertExit(got, 0);
        assert.equal(got.stdout, `${address} nothing remembered\n`);
      }
    });

    await t.step("list: the penalised and the boxed, by key", async () => {
      const got = await state([...store, "list"]);
      assertExit(got, 0);
      const want = [
        await line("192.0.2.1"),
        await line("192.0.2.3"),
        await line("2001:db8:0:1::/64"),
      ];
      assert.deepEqual(got.stdout.split("\n"), [...want, ""]);
    });

    await t.step("the variables of the run file apply: --store from the environment", async () => {
      const got = await state(["list"], { SMTPDELAY_STORE: `sqlite:${path}` });
      assertExit(got, 0);
      assert.equal(got.stdout.split("\n").length, 4, `got ${got.stdout}`);
    });

    await t.step("forgive: a boxed client is no longer boxed nor listed", async () => {
      const got = await state([...store, "forgive", "192.0.2.3"]);
      assertExit(got, 0);
      assert.equal(got.stdout, "192.0.2.3 forgiven\n");
      const s = openSqlite(path, 2_000);
      try {
        const r = await s.get("192.0.2.3");
        assert.ok(r, "forgive deleted the record, want it kept with its counts");
        assert.deepEqual(
          [r.strikes, r.boxes, r.boxUntil, r.lastStrikeAt, r.lastPassAt, r.arrivals.length],
          [0, 0, undefined, undefined, undefined, 3],
        );
      } finally {
        s.close();
      }
      const list = await state([...store, "list"]);
      assertExit(list, 0);
      assert.ok(!list.stdout.includes("192.0.2.3"), `still listed: ${list.stdout}`);
      assert.equal(list.stdout.split("\n").length, 3, `got ${list.stdout}`);
    });

    await t.step("forgive: an IPv6 address forgives its /64", async () => {
      const got = await state([...store, "forgive", "2001:db8:0:1::99"]);
      assertExit(got, 0);
      assert.equal(got.stdout, "2001:db8:0:1::/64 forgiven\n");
    });

    await t.step("forgive: a client never seen", async () => {
      const got = await state([...store, "forgive", "198.51.100.1"]);
      assertExit(got, 0);
      assert.equal(got.stdout, "198.51.100.1 nothing remembered\n");
    });

    await t.step("expire: deletes the expired record, then nothing", async () => {
      const count = () => {
        const db = new DatabaseSync(path);
        try {
          return (db.prepare("SELECT count(*) AS n FROM records").get() as { n: number }).n;
        } finally {
          db.close();
        }
      };
      assert.equal(count(), 5);
      const got = await state([...store, "expire"]);
      assertExit(got, 0);
      assert.equal(got.stdout, "expired 1\n");
      assert.equal(count(), 4);
      const again = await state([...store, "expire"]);
      assertExit(again, 0);
      assert.equal(again.stdout, "expired 0\n");
    });

    await t.step("list: an empty answer is no line at all", async () => {
      const empty = `${dir}/empty.db`;
      openSqlite(empty, 2_000).close();
      const got = await state(["--store", `sqlite:${empty}`, "list"]);
      assertExit(got, 0);
      assert.equal(got.stdout, "");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smtp-delay state exits 100 with one fatal line on bad usage", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smtp-delay-admin-" });
  const store = ["--store", `sqlite:${dir}/state.db`];
  const rows: { name: string; args: string[]; parts: string[] }[] = [
    {
      name: "a misspelt command is named",
      args: [...store, "lsit"],
      parts: ['fatal: unknown command "lsit" (usage: smtp-delay state'],
    },
    { name: "no command", args: store, parts: ["fatal: no command (usage: smtp-delay state"] },
    { name: "show without an address", args: [...store, "show"], parts: ["show needs an ADDRESS"] },
    {
      name: "forgive without an address",
      args: [...store, "forgive"],
      parts: ["forgive needs an ADDRESS"],
    },
    {
      name: "show with two addresses",
      args: [...store, "show", "192.0.2.1", "x"],
      parts: ['show takes no "x"'],
    },
    {
      name: "list with an address",
      args: [...store, "list", "192.0.2.1"],
      parts: ['list takes no "192.0.2.1"'],
    },
    { name: "expire with an argument", args: [...store, "expire", "now"], parts: ['no "now"'] },
    { name: "a command named like Object's own", args: [...store, "toString"], parts: ["unknown"] },
    {
      name: "show garbage",
      args: [...store, "show", "garbage"],
      parts: ['fatal: not an IP address: "garbage"'],
    },
    { name: "an unknown option", args: ["--nope", "list"], parts: ['unknown option "--nope"'] },
    { name: "a bad store URL", args: ["--store", "mysql://x", "list"], parts: ['"mysql://x"'] },
    { name: "--store none", args: ["--store", "none", "list"], parts: ["no store to look at"] },
  ];
  try {
    for (const row of rows) {
      await t.step(row.name, async () => {
        assertExit(await state(row.args), 100, ...row.parts);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smtp-delay state exits 111 with one fatal line when the store cannot be opened", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smtp-delay-admin-" });
  await Deno.writeTextFile(`${dir}/file`, "a regular file\n");
  await Deno.writeFile(`${dir}/garbage.db`, new Uint8Array(8192).fill(0x5a));
  const rows: [string, string][] = [
    ["a path under a regular file", `${dir}/file/state.db`],
    ["a file that is not a database", `${dir}/garbage.db`],
  ];
  try {
    for (const [name, path] of rows) {
      for (const verb of [["list"], ["show", "192.0.2.1"], ["forgive", "192.0.2.1"], ["expire"]]) {
        await t.step(`${name}: ${verb.join(" ")}`, async () => {
          assertExit(
            await state(["--store", `sqlite:${path}`, ...verb]),
            111,
            "unable to use the store",
            path,
          );
        });
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("smtp-delay state never creates a store: a missing one is exit 111, nothing made", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smtp-delay-admin-" });
  try {
    for (const path of [`${dir}/state.db`, `${dir}/mistyped/path/state.db`]) {
      for (const verb of [["list"], ["show", "192.0.2.1"], ["forgive", "192.0.2.1"], ["expire"]]) {
        await t.step(`${path.slice(dir.length)}: ${verb.join(" ")}`, async () => {
          const got = await state(["--store", `sqlite:${path}`, ...verb]);
          assertExit(
            got,
            111,
            `fatal: unable to open sqlite:${path}: No such file or directory`,
            "the filter creates it",
          );
          assert.equal(got.stdout, "");
          const made = [...Deno.readDirSync(dir)].map((e) => e.name);
          assert.deepEqual(made, [], "nothing was created");
        });
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Run as root on the filter's file (the README's cron line runs as qmaild, an
// admin's shell as root): SQLite gives the -wal and -shm files it makes the
// database file's owner, so the filter can still write.
Deno.test({
  name: "smtp-delay state as root leaves every file to the database's owner",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "smtp-delay-admin-" });
    try {
      const path = `${dir}/state.db`;
      await seed(path, Date.now()); // closed: SQLite removes its -wal and -shm
      const nobody = 65534;
      for (const e of Deno.readDirSync(dir)) Deno.chownSync(`${dir}/${e.name}`, nobody, nobody);
      for (const verb of [["list"], ["forgive", "192.0.2.1"], ["expire"]]) {
        assertExit(await state(["--store", `sqlite:${path}`, ...verb]), 0);
      }
      const owners = [...Deno.readDirSync(dir)].map((e) => {
        const { uid, gid } = Deno.statSync(`${dir}/${e.name}`);
        return `${e.name} ${uid}:${gid}`;
      }).sort();
      assert.ok(owners.length >= 1, "the database is there");
      assert.deepEqual(owners, owners.map((o) => o.replace(/ .*/, ` ${nobody}:${nobody}`)));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// A bad command must not create (or fail to open) a store: usage first, exit 100.
Deno.test({
  name: "smtp-delay state checks its usage before it opens the store",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "smtp-delay-admin-" });
    try {
      await Deno.writeTextFile(`${dir}/file`, "a regular file\n");
      assertExit(await state(["--store", `sqlite:${dir}/file/x.db`, "bogus"]), 100, "usage:");
      assertExit(await state(["--store", `sqlite:${dir}/new/x.db`, "bogus"]), 100, "usage:");
      assert.throws(() => Deno.statSync(`${dir}/new`), Deno.errors.NotFound);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// The admin's --store wins over SMTPDELAY_STORE (README, Admin).
Deno.test({
  name: "smtp-delay state --store wins over SMTPDELAY_STORE",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "smtp-delay-admin-" });
    try {
      await seed(`${dir}/mine.db`, Date.now());
      const got = await state(["--store", `sqlite:${dir}/mine.db`, "show", "192.0.2.1"], {
        SMTPDELAY_STORE: `sqlite:${dir}/other.db`,
      });
      assertExit(got, 0);
      assert.match(got.stdout, /^192\.0\.2\.1 passed=/, "looked at SMTPDELAY_STORE's file");
      assert.throws(() => Deno.statSync(`${dir}/other.db`), Deno.errors.NotFound);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
