/**
 * The lists (--dnsbl) for real, in both modes: dnsmasq serves test lists
 * under .test on loopback (beside the harness's PTRs, with a TTL for the
 * memory to keep), the clients are given TEST-NET addresses by tcprules.
 * A blocklisted client is refused, and an allowlisted one handed on, long
 * before its delay; weights add up across lists, a filter leaves answers
 * out; a list server that never answers holds no client past its delay; the
 * memory answers for the lists the second time; an IPv6 client is asked
 * about by its nibbles.
 */
import assert from "node:assert/strict";
import {
  banner,
  baselineFds,
  blackHole,
  Client,
  E2E,
  FILTER,
  type Logged,
  MODES,
  poll,
  type Rule,
  Server,
  startDns,
  startServer,
} from "./harness.ts";

/** The lists' records: the name a list is asked, its answer. */
const RECORDS: Record<string, string> = {
  "9.2.0.192.bl.test": "127.0.0.2", // 192.0.2.9 is blocklisted
  ["9." + "0.".repeat(23) + "8.b.d.0.1.0.0.2.bl.test"]: "127.0.0.2", // so is 2001:db8::9
  "5.2.0.192.wl.test": "127.0.0.2", // 192.0.2.5 is allowlisted
  "6.2.0.192.a.test": "127.0.0.2", // 192.0.2.6 is in a.test and b.test
  "6.2.0.192.b.test": "127.0.0.2",
  "7.2.0.192.a.test": "127.0.0.2", // 192.0.2.7 in a.test only
  "4.2.0.192.bl.test": "127.0.0.4", // 192.0.2.4 in bl.test, with another code
  "10.2.0.192.a.test": "10.0.0.1", // 192.0.2.10: not a listing
};

/**
 * dnsmasq's options for the lists: NXDOMAIN for any other name under .test,
 * and a TTL of 10 minutes on the answers (its default is 0: nothing kept).
 */
const LISTS = [
  "--local=/test/",
  "--local-ttl=600",
  ...Object.entries(RECORDS).map(([name, address]) => `--address=/${name}/${address}`),
];

/**
 * The client from 127.0.0.N is given 192.0.2.N (127.0.0.11 a name too); from
 * 127.0.0.69, 2001:db8::9.
 */
const RULES: Rule[] = [
  ...[4, 5, 6, 7, 8, 9, 10].map((n) => ({
    from: `127.0.0.${n}`,
    env: { TCPREMOTEIP: `192.0.2.${n}` },
  })),
  { from: "127.0.0.11", env: { TCPREMOTEIP: "192.0.2.11", TCPREMOTEHOST: "mx.example.org" } },
  { from: "127.0.0.69", env: { TCPREMOTEIP: "2001:db8::9" } },
];
const BLOCKED = "127.0.0.9";
const BLOCKED6 = "127.0.0.69";
const VOUCHED = "127.0.0.5";
const CLEAN = "127.0.0.8"; // in no list
const NAMED = "127.0.0.11"; // in no list, and named by tcpserver (no PTR lookup)

const REPLY_TEXT = "Your address is on a blocklist; try again later (#4.7.1)";
const REPLY = `421 ${REPLY_TEXT}\r\n`;

/** Every tier's delay where it is the lists that must end the wait: 5 s. */
const DELAY_SECONDS = 5;
const DELAYS = ["-d", "5", "-D", "5", "-P", "5"];
/** A blocklist of weight 1 and an allowlist of weight -2, at the default thresholds 1 and -1. */
const BL_WL = ["--dnsbl", "bl.test", "--dnsbl", "wl.test*-2"];

/** An outcome line's pattern: EVENT, then `fields` (a pattern) up to action=, then the rest. */
function outcome(event: string, pid: number, ip: string, fields: string, rest: string): RegExp {
  const escaped = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(
    `^smtp-delay: info: ${event} pid=${pid} ip=${escaped(ip)} ${fields} ` +
      `waited=[0-9]+\\.[0-9]{3} ${escaped(rest)}$`,
  );
}

/** Seconds from the client's connect to its first byte received. */
const firstByte = (client: Client) => (client.firstByteAt! - client.connectedAt) / 1000;

/**
 * A client from `from` that gets `reply` and the end, and starts nothing;
 * the LISTED line it logged and the seconds to the reply.
 */
async function refused(
  server: Logged,
  from: string,
  reply = REPLY,
): Promise<{ line: string; pid: number; seconds: number }> {
  let seconds = Infinity;
  const { line, pid } = await server.startsNothing("LISTED", async () => {
    const client = await Client.connect(server.port, from);
    assert.equal(await client.untilEnd(), reply);
    seconds = firstByte(client);
    return client;
  });
  return { line, pid, seconds };
}

/** How many UDP sockets process `pid` holds that are connected to 127.0.0.1 `port`. */
async function udpSocketsTo(pid: number, port: number): Promise<number> {
  const peer = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const inodes = new Set<string>();
  for (const row of (await Deno.readTextFile("/proc/net/udp")).split("\n").slice(1)) {
    const f = row.trim().split(/\s+/);
    if (f[2] === peer) inodes.add(`socket:[${f[9]}]`);
  }
  let n = 0;
  for await (const e of Deno.readDir(`/proc/${pid}/fd`)) {
    if (inodes.has(await Deno.readLink(`/proc/${pid}/fd/${e.name}`).catch(() => ""))) n++;
  }
  return n;
}

/** The warnings about the lists so far. */
const listWarnings = (server: Logged, from = 0) =>
  server.lines.slice(from).filter((l) => /^smtp-delay: warning: unable to (ask|use) /.test(l));

for (const mode of MODES) {
  Deno.test(
    `${mode}: the lists refuse a blocklisted client and hand on an allowlisted one before its delay`,
    E2E,
    async (t) => {
      const dns = await startDns(LISTS);
      const options = { rules: RULES, env: { SMTPDELAY_DNS: dns.address } };
      const standalone = await startServer(mode, { args: ["-S", ...DELAYS, ...BL_WL], ...options });
      const chained = await startServer(mode, { args: [...DELAYS, ...BL_WL], ...options });
      try {
        await t.step("-S: a blocklisted client gets 421 at once and a LISTED line", async () => {
          const { line, pid, seconds } = await refused(standalone, BLOCKED);
          assert.ok(seconds < DELAY_SECONDS / 2, `421 after ${seconds} s, want well before 5 s`);
          assert.match(
            line,
            outcome(
              "LISTED",
              pid,
              "192.0.2.9",
              "tier=\\S+ ptr=- lookup=\\S+ delay=\\S+",
              "action=421 memory=off score=1 lists=bl.test",
            ),
          );
        });

        await t.step(
          "without -S: it is handed on at once with RBLSMTPD set to the reply's text",
          async () => {
            const { seconds, pid } = await banner(chained, BLOCKED);
            assert.ok(
              seconds < DELAY_SECONDS / 2,
              `banner after ${seconds} s, want well before 5 s`,
            );
            const handed = (await chained.record(pid))!;
            assert.equal(handed.env.RBLSMTPD, REPLY_TEXT);
            assert.equal(chained.linesOf(pid).length, 1, chained.lines.join("\n"));
            assert.match(
              chained.linesOf(pid)[0]!,
              outcome(
                "LISTED",
                pid,
                "192.0.2.9",
                "tier=\\S+ ptr=- lookup=\\S+ delay=\\S+",
                "action=rblsmtpd memory=off score=1 lists=bl.test",
              ),
            );
          },
        );

        await t.step("an allowlisted client is handed on at once with RBLSMTPD empty", async () => {
          const { seconds, pid } = await banner(standalone, VOUCHED);
          assert.ok(seconds < DELAY_SECONDS / 2, `banner after ${seconds} s, want no delay`);
          const handed = (await standalone.record(pid))!;
          assert.equal(handed.env.RBLSMTPD, "", "rblsmtpd after it skips its own lists");
          assert.equal(handed.info.fds, await baselineFds(), "the lists' socket is not handed on");
          assert.match(
            standalone.linesOf(pid)[0]!,
            outcome(
              "PASS",
              pid,
              "192.0.2.5",
              "tier=\\S+ ptr=- lookup=\\S+ delay=0\\.000",
              "action=exec memory=off score=-2 lists=wl.test",
            ),
          );
        });

        await t.step("an IPv6 client is asked about by its nibbles, and refused", async () => {
          const { line, pid, seconds } = await refused(standalone, BLOCKED6);
          assert.ok(seconds < DELAY_SECONDS / 2, `421 after ${seconds} s, want well before 5 s`);
          assert.match(
            line,
            outcome(
              "LISTED",
              pid,
              "2001:db8:0:0:0:0:0:9",
              "tier=\\S+ ptr=- lookup=\\S+ delay=\\S+",
              "action=421 memory=off score=1 lists=bl.test",
            ),
          );
        });

        await t.step("every list answered: no warning", () => {
          assert.deepEqual([...listWarnings(standalone), ...listWarnings(chained)], []);
        });
      } finally {
        await standalone.stop();
        await chained.stop();
        await dns.stop();
      }
    },
  );

  Deno.test(
    `${mode}: a list server that never answers holds a client only for its delay`,
    E2E,
    async (t) => {
      const dead = await blackHole();
      const deadPort = Number(dead.address.split(":")[1]);
      // -t 5 gives the lists (and the PTR lookup) more time than the 1 s delays.
      const server = await startServer(mode, {
        args: ["-S", "-d", "1", "-P", "1", "-t", "5", ...BL_WL],
        rules: RULES,
        env: { SMTPDELAY_DNS: dead.address },
      });
      /**
       * A client from `from` (given `ip`) gets the banner after the 1 s delay,
       * score 0, and one warning per list; serve closes the lists' socket.
       */
      const passes = async (from: string, ip: string, fields: string) => {
        const mark = server.lines.length;
        const client = await Client.connect(server.port, from);
        if (mode === "serve") {
          // For the 1 s of the delay, serve holds the socket of the lists' queries.
          await poll(
            "serve to ask the lists",
            async () => await udpSocketsTo(server.pid, deadPort) > 0 || undefined,
            5,
          );
        }
        await client.until(/^220 recorder ESMTP\r\n/);
        const seconds = firstByte(client);
        assert.ok(seconds >= 1 && seconds < 3.5, `banner after ${seconds} s, want the 1 s delay`);
        const pid = await server.pidOf(client.localPort);
        client.close();
        await server.endOf(pid);
        assert.equal((await server.record(pid))!.env.RBLSMTPD, undefined);
        assert.match(
          server.linesOf(pid)[0]!,
          outcome("PASS", pid, ip, fields, "action=exec memory=off score=0 lists=-"),
        );
        assert.deepEqual(listWarnings(server, mark), [
          `smtp-delay: warning: unable to ask bl.test about ${ip}: timed out`,
          `smtp-delay: warning: unable to ask wl.test about ${ip}: timed out`,
        ]);
        if (mode === "serve") {
          await poll(
            "serve to close the lists' socket",
            async () => await udpSocketsTo(server.pid, deadPort) === 0 || undefined,
          );
        }
      };
      try {
        await t.step("with no name either: the lookup and the lists give up together", async () => {
          await passes(BLOCKED, "192.0.2.9", "tier=noptr ptr=- lookup=timeout delay=1\\.000");
        });
        await t.step("with the name from tcpserver: the lists alone give up", async () => {
          await passes(
            NAMED,
            "192.0.2.11",
            "tier=ptr ptr=mx\\.example\\.org lookup=host delay=1\\.000",
          );
        });
      } finally {
        await server.stop();
        await dead.stop();
      }
    },
  );

  Deno.test(
    `${mode}: the memory keeps the lists' answers: the second connection asks nothing`,
    E2E,
    async () => {
      const dns = await startDns(LISTS);
      let dnsRunning = true;
      const dir = await Deno.makeTempDir({ prefix: "smtp-delay-lists-" });
      const server = await startServer(mode, {
        args: ["-S", "-d", "0.3", "-D", "0.3", "-P", "0.3", "--dnsbl", "bl.test"],
        rules: RULES,
        env: { SMTPDELAY_DNS: dns.address, SMTPDELAY_STORE: `sqlite:${dir}/state.db` },
      });
      const listed = (pid: number) =>
        outcome(
          "LISTED",
          pid,
          "192.0.2.9",
          "tier=\\S+ ptr=- lookup=\\S+ delay=\\S+",
          "action=421 memory=- score=1 lists=bl.test",
        );
      try {
        const first = await refused(server, BLOCKED);
        assert.match(first.line, listed(first.pid));
        // No name server from here on: only the memory can answer for bl.test.
        await dns.stop();
        dnsRunning = false;
        const from = server.lines.length;
        const second = await refused(server, BLOCKED);
        assert.match(second.line, listed(second.pid));
        // A client the memory knows nothing of: bl.test cannot be asked.
        const { pid } = await banner(server, CLEAN);
        assert.match(server.linesOf(pid)[0]!, / PASS .* score=0 lists=-$/);
        const warned = listWarnings(server, from);
        assert.equal(warned.length, 1, warned.join("\n"));
        assert.match(
          warned[0]!,
          /^smtp-delay: warning: unable to ask bl\.test about 192\.0\.2\.8: /,
        );
      } finally {
        await server.stop();
        if (dnsRunning) await dns.stop();
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
}

Deno.test(
  "filter: weights add up across lists, a filter leaves answers out, only 127/8 answers count",
  E2E,
  async (t) => {
    const dns = await startDns(LISTS);
    // The run file's variables this time: --dnsbl's, its threshold's and its reply's.
    const reply = "554 Listed twice; see https://lists.example.net/ (#5.7.1)";
    const server = await Server.start({
      chain: [...FILTER, "-S", "-d", "1", "-D", "1", "-P", "1"],
      rules: RULES,
      env: {
        SMTPDELAY_DNS: dns.address,
        SMTPDELAY_DNSBL: "a.test b.test  bl.test=127.0.0.2*2",
        SMTPDELAY_DNSBL_THRESHOLD: "2",
        SMTPDELAY_DNSBL_REPLY: reply,
      },
    });
    // [what, N: the client from 127.0.0.N is 192.0.2.N, the outcome wanted]
    const table: Array<[string, number, string]> = [
      ["in two lists of weight 1: 2, the threshold", 6, "LISTED score=2 lists=a.test,b.test"],
      ["in one of them: 1, under it", 7, "PASS score=1 lists=a.test"],
      ["answered 127.0.0.2, which bl.test's filter takes", 9, "LISTED score=2 lists=bl.test"],
      ["answered 127.0.0.4, which bl.test's filter leaves out", 4, "PASS score=0 lists=-"],
      ["answered 10.0.0.1 by a.test, which has no filter", 10, "PASS score=0 lists=-"],
      ["in no list", 8, "PASS score=0 lists=-"],
    ];
    try {
      for (const [what, n, want] of table) {
        await t.step(`${what}: ${want}`, async () => {
          const [event, score, lists] = want.split(" ");
          const rest = `memory=off ${score} ${lists}`;
          const ip = `192.0.2.${n}`;
          if (event === "LISTED") {
            // Refused as soon as known: the delay (1 s) does not matter here.
            const { line, pid } = await refused(server, `127.0.0.${n}`, `${reply}\r\n`);
            const fields = "tier=\\S+ ptr=- lookup=\\S+ delay=\\S+";
            assert.match(line, outcome("LISTED", pid, ip, fields, `action=554 ${rest}`));
          } else {
            const { seconds, pid } = await banner(server, `127.0.0.${n}`);
            assert.ok(seconds >= 1, `banner after ${seconds} s, want the 1 s delay`);
            const fields = "tier=noptr ptr=- lookup=none delay=1\\.000";
            assert.match(
              server.linesOf(pid)[0]!,
              outcome("PASS", pid, ip, fields, `action=exec ${rest}`),
            );
          }
        });
      }
      await t.step("one warning, for the answer outside 127.0.0.0/8", () => {
        assert.deepEqual(listWarnings(server), [
          "smtp-delay: warning: unable to use a.test's answer for 192.0.2.10: 10.0.0.1 is not a listing",
        ]);
      });
    } finally {
      await server.stop();
      await dns.stop();
    }
  },
);
