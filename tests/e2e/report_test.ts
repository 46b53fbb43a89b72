/**
 * `smtp-delay report` on logs made for real: the filter under a real
 * tcpserver -v (its PTR lookups answered by dnsmasq), its stderr written by
 * multilog `t s4096` into a directory of rotated files, and clients that
 * pass, talk early, hang up and are refused. The report of that directory
 * must count what the test knows it did, read the files in order, and draw
 * its page.
 */
import assert from "node:assert/strict";
import { runReport } from "../fixtures/report.ts";
import {
  Client,
  E2E,
  FILTER,
  freePort,
  Pipe,
  RECORDER,
  serverEnv,
  startDns,
  TIMEOUT_MS,
  watching,
  within,
  writeRules,
} from "./harness.ts";

/** What each client does, how many of them, and from where (tcprules sets TCPREMOTEIP). */
const PLAN = {
  pass: { n: 12, from: "127.0.0.2", ip: "192.0.2.2" }, // mail.example.net: ptr, 0.2 s
  early: { n: 8, from: "127.0.0.4", ip: "192.0.2.4" }, // no PTR: noptr, 3 s
  closed: { n: 6, from: "127.0.0.3", ip: "192.0.2.3" }, // dsl-...pool: dynamic, 3 s
  refused: { n: 4, from: "127.0.0.5", ip: "192.0.2.5" }, // no PTR, -N 100
} as const;
const CONNECTIONS = Object.values(PLAN).reduce((n, p) => n + p.n, 0);

/** A line the filter or tcpserver wrote, from the tee of tcpserver's stderr. */
function countOutcomes(lines: readonly string[]): number {
  return lines.filter((l) => /^smtp-delay: info: (PASS|EARLY|CLOSED|REFUSED) /.test(l)).length;
}

Deno.test(
  "report --json counts what clients did under tcpserver, from multilog's rotated files",
  E2E,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "smtp-delay-report-e2e-" });
    const dns = await startDns();
    const port = freePort();
    await Deno.mkdir(`${dir}/records`);
    await writeRules(`${dir}/rules.cdb`, [
      `${PLAN.pass.from}:allow,TCPREMOTEIP="${PLAN.pass.ip}",SMTPDELAYd="0.2"`,
      `${PLAN.early.from}:allow,TCPREMOTEIP="${PLAN.early.ip}",SMTPDELAYP="3"`,
      `${PLAN.closed.from}:allow,TCPREMOTEIP="${PLAN.closed.ip}",SMTPDELAYD="3"`,
      `${PLAN.refused.from}:allow,TCPREMOTEIP="${PLAN.refused.ip}",SMTPDELAYN="100"`,
      ":allow",
    ]);
    const startedMs = Date.now();
    const multilog = new Deno.Command("multilog", {
      args: ["t", "s4096", "n100", `${dir}/log`],
      stdin: "piped",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const tcpserver = new Deno.Command("tcpserver", {
      args: [
        ...["-v", "-R", "-H", "-x", `${dir}/rules.cdb`, "-c", "100", "127.0.0.1", String(port)],
        ...FILTER,
        "-S",
        RECORDER,
      ],
      clearEnv: true,
      env: serverEnv(dir, { SMTPDELAY_DNS: dns.address }),
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // tcpserver's stderr (the filter's too) to multilog, and to the test, line by line.
    const [toLog, toTest] = tcpserver.stderr.tee();
    const logged = toLog.pipeTo(multilog.stdin);
    const lines = new Pipe(toTest);
    const clients: Client[] = [];
    const connect = async (from: string) => {
      const c = await Client.connect(port, from);
      clients.push(c);
      return c;
    };
    try {
      await lines.until(
        () => lines.lines.some((l) => l.startsWith("tcpserver: status: 0/")),
        "tcpserver",
      );
      const pidOf = async (c: Client) => {
        let pid = 0;
        await lines.until(() => {
          const m = lines.lines.map((l) => /^tcpserver: ok (\d+) .*::(\d+)$/.exec(l))
            .find((m) => m && Number(m[2]) === c.localPort);
          pid = m ? Number(m[1]) : 0;
          return pid > 0;
        }, `the ok line of port ${c.localPort}`);
        return pid;
      };
      const pass = async () => {
        const c = await connect(PLAN.pass.from);
        await c.until(/^220 recorder ESMTP\r\n/);
        await c.send("QUIT\r\n");
        await c.untilEnd();
      };
      const early = async () => {
        const c = await connect(PLAN.early.from);
        await c.send("EHLO spam.example.org\r\n");
        assert.match(await c.untilEnd(), /^451 /);
      };
      const closed = async () => {
        const c = await connect(PLAN.closed.from);
        await watching(await pidOf(c)); // in its delay
        await c.shut();
      };
      const refused = async () => {
        const c = await connect(PLAN.refused.from);
        assert.match(await c.untilEnd(), /^421 /);
      };
      // A few at a time: each connection starts a Deno.
      const jobs = [
        ...Array(PLAN.pass.n).fill(pass),
        ...Array(PLAN.early.n).fill(early),
        ...Array(PLAN.closed.n).fill(closed),
        ...Array(PLAN.refused.n).fill(refused),
      ] as Array<() => Promise<void>>;
      for (let i = 0; i < jobs.length; i += 6) {
        await Promise.all(jobs.slice(i, i + 6).map((job) => job()));
      }
      await lines.until(
        () => countOutcomes(lines.lines) === CONNECTIONS,
        () => `${CONNECTIONS} outcome lines:\n${lines.lines.join("\n")}`,
      );
    } finally {
      await Promise.all(clients.map((c) => c.shut()));
      tcpserver.kill("SIGTERM");
      await tcpserver.status;
      await lines.close();
      await within(TIMEOUT_MS, "multilog to take every line", logged);
      await multilog.status;
      await dns.stop();
    }
    const endedMs = Date.now();
    try {
      const names = [...Deno.readDirSync(`${dir}/log`)].map((e) => e.name).sort();
      const rotated = names.filter((n) => /^@[0-9a-f]{24}\.s$/.test(n));
      assert.ok(rotated.length >= 2, `multilog rotated: ${names.join(" ")}`);

      const out = await runReport(["--json", `${dir}/log`]);
      assert.equal(out.code, 0, out.stderr);
      const r = JSON.parse(out.stdout);
      const ours = lines.lines.filter((l) => l.startsWith("smtp-delay: ")).length;
      assert.equal(r.lines, ours, "every line of smtp-delay's, no more");
      assert.deepEqual(r.input, {
        read: lines.lines.length,
        other: lines.lines.length - ours,
        damaged: 0,
        outside: 0,
      });
      assert.deepEqual(r.events, {
        PASS: PLAN.pass.n,
        EARLY: PLAN.early.n,
        CLOSED: PLAN.closed.n,
        REFUSED: PLAN.refused.n,
      });
      // A client that talks or hangs up before its PTR lookup ends has no tier yet ("-").
      const sum = (event: string) =>
        Object.values(r.tiers as Record<string, Record<string, number>>)
          .reduce((n, t) => n + (t[event] ?? 0), 0);
      assert.deepEqual(r.tiers.ptr, { PASS: PLAN.pass.n });
      assert.equal(r.tiers.noptr.REFUSED, PLAN.refused.n);
      for (const tier of Object.keys(r.tiers)) {
        assert.ok(["ptr", "dynamic", "noptr", "-"].includes(tier), `tier ${tier}`);
      }
      assert.equal((r.tiers.dynamic?.CLOSED ?? 0) + (r.tiers["-"]?.CLOSED ?? 0), PLAN.closed.n);
      assert.equal((r.tiers.noptr?.EARLY ?? 0) + (r.tiers["-"]?.EARLY ?? 0), PLAN.early.n);
      for (const event of ["PASS", "EARLY", "CLOSED", "REFUSED"]) {
        assert.equal(sum(event), r.events[event]);
      }
      assert.ok(r.waited.PASS.p50 >= 0.2 && r.waited.PASS.p99 < 3, JSON.stringify(r.waited));
      assert.ok(r.waited.EARLY.p99 < 3, "early talkers talked before their 3 s");
      assert.ok(r.waited.CLOSED.p50 > 0 && r.waited.CLOSED.p99 < 3, "hung up during the delay");
      assert.equal(r.top_early.length, 1);
      const [talker] = r.top_early;
      assert.deepEqual(
        { ...talker, tier: undefined },
        {
          ip: PLAN.early.ip,
          ptr: null,
          tier: undefined,
          count: PLAN.early.n,
          data: "EHLO?spam.example.org??",
        },
      );
      assert.ok(talker.tier === "noptr" || talker.tier === "-", talker.tier);
      assert.deepEqual(r.top_refused, [
        { ip: PLAN.refused.ip, ptr: null, tier: "noptr", count: PLAN.refused.n },
      ]);
      assert.equal(r.cost.clients, 1);
      const first = Date.parse(r.first), last = Date.parse(r.last);
      assert.ok(
        startedMs - 1000 <= first && first <= last && last <= endedMs + 1000,
        `${r.first} ${r.last}`,
      );

      // The same files, in the same order, through stdin: the same counts.
      const cat = names.filter((n) => n.startsWith("@") || n === "current")
        .map((n) => Deno.readTextFileSync(`${dir}/log/${n}`)).join("");
      const piped = await runReport(["--json"], cat);
      assert.deepEqual(JSON.parse(piped.stdout).events, r.events);
      // A period: all of it in the last hour, none of it before.
      const recent = JSON.parse(
        (await runReport(["--json", "--since", "-1h", `${dir}/log`])).stdout,
      );
      assert.equal(recent.lines, r.lines);
      const before = JSON.parse(
        (await runReport(["--json", "--until", "-1h", `${dir}/log`])).stdout,
      );
      assert.equal(before.lines, 0);

      // The page: three charts, with bars.
      const html = await runReport(["--html", `${dir}/report.html`, `${dir}/log`]);
      assert.equal(html.code, 0, html.stderr);
      const page = await Deno.readTextFile(`${dir}/report.html`);
      assert.equal((page.match(/<svg /g) ?? []).length, 3);
      assert.ok((page.match(/aria-roledescription="bar"/g) ?? []).length >= 10);
      assert.match(page, new RegExp(`<b>${PLAN.early.n}</b>`), "the EARLY card");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
