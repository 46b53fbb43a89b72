/**
 * `smtp-delay serve` reloaded under load: a storm of SIGHUPs while clients
 * are in the screening, with the memory on SQLite. No record is lost (each
 * pass and strike is in the store), no client is stalled (each is answered
 * within its delay and a small bound), and serve holds one handle on the
 * state file, whatever the reloads.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { banner, Client, E2E, ServeServer, within } from "./harness.ts";
import { openFilesUnder } from "./proc.ts";

/** What the state file says of `key`: its record, parsed, or undefined. */
function recordOf(db: DatabaseSync, key: string): Record<string, unknown> | undefined {
  const row = db.prepare("SELECT record FROM records WHERE key = ?").get(key) as
    | { record: string }
    | undefined;
  return row && JSON.parse(row.record);
}

const DELAY_S = 0.4;
/** How late a banner may come after the delay, on a loaded 2-core machine. */
const SLACK_S = 1.2;

Deno.test(
  "serve SIGHUP storm on SQLite: no record lost, no client stalled, one handle",
  E2E,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "smtp-delay-reload-" });
    // -t 0 -P 0.4: no lookup; every client waits 0.4 s (noptr). -S: an early talker gets 451.
    const server = await ServeServer.start({
      args: ["-H", "-l", "mx.local.test", "-S", "-t", "0", "-P", String(DELAY_S)]
        .concat(["--store", `sqlite:${dir}/state.db`]),
      env: { SMTPDELAY_STORE: "" }, // unset: --store says where
    });
    let storming = true;
    let hups = 0;
    let mostHandles = 0;
    // The storm: a SIGHUP every 2 ms or so; serve's handles on the state file, between them.
    const storm = (async () => {
      while (storming) {
        server.kill("SIGHUP");
        hups++;
        if (hups % 10 === 0) {
          const open = await openFilesUnder(server.pid, dir);
          mostHandles = Math.max(mostHandles, open.filter((f) => f === "state.db").length);
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const clients: Client[] = [];
    const patient = async (from: string) => {
      const c = await Client.connect(server.port, from);
      clients.push(c);
      await c.until(/^220 recorder ESMTP\r\n/);
      const seconds = (c.firstByteAt! - c.connectedAt) / 1000;
      await c.send("QUIT\r\n");
      await c.untilEnd();
      return seconds;
    };
    const early = async (from: string) => {
      const c = await Client.connect(server.port, from);
      clients.push(c);
      await c.send("EHLO early.example.org\r\n");
      const text = await c.untilEnd();
      return { text, seconds: (c.endedAt! - c.connectedAt) / 1000 };
    };
    const passers: string[] = [];
    const talkers: string[] = [];
    try {
      await within(5000, "the first reloads", server.waitLog(/^smtp-delay: info: RELOAD /));
      // Three waves, 0.25 s apart, so that clients arrive, wait and leave across reloads.
      const waves: Array<Promise<void>> = [];
      for (let wave = 0; wave < 3; wave++) {
        for (let i = 1; i <= 10; i++) {
          const from = `127.0.${10 + wave}.${i}`;
          passers.push(from);
          waves.push(
            patient(from).then((seconds) => {
              assert.ok(
                seconds >= DELAY_S && seconds < DELAY_S + SLACK_S,
                `${from}: banner after ${seconds} s, want ${DELAY_S} to ${DELAY_S + SLACK_S}`,
              );
            }),
          );
        }
        for (let i = 1; i <= 4; i++) {
          const from = `127.0.${20 + wave}.${i}`;
          talkers.push(from);
          waves.push(
            early(from).then(({ text, seconds }) => {
              assert.match(text, /^451 /, from);
              assert.ok(seconds < SLACK_S, `${from}: 451 after ${seconds} s, want at once`);
            }),
          );
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      await within(15_000, "every client answered", Promise.all(waves));
      storming = false;
      await storm;
      const log = `\n${server.lines.join("\n")}`;
      const reloads = server.lines.filter((l) => l.includes(" RELOAD ")).length;
      assert.ok(reloads >= 50, `only ${reloads} RELOAD lines of ${hups} SIGHUPs${log}`);
      assert.ok(!server.lines.some((l) => l.includes("warning")), `no warning${log}`);
      for (const from of passers) {
        assert.match(
          server.lines.join("\n"),
          new RegExp(` PASS pid=\\d+ ip=${from.replaceAll(".", "\\.")} .* memory=-$`, "m"),
        );
      }
      assert.equal(mostHandles <= 1, true, `${mostHandles} handles on the state file at once`);
      // Every arrival and departure is in the store: one arrival, and a pass or a strike.
      const db = new DatabaseSync(`${dir}/state.db`, { readOnly: true });
      try {
        for (const from of [...passers, ...talkers]) {
          const r = recordOf(db, from);
          assert.ok(r, `no record of ${from}`);
          const strike = talkers.includes(from);
          assert.equal(typeof r.lastPassAt, strike ? "undefined" : "number", `${from}: passed`);
          assert.equal(r.strikes, strike ? 1 : 0, `${from}: strikes`);
          // A pass stays open (its session runs on) until the next arrival prunes it.
          assert.equal((r.live as unknown[]).length, strike ? 0 : 1, `${from}: open connections`);
          assert.equal((r.arrivals as unknown[]).length, 1, `${from}: arrivals`);
        }
      } finally {
        db.close();
      }
      // One handle now (the db file, its -wal and -shm), or none until the next client.
      const open = await openFilesUnder(server.pid, dir);
      assert.ok(
        open.length === 0 || open.join(" ") === "state.db state.db-shm state.db-wal",
        open.join(" "),
      );
    } finally {
      storming = false;
      await storm;
      for (const c of clients) c.close();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/** The inode of the file at `path` that process `pid` has open (through its fd), or undefined. */
async function openInode(pid: number, path: string): Promise<number | undefined> {
  for await (const e of Deno.readDir(`/proc/${pid}/fd`)) {
    const fd = `/proc/${pid}/fd/${e.name}`;
    if (await Deno.readLink(fd).catch(() => "") === path) return (await Deno.stat(fd)).ino!;
  }
  return undefined;
}

Deno.test(
  "serve SIGHUP reopens the state file when it was removed, and only then",
  E2E,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "smtp-delay-reopen-" });
    const path = `${dir}/state.db`;
    const server = await ServeServer.start({
      args: ["-H", "-l", "mx.local.test", "-S", "-t", "0", "-P", "0", "--store", `sqlite:${path}`],
      env: { SMTPDELAY_STORE: "" },
    });
    const keys = () => {
      const db = new DatabaseSync(path, { readOnly: true });
      try {
        return (db.prepare("SELECT key FROM records ORDER BY key").all() as Array<{ key: string }>)
          .map((r) => r.key);
      } finally {
        db.close();
      }
    };
    // The test holds the files serve has open, so that their inode numbers cannot be reused:
    // a file serve reopens (or SQLite makes again) has another.
    const held: Deno.FsFile[] = [];
    const hold = (file: string) => {
      const f = Deno.openSync(file);
      held.push(f);
      return f.statSync().ino!;
    };
    try {
      await banner(server, "127.0.0.2");
      const db = hold(path);
      const wal = hold(`${path}-wal`);
      assert.equal(await openInode(server.pid, path), db, "serve's handle is on the file");
      // The same file: the handle is kept across a reload. (Closing it would have checkpointed
      // and removed the -wal file; reopening it would have made a new one.)
      assert.deepEqual(await server.reload(), { waiting: 0, children: 0 });
      await banner(server, "127.0.0.3");
      assert.equal(await openInode(server.pid, path), db, "the same file after a SIGHUP");
      assert.equal(await openInode(server.pid, `${path}-wal`), wal, "the same handle");
      assert.deepEqual(keys(), ["127.0.0.2", "127.0.0.3"]);
      // Removed (its -wal and -shm left behind): a new file at the next client, nothing of the
      // old one in it.
      await Deno.remove(path);
      assert.deepEqual(await server.reload(), { waiting: 0, children: 0 });
      const { pid } = await banner(server, "127.0.0.4");
      const reopened = await openInode(server.pid, path);
      assert.ok(reopened !== undefined && reopened !== db, `inode ${db}, then ${reopened}`);
      assert.equal(reopened, (await Deno.stat(path)).ino);
      assert.deepEqual(keys(), ["127.0.0.4"]);
      assert.match(server.linesOf(pid)[0]!, / PASS .* memory=-$/);
      assert.ok(!server.lines.some((l) => l.includes("warning")), server.lines.join("\n"));
    } finally {
      for (const f of held) f.close();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
