/**
 * `smtp-delay serve` under a burst of simultaneous connects, from distinct
 * loopback addresses, by a load generator in a subprocess (burst.ts): with
 * its defaults it holds 3,000 of them (every client gets its banner or a
 * 421, none is left hanging in the kernel's queue), and at a cold start it
 * opens the SQLite state file once, not once per client.
 */
import assert from "node:assert/strict";
import { ROOT } from "../fixtures/source.ts";
import type { BurstResult } from "./burst.ts";
import { E2E, FILTER, run, ServeServer } from "./harness.ts";
import { openFilesUnder } from "./proc.ts";

/** Runs `count` simultaneous clients against `port`; each waits for a first line up to `deadlineMs`. */
async function burst(port: number, count: number, deadlineMs: number): Promise<BurstResult> {
  const out = await run([
    FILTER[0]!,
    "run",
    "--allow-net",
    "--allow-ffi",
    "--no-prompt",
    `${ROOT}tests/e2e/burst.ts`,
    String(port),
    String(count),
    String(deadlineMs),
  ]);
  assert.equal(out.code, 0, out.stderr);
  return JSON.parse(out.stdout) as BurstResult;
}

/** A number from /proc (a sysctl, a limit), or undefined. */
function procNumber(path: string, pick: (text: string) => string | undefined): number | undefined {
  try {
    const n = Number(pick(Deno.readTextFileSync(path)));
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

const BURST = 3000;
const SOMAXCONN = procNumber("/proc/sys/net/core/somaxconn", (t) => t.trim());
/** The hard limit on open files, which burst.ts raises its soft limit to. */
const HARD_FILES = procNumber(
  "/proc/self/limits",
  (t) => /^Max open files\s+\S+\s+(\S+)/m.exec(t)?.[1],
);
const CAN_BURST = (SOMAXCONN ?? 0) >= BURST && (HARD_FILES ?? 0) >= BURST + 100;
const WHY_NOT = `net.core.somaxconn ${SOMAXCONN} or the hard fd limit ${HARD_FILES} below ${BURST}`;

/** The backlog of the socket listening on `port`, as ss(8) reports it (Send-Q). */
async function backlogOf(port: number): Promise<number> {
  const out = await run(["ss", "-ltnH", `sport = :${port}`]);
  const fields = out.stdout.trim().split(/\s+/);
  assert.equal(fields[0], "LISTEN", out.stdout + out.stderr);
  return Number(fields[2]);
}

Deno.test({
  name: `serve with its defaults holds a burst of ${BURST} connects: a banner or 421 for each` +
    (CAN_BURST ? "" : ` (SKIPPED: ${WHY_NOT})`),
  ignore: !CAN_BURST,
  ...E2E,
  fn: async () => {
    // Defaults for the backlog and --waiting; -P 1: every client waits 1 s in the screening, so
    // that the first 1000 fill the waiting room and the others get 421; -c 200: their sessions
    // start soon. RECORD_DIR empty: the recorder only talks.
    const server = await ServeServer.start({
      args: ["-H", "-l", "mx.burst.test", "-c", "200", "-S", "-t", "0", "-P", "1"],
      env: { RECORD_DIR: "" },
      quiet: true,
    });
    try {
      assert.equal(await backlogOf(server.port), Math.min(4096, SOMAXCONN!));
      const started = performance.now();
      // A client the kernel left in its queue waits for a retransmission: 1 s, 3 s, 7 s... and,
      // with tcpserver's backlog of 20, most wait past 25 s.
      const got = await burst(server.port, BURST, 25_000);
      const seconds = (performance.now() - started) / 1000;
      const log = `\n${JSON.stringify(got)} in ${seconds} s\n${
        server.lines.filter((l) => !/ (PASS|BUSY) /.test(l)).slice(0, 20).join("\n")
      }`;
      assert.deepEqual(
        { hung: got.hung, failed: got.failed, other: got.other },
        { hung: 0, failed: 0, other: 0 },
        log,
      );
      assert.equal(got.banner + got.busy, BURST, log);
      assert.ok(
        got.banner >= 1000,
        `only ${got.banner} banners: the waiting room holds 1000${log}`,
      );
      // Those beyond --waiting were told so at once, by serve, each with a BUSY line.
      const busy = server.lines.filter((l) => l.includes(" BUSY "));
      assert.equal(busy.length, got.busy, log);
      for (const line of busy) assert.match(line, / why=waiting waiting=1000 action=421$/);
      assert.equal(server.lines.filter((l) => l.includes(" PASS ")).length, got.banner, log);
    } finally {
      await server.stop();
    }
  },
});

Deno.test(
  "serve opens the state file once at a cold start: one handle after a burst, and after a reload",
  E2E,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "smtp-delay-burst-" });
    const server = await ServeServer.start({
      args: ["-H", "-l", "mx.burst.test", "-c", "100", "-S", "-t", "0", "-P", "0.1"]
        .concat(["--store", `sqlite:${dir}/state.db`]),
      env: { RECORD_DIR: "", SMTPDELAY_STORE: "" }, // unset: --store says where
      quiet: true,
    });
    const oneHandle = ["state.db", "state.db-shm", "state.db-wal"];
    try {
      // Nobody came yet: nothing open.
      assert.deepEqual(await openFilesUnder(server.pid, dir), []);
      for (const round of ["at a cold start", "after a SIGHUP"]) {
        const got = await burst(server.port, 300, 10_000);
        const log = `\n${round}: ${JSON.stringify(got)}\n${
          server.lines.filter((l) => !/ (PASS|RELOAD) /.test(l)).slice(0, 20).join("\n")
        }`;
        assert.equal(got.banner, 300, log);
        assert.deepEqual(await openFilesUnder(server.pid, dir), oneHandle, round);
        const passes = server.lines.filter((l) => l.includes(" PASS "));
        assert.ok(
          passes.every((l) => / memory=(-|passed)$/.test(l)),
          `every client had its memory${log}`,
        );
        if (round === "at a cold start") {
          const from = server.lines.length;
          server.kill("SIGHUP");
          await server.waitLog(/^smtp-delay: info: RELOAD /, "RELOAD", from);
        }
      }
    } finally {
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test({
  name: "serve -b above net.core.somaxconn: the kernel's cap, and a warning that says so" +
    (SOMAXCONN === undefined ? " (SKIPPED: no /proc/sys/net/core/somaxconn)" : ""),
  ignore: SOMAXCONN === undefined,
  ...E2E,
  fn: async () => {
    const asked = SOMAXCONN! + 1;
    const server = await ServeServer.start({
      args: ["-H", "-l", "mx.burst.test", "-b", String(asked), "-S", "-t", "0", "-P", "0"],
    });
    try {
      assert.equal(await backlogOf(server.port), SOMAXCONN);
      assert.deepEqual(server.lines.filter((l) => l.includes("warning")), [
        `smtp-delay: warning: only ${SOMAXCONN} connections in the listen queue for -b ${asked} ` +
        "(net.core.somaxconn): clients of a burst beyond wait unanswered (raise it with sysctl)",
      ]);
    } finally {
      await server.stop();
    }
  },
});
