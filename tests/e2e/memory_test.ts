/**
 * The per-IP memory on SQLite, end to end: the real filter under tcpserver,
 * several processes sharing one state file; then `smtp-delay serve`, one
 * process keeping it (passed, penalty, and --max-conns counting a session
 * running in a child).
 */
import assert from "node:assert/strict";
import {
  banner,
  baselineFds,
  Client,
  E2E,
  FILTER,
  finalReplies,
  greeted,
  type Logged,
  messageBody,
  patient,
  RECORDER,
  type Rule,
  run,
  Server,
  ServeServer,
  startDns,
} from "./harness.ts";
import { ROOT } from "../fixtures/source.ts";

const RULES: Rule[] = [
  { from: "127.0.0.3", env: { TCPREMOTEIP: "192.0.2.3" } }, // dsl-192-0-2-3.pool.example.net
  { from: "127.0.0.5", env: { TCPREMOTEIP: "192.0.2.5", TCPREMOTEHOST: "mx.example.org" } },
  { from: "127.0.0.6", env: { TCPREMOTEIP: "192.0.2.6", TCPREMOTEHOST: "mx6.example.org" } },
  { from: "127.0.0.7", env: { TCPREMOTEIP: "192.0.2.7", TCPREMOTEHOST: "mx7.example.org" } },
  { from: "127.0.0.8", env: { TCPREMOTEIP: "192.0.2.8", RELAYCLIENT: "" } },
];

/** Connects, talks at once, and returns the reply and the pid. */
async function talkEarly(server: Server, from: string): Promise<{ text: string; pid: number }> {
  const client = await Client.connect(server.port, from);
  await client.send("EHLO early.example.org\r\n");
  const text = await client.untilEnd();
  const pid = await server.pidOf(client.localPort);
  await server.endOf(pid);
  return { text, pid };
}

/** `smtp-delay state --store STORE ARGS...`: its exit code and stdout. */
async function state(store: string, ...args: string[]) {
  return await run([...FILTER, "state", "--store", store, ...args], {
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
  });
}

const POLITE = "a polite client's second connection gets the short delay";

/**
 * 127.0.0.3, a dynamic client, waits -D (0.6 s) on its first connection and,
 * remembered as passed, the ptr delay -d (0.05 s) on its second. The state
 * file is not handed to the next program.
 */
async function politeSecondIsShort(server: Logged): Promise<void> {
  const first = await banner(server, "127.0.0.3");
  assert.equal(
    (await server.record(first.pid))!.info.fds,
    await baselineFds(),
    "the state file is not handed to the next program",
  );
  assert.ok(first.seconds >= 0.6, `first banner after ${first.seconds} s, want 0.6 (dynamic)`);
  assert.match(
    server.linesOf(first.pid)[0]!,
    / PASS .* tier=dynamic .* delay=0\.600 .* action=exec memory=-$/,
  );
  const second = await banner(server, "127.0.0.3");
  assert.ok(second.seconds < 0.6, `second banner after ${second.seconds} s, want 0.05`);
  assert.match(
    server.linesOf(second.pid)[0]!,
    / PASS .* tier=dynamic .* delay=0\.050 .* action=exec memory=passed$/,
  );
}

const EARLY = "an early talker's next connection gets the long delay";

/** 127.0.0.5 (192.0.2.5, a ptr client) talks early, then waits -P (0.6 s): the penalty. */
async function earlyNextIsLong(server: Logged): Promise<void> {
  const { line, pid } = await server.startsNothing("EARLY", async () => {
    const early = await Client.connect(server.port, "127.0.0.5");
    await early.send("EHLO early.example.org\r\n");
    assert.match(await early.untilEnd(), /^451 /);
    return early;
  });
  assert.match(
    line,
    new RegExp(
      `^smtp-delay: info: EARLY pid=${pid} ip=192\\.0\\.2\\.5 .* action=451 memory=- bytes=24 `,
    ),
  );
  const next = await banner(server, "127.0.0.5");
  assert.ok(next.seconds >= 0.6, `banner after ${next.seconds} s, want 0.6 (the penalty)`);
  assert.match(
    server.linesOf(next.pid)[0]!,
    / PASS .* tier=ptr .* delay=0\.600 .* memory=penalty$/,
  );
}

Deno.test("memory on SQLite", E2E, async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smtp-delay-memory-" });
  const store = `sqlite:${dir}/state/state.db`; // the directory is made on first use
  const dns = await startDns();
  const server = await Server.start({
    chain: [...FILTER, "-S", "-d", "0.05", "-D", "0.6", "-P", "0.6", "--strikes", "2"],
    rules: RULES,
    env: { SMTPDELAY_DNS: dns.address, SMTPDELAY_STORE: store },
  });
  try {
    await t.step(POLITE, () => politeSecondIsShort(server));
    await t.step(EARLY, () => earlyNextIsLong(server));

    await t.step("the second strike puts it in the box: 421 at once, nothing runs", async () => {
      assert.match((await talkEarly(server, "127.0.0.5")).text, /^451 /);
      const client = await Client.connect(server.port, "127.0.0.5");
      const text = await client.untilEnd();
      const pid = await server.pidOf(client.localPort);
      await server.endOf(pid);
      assert.equal(
        text,
        "421 You talked before my greeting too often; try again later (#4.7.1)\r\n",
      );
      assert.equal(await server.record(pid), undefined);
      assert.match(server.linesOf(pid)[0]!, / REFUSED .* action=421 memory=box$/);
    });

    await t.step(
      "a boxed client that talks early gets the box's 421, and no new strike",
      async () => {
        const { text, pid } = await talkEarly(server, "127.0.0.5");
        assert.equal(
          text,
          "421 You talked before my greeting too often; try again later (#4.7.1)\r\n",
        );
        assert.match(server.linesOf(pid)[0]!, / REFUSED .* action=421 memory=box$/);
        assert.match((await state(store, "show", "192.0.2.5")).stdout, / strikes=0 .* boxes=1 /);
      },
    );

    await t.step("state list shows it, state forgive lets it in again", async () => {
      const list = await state(store, "list");
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /^192\.0\.2\.5 .* strikes=0 .* boxes=1 box-until=20/m);
      assert.doesNotMatch(list.stdout, /^192\.0\.2\.3 /m, "a polite client is not penalised");
      const shown = await state(store, "show", "192.0.2.5");
      assert.match(shown.stdout, /^192\.0\.2\.5 passed=20.* boxes=1 /);
      const forgiven = await state(store, "forgive", "192.0.2.5");
      assert.equal(forgiven.stdout, "192.0.2.5 forgiven\n");
      const after = await banner(server, "127.0.0.5");
      assert.ok(after.seconds < 0.6, `banner after ${after.seconds} s, want the ptr delay`);
      assert.equal((await state(store, "list")).stdout, "");
    });

    await t.step(
      "RELAYCLIENT passes at once, even talking early, and is never penalised",
      async () => {
        for (let i = 0; i < 3; i++) {
          const client = await Client.connect(server.port, "127.0.0.8");
          await client.send("EHLO relay.example.org\r\n");
          await client.wait(() => finalReplies(client.text).length >= 2, "banner and EHLO reply");
          assert.match(client.text, /^220 recorder/);
          const pid = await server.pidOf(client.localPort);
          client.close();
          await server.endOf(pid);
          assert.match(server.linesOf(pid)[0]!, / PASS .* action=exec memory=exempt$/);
          assert.equal((await server.record(pid))!.info.exe, RECORDER);
        }
        assert.match((await state(store, "show", "192.0.2.8")).stdout, /nothing remembered/);
      },
    );
  } finally {
    await server.stop();
    await dns.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

/** The allowlist of the exemption tests: one network and one rDNS suffix. */
const ALLOWLIST = "# trusted\n192.0.2.6/31\n.example.net\n";

/**
 * Clients the allowlist exempts, each by one entry alone, so that each case
 * fails when its half breaks: the client in the allowed network has a name
 * under no allowed suffix, the clients named under the suffix have addresses
 * in no allowed network. `found` is what the PASS line says of the name.
 */
const EXEMPT: Array<{ name: string; rule: Rule; found: string }> = [
  {
    name: "an address in an allowed network, its name under no allowed suffix",
    rule: { from: "127.0.0.7", env: { TCPREMOTEIP: "192.0.2.7", TCPREMOTEHOST: "mx.example.org" } },
    found: "tier=- ptr=- lookup=unneeded",
  },
  {
    name: "TCPREMOTEHOST under an allowed suffix, the address in no allowed network",
    rule: { from: "127.0.0.5", env: { TCPREMOTEIP: "192.0.2.5", TCPREMOTEHOST: "mx.example.net" } },
    found: "tier=- ptr=- lookup=unneeded",
  },
  {
    // Name first: with suffixes in the allowlist, the memory waits for the PTR lookup.
    name: "no TCPREMOTEHOST, its PTR under an allowed suffix, the address in no allowed network",
    rule: { from: "127.0.0.2", env: { TCPREMOTEIP: "192.0.2.2" } }, // mail.example.net
    found: "tier=ptr ptr=mail.example.net lookup=found",
  },
];

Deno.test("an allowlist exempts networks and rDNS suffixes from everything", E2E, async (t) => {
  const dns = await startDns();
  try {
    for (const { name, rule, found } of EXEMPT) {
      await t.step(name, async () => {
        const dir = await Deno.makeTempDir({ prefix: "smtp-delay-allow-" });
        const allow = `${dir}/allow`;
        await Deno.writeTextFile(allow, ALLOWLIST);
        const server = await Server.start({
          // Whatever its tier, a client that is not exempt waits 0.6 s.
          chain: [...FILTER, "-S", "-d", "0.6", "-D", "0.6", "-P", "0.6", "--allow", allow],
          rules: [rule],
          env: { SMTPDELAY_DNS: dns.address, SMTPDELAY_STORE: `sqlite:${dir}/state.db` },
        });
        try {
          const { seconds, pid } = await banner(server, rule.from);
          // waited=, the screening's own time: the wall clock would count a Deno start too.
          const waited = Number(/ waited=([0-9.]+) /.exec(server.linesOf(pid)[0]!)?.[1]);
          assert.ok(waited < 0.3, `waited ${waited} s, want no delay (banner after ${seconds} s)`);
          assert.equal(
            server.linesOf(pid)[0]!.replace(/ waited=0\.[0-9]{3} /, " waited=W "),
            `smtp-delay: info: PASS pid=${pid} ip=${rule.env.TCPREMOTEIP} ${found} ` +
              "delay=0.000 waited=W action=exec memory=exempt",
          );
          // No memory of exempt clients: the store was never even opened.
          await assert.rejects(Deno.stat(`${dir}/state.db`), Deno.errors.NotFound);
        } finally {
          await server.stop();
          await Deno.remove(dir, { recursive: true });
        }
      });
    }
  } finally {
    await dns.stop();
  }
});

Deno.test("limits on SQLite: many filter processes count one client exactly", E2E, async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smtp-delay-limits-" });
  // 20 Deno processes starting at once on 2 cores: a lock holder can wait its
  // turn for the CPU longer than the 200 ms default; this test is about counting.
  const env = { SMTPDELAY_STORE: `sqlite:${dir}/state.db`, SMTPDELAY_STORE_TIMEOUT: "3" };
  const server = await Server.start({
    chain: [...FILTER, "-S", "-d", "0.3", "--max-rate", "10"],
    rules: RULES,
    env,
  });
  const small = await Server.start({
    chain: [...FILTER, "-S", "-d", "0.3", "--max-conns", "3"],
    rules: RULES,
    env,
  });
  try {
    await t.step("20 connections at once with --max-rate 10: 10 pass, 10 get 421", async () => {
      const clients = await Promise.all(
        Array.from({ length: 20 }, () => Client.connect(server.port, "127.0.0.6")),
      );
      const texts = await Promise.all(clients.map(async (c) => {
        await c.wait(() => /\r\n/.test(c.text), "a first line");
        c.close();
        return c.text;
      }));
      const passed = texts.filter((x) => x.startsWith("220 recorder")).length;
      const refused = texts.filter((x) => x.startsWith("421 Too many connections")).length;
      assert.deepEqual([passed, refused], [10, 10], texts.join(""));
      assert.doesNotMatch(server.lines.join("\n"), /memory=down|warning/, "no count was lost");
    });

    await t.step(
      "--max-conns 3: a fourth open connection is refused, a fifth after one ends is not",
      async () => {
        const open = [];
        for (let i = 0; i < 3; i++) {
          const c = await Client.connect(small.port, "127.0.0.7");
          await c.until(/^220 recorder/);
          open.push(c);
        }
        const fourth = await Client.connect(small.port, "127.0.0.7");
        assert.match(await fourth.untilEnd(), /^421 Too many connections/);
        const pid = await small.pidOf(fourth.localPort);
        await small.endOf(pid);
        assert.match(small.linesOf(pid)[0]!, / REFUSED .* memory=conns$/);
        // One session ends: its process (the recorder, same pid) is gone.
        const ending = open.shift()!;
        await patient(ending, messageBody(10, 1)).catch(() => {});
        await small.endOf(await small.pidOf(ending.localPort));
        const fifth = await banner(small, "127.0.0.7");
        assert.match(small.linesOf(fifth.pid)[0]!, / PASS /);
        for (const c of open) c.close();
      },
    );
  } finally {
    await server.stop();
    await small.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "a SQLite store that is locked or cannot be opened: no memory, a warning, no lost session",
  E2E,
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "smtp-delay-locked-" });
    const file = `${dir}/state.db`;
    const server = await Server.start({
      chain: [...FILTER, "-S", "-d", "0.05"],
      rules: RULES,
      env: { SMTPDELAY_STORE: `sqlite:${file}`, SMTPDELAY_STORE_TIMEOUT: "0.2" },
    });
    const broken = await Server.start({
      chain: [...FILTER, "-S", "-d", "0.05"],
      rules: RULES,
      env: { SMTPDELAY_STORE: "sqlite:/proc/no/such/dir/state.db" },
    });
    try {
      await t.step("locked: the client passes after the store deadline, memory=down", async () => {
        await banner(server, "127.0.0.6"); // creates the file
        const holder = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--allow-read",
            "--allow-write",
            `${ROOT}tests/fixtures/sqlite_lock.ts`,
            file,
          ],
          stdin: "piped",
          stdout: "piped",
        }).spawn();
        const reader = holder.stdout.getReader();
        await reader.read(); // "locked"
        try {
          const { seconds, pid } = await banner(server, "127.0.0.6");
          assert.ok(seconds < 3, `banner after ${seconds} s`);
          const lines = server.lines.join("\n");
          assert.match(lines, /smtp-delay: warning: going on without memory: sqlite .*locked/);
          assert.match(server.linesOf(pid)[0]!, / PASS .* memory=down$/);
        } finally {
          await holder.stdin.close();
          reader.releaseLock();
          await holder.stdout.cancel();
          await holder.status;
        }
        const again = await banner(server, "127.0.0.6");
        assert.match(server.linesOf(again.pid)[0]!, / PASS .* memory=passed$/);
      });

      await t.step("not a database: the client passes, memory=down", async () => {
        const garbage = `${dir}/garbage.db`;
        await Deno.writeTextFile(garbage, "this is not an SQLite file\n".repeat(100));
        const corrupt = await Server.start({
          chain: [...FILTER, "-S", "-d", "0.05"],
          rules: RULES,
          env: { SMTPDELAY_STORE: `sqlite:${garbage}` },
        });
        try {
          const { pid } = await banner(corrupt, "127.0.0.6");
          assert.match(corrupt.linesOf(pid)[0]!, / PASS .* memory=down$/);
          assert.match(corrupt.lines.join("\n"), /going on without memory: sqlite .*garbage\.db/);
        } finally {
          await corrupt.stop();
        }
      });

      await t.step(
        "cannot be created: the client passes, memory=down, the warning names the path",
        async () => {
          const { pid } = await banner(broken, "127.0.0.6");
          assert.match(broken.linesOf(pid)[0]!, / PASS .* memory=down$/);
          assert.match(
            broken.lines.join("\n"),
            /warning: going on without memory: sqlite \/proc\/no\/such\/dir\/state\.db: unable to create its directory/,
          );
        },
      );
    } finally {
      await server.stop();
      await broken.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

const SERVE_RULES: Rule[] = [
  // dynamic: waits -D; ptr: waits -d
  { from: "127.0.0.3", env: { TCPREMOTEIP: "192.0.2.3", TCPREMOTEHOST: "dsl-3.pool.example.net" } },
  { from: "127.0.0.5", env: { TCPREMOTEIP: "192.0.2.5", TCPREMOTEHOST: "mx.example.org" } },
  { from: "127.0.0.7", env: { TCPREMOTEIP: "192.0.2.7", TCPREMOTEHOST: "mx7.example.org" } },
];

Deno.test("serve's memory on SQLite", E2E, async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "smtp-delay-serve-memory-" });
  const store = `sqlite:${dir}/state.db`;
  const server = await ServeServer.start({
    args: ["-H", "-S", "-d", "0.05", "-D", "0.6", "-P", "0.6", "--store", store]
      .concat(["--max-conns", "1"]),
    rules: SERVE_RULES,
    env: { SMTPDELAY_STORE: "" }, // unset: --store says where
  });
  try {
    await t.step(POLITE, () => politeSecondIsShort(server));
    await t.step(EARLY, () => earlyNextIsLong(server));

    await t.step(
      "--max-conns 1: a second connection while the first session runs gets 421",
      async () => {
        const { client: running, pid } = await greeted(server, "127.0.0.7");
        const from = server.lines.length;
        const second = await Client.connect(server.port, "127.0.0.7");
        assert.equal(
          await second.untilEnd(),
          "421 Too many connections from your address; try again later (#4.7.0)\r\n",
        );
        assert.match(
          await server.waitLog(/ REFUSED /, "REFUSED", from),
          /^smtp-delay: info: REFUSED pid=0 ip=192\.0\.2\.7 .* action=421 memory=conns$/,
        );
        await running.send("QUIT\r\n");
        await running.untilEnd();
        assert.equal(await server.endOf(pid), 0);
        const after = await banner(server, "127.0.0.7");
        assert.match(server.linesOf(after.pid)[0]!, / PASS .* action=exec memory=(-|passed)$/);
      },
    );
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
