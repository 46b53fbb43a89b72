/**
 * The caps on a session (README, "Caps on a session") in both modes: the
 * per-connection filter under a real tcpserver, and `smtp-delay serve`.
 * --max-session without a relay (SIGALRM before exec, SIGTERM from serve);
 * --max-idle and --max-bytes-per-second through the relay (every byte in
 * order, every reply, exact counts in the END line); the ends of a relayed
 * session (QUIT, a half-close, a reset, idle); the caps set per client by
 * tcprules.
 */
import assert from "node:assert/strict";
import {
  type AnyServer,
  baselineFds,
  E2E,
  finalReplies,
  type Handed,
  messageBody,
  type Mode,
  MODES,
  Peer,
  poll,
  RECORDER,
  type Rule,
  ServeServer,
  socketKind,
  startServer,
} from "./harness.ts";

const encoder = new TextEncoder();

/** The screening of every test: -S, no lookup, no delay: a quiet client passes at once. */
const QUICK = ["-S", "-t", "0", "-P", "0"];

const BANNER = "220 recorder ESMTP\r\n";
/** What the recorder answers to EHLO, MAIL, RCPT, DATA and the end of the data. */
const MAIL_REPLIES =
  "250-recorder\r\n250 PIPELINING\r\n250 ok\r\n250 ok\r\n354 go ahead\r\n250 ok\r\n";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A server of either mode running the screening and caps in `args`, with tcprules `rules`. */
class Rig {
  /** Every client connected through connect(), closed by stop(). */
  private readonly peers: Peer[] = [];

  private constructor(readonly mode: Mode, readonly server: AnyServer) {}

  static async start(
    mode: Mode,
    args: readonly string[],
    rules: Rule[] = [],
    last?: readonly string[],
  ): Promise<Rig> {
    return new Rig(mode, await startServer(mode, { args, rules, ...(last ? { last } : {}) }));
  }

  /** A client from `from` (a 127.0.0.x). */
  async connect(from: string): Promise<Peer> {
    const peer = await Peer.connect("127.0.0.1", this.server.port, from);
    this.peers.push(peer);
    return peer;
  }

  get lines(): string[] {
    return this.server.lines;
  }

  waitLog(re: RegExp, what?: string): Promise<string> {
    return this.server.waitLog(re, what);
  }

  /** The pid of tcpserver's lines: the filter's (per-connection) or the child's (serve). */
  pidOf(clientPort: number): Promise<number> {
    return this.server.pidOf(clientPort);
  }

  endOf(pid: number): Promise<number> {
    return this.server.endOf(pid);
  }

  record(pid: number): Promise<Handed | undefined> {
    return this.server.record(pid);
  }

  /** The process a relayed next program must have as its parent: the filter, or serve. */
  parentOf(pid: number): number {
    return this.server instanceof ServeServer ? this.server.pid : pid;
  }

  /**
   * The next program's pid in a relayed session: in serve the pid of the
   * tcpserver lines; under tcpserver the recorder whose parent is the
   * filter `pid` (it writes its record before its banner).
   */
  async childOf(pid: number): Promise<number> {
    if (this.server instanceof ServeServer) return pid;
    const records = this.server.records;
    return await poll(`a record whose ppid is ${pid}`, async () => {
      for await (const e of Deno.readDir(records)) {
        if (!e.name.endsWith(".info")) continue;
        const info = await Deno.readTextFile(`${records}/${e.name}`).catch(() => "");
        if (info.includes(`\nppid=${pid}\n`)) return Number(e.name.split(".")[0]);
      }
      return undefined;
    });
  }

  /** Closes the clients (a relay lives as long as its client), then stops the server. */
  stop(): Promise<void> {
    for (const peer of this.peers) peer.close();
    return this.server.stop();
  }
}

/** A client that got the recorder's banner, and the pid of its tcpserver lines. */
interface Session {
  readonly peer: Peer;
  readonly pid: number;
}

async function open(rig: Rig, from: string): Promise<Session> {
  const peer = await rig.connect(from);
  const port = peer.localPort;
  await peer.until(/^220 recorder ESMTP\r\n/);
  return { peer, pid: await rig.pidOf(port) };
}

/**
 * Sends `data`, waits for the next final reply and checks its code. Returns
 * performance.now() from before the sending: the server saw `data` later.
 */
async function command(peer: Peer, data: Uint8Array, code: string): Promise<number> {
  const before = finalReplies(peer.text).length;
  const sentAt = performance.now();
  await peer.send(data);
  await peer.wait(() => finalReplies(peer.text).length > before, `reply ${before + 1}`);
  const reply = finalReplies(peer.text)[before]!;
  assert.ok(reply.startsWith(`${code} `), `wanted ${code}, got ${JSON.stringify(reply)}`);
  return sentAt;
}

const text = (s: string) => encoder.encode(s);
const ENVELOPE = [
  text("EHLO client.example.org\r\n"),
  text("MAIL FROM:<a@example.org>\r\n"),
  text("RCPT TO:<b@example.net>\r\n"),
  text("DATA\r\n"),
];

/**
 * A patient client: EHLO, MAIL, RCPT, DATA, then `message` and its dot, each
 * after the reply to the one before and `pauseMs` after it; no QUIT.
 * Returns every byte sent, and when the message began to be sent (see command).
 */
async function mail(
  peer: Peer,
  message: Uint8Array,
  pauseMs = 0,
): Promise<{ sent: Uint8Array; lastSentAt: number }> {
  const body = concat(message, text(".\r\n"));
  const codes = ["250", "250", "250", "354", "250"];
  let lastSentAt = 0;
  for (const [i, part] of [...ENVELOPE, body].entries()) {
    if (i > 0 && pauseMs > 0) await sleep(pauseMs);
    lastSentAt = await command(peer, part, codes[i]!);
  }
  return { sent: concat(...ENVELOPE, body), lastSentAt };
}

/** The PASS line of client `ip`, with the action `action` (every field checked). */
function passLine(pid: number, ip: string, action: string): RegExp {
  return new RegExp(
    `^smtp-delay: info: PASS pid=${pid} ip=${ip.replaceAll(".", "\\.")} tier=noptr ptr=- ` +
      `lookup=skipped delay=0\\.000 waited=\\d+\\.\\d{3} action=${action} memory=off$`,
  );
}

/** Waits for the PASS line of client `ip` and checks every field (see passLine). */
async function passed(rig: Rig, pid: number, ip: string, action: string): Promise<void> {
  const quoted = ip.replaceAll(".", "\\.");
  assert.match(
    await rig.waitLog(new RegExp(` PASS pid=\\d+ ip=${quoted} `)),
    passLine(pid, ip, action),
  );
}

/** Waits for the END line of `ip`'s relayed session; checks every field, returns the seconds. */
async function endLine(
  rig: Rig,
  ip: string,
  want: { pid: number; why: string; in: number; out: number },
): Promise<number> {
  const quoted = ip.replaceAll(".", "\\.");
  const line = await rig.waitLog(new RegExp(`^smtp-delay: info: END pid=\\d+ ip=${quoted} `));
  const m = new RegExp(
    `^smtp-delay: info: END pid=${want.pid} ip=${quoted} why=${want.why} ` +
      `in=${want.in} out=${want.out} seconds=(\\d+\\.\\d{3})$`,
  ).exec(line);
  assert.ok(m, `END line ${JSON.stringify(line)}, want ${JSON.stringify(want)}`);
  return Number(m[1]);
}

/** A relayed child: its parent, its record, no fd leaked, fd 0 a Unix socket (while it runs). */
async function checkRelayed(rig: Rig, pid: number): Promise<number> {
  const child = await rig.childOf(pid);
  if (rig.mode === "filter") {
    assert.notEqual(child, pid, "the filter did not exec: the next program is another process");
  }
  assert.equal(await socketKind(child, 0), "unix", "fd 0 of the child is the relay's socket");
  assert.equal(await socketKind(child, 1), "unix", "fd 1 of the child is the relay's socket");
  const handed = (await rig.record(child))!;
  assert.equal(handed.info.ppid, String(rig.parentOf(pid)), "the relay is the child's parent");
  assert.equal(handed.info.exe, RECORDER);
  assert.equal(handed.info.fds, await baselineFds(), "no fd of the relay is handed to the child");
  return child;
}

/** A session from `from` that passed with action=relay, and its relayed child (see checkRelayed). */
async function openRelayed(rig: Rig, from: string): Promise<Session & { child: number }> {
  const { peer, pid } = await open(rig, from);
  await passed(rig, pid, from, "relay");
  return { peer, pid, child: await checkRelayed(rig, pid) };
}

/**
 * Ends `ip`'s relayed session, whose whole mail `mailed` was answered, with
 * QUIT: 221, END why=eof with exact counts, exit 0, and the child read every
 * byte sent, in order.
 */
async function quitAfterMail(
  rig: Rig,
  ip: string,
  { peer, pid, child }: Session & { child: number },
  mailed: Uint8Array,
): Promise<void> {
  await command(peer, text("QUIT\r\n"), "221");
  await peer.untilEnd();
  assert.equal(peer.text, BANNER + MAIL_REPLIES + "221 bye\r\n");
  const sent = concat(mailed, text("QUIT\r\n"));
  await endLine(rig, ip, { pid: child, why: "eof", in: sent.length, out: peer.received.length });
  assert.equal(await rig.endOf(pid), 0);
  assert.deepEqual((await rig.record(child))!.input, sent, "every byte, in order");
}

/** Seconds from `from` to `to` (performance.now() values). */
const secondsBetween = (from: number, to: number) => (to - from) / 1000;

/**
 * --max-session `cap` in `mode`, and what it must spare: the capped server
 * (where tcprules set SMTPDELAY_MAX_SESSION=0 for 127.0.0.3) and one with
 * --max-session 0, then three sessions past the banner: `killed` (127.0.0.2,
 * capped), `spared` (127.0.0.3, capped) and `free` (127.0.0.2, uncapped).
 * `killed` has had its EHLO answered and passed with action=exec. `check`
 * runs the test's own checks, then the others outlive the cap: still
 * connected `outliveMs` after `free`'s connect, they end with QUIT.
 */
async function maxSession(
  mode: Mode,
  cap: string,
  outliveMs: number,
  check: (capped: Rig, sessions: { killed: Session; spared: Session }) => Promise<void>,
): Promise<void> {
  const capped = await Rig.start(mode, [...QUICK, "--max-session", cap], [
    { from: "127.0.0.3", env: { SMTPDELAY_MAX_SESSION: "0" } },
  ]);
  const uncapped = await Rig.start(mode, [...QUICK, "--max-session", "0"]);
  try {
    const [killed, spared, free] = await Promise.all([
      open(capped, "127.0.0.2"),
      open(capped, "127.0.0.3"),
      open(uncapped, "127.0.0.2"),
    ]);
    await command(killed.peer, ENVELOPE[0]!, "250");
    await passed(capped, killed.pid, "127.0.0.2", "exec");
    await check(capped, { killed, spared });

    await sleep(Math.max(0, free.peer.connectedAt + outliveMs - performance.now()));
    for (const [rig, s] of [[capped, spared], [uncapped, free]] as const) {
      assert.ok(!s.peer.ended, `still connected ${outliveMs / 1000} s after the connect`);
      await command(s.peer, text("QUIT\r\n"), "221");
      await s.peer.untilEnd();
      assert.equal(await rig.endOf(s.pid), 0);
      assert.ok(!rig.lines.some((l) => l.includes(` END pid=${s.pid} `)), rig.lines.join("\n"));
    }
    assert.match(
      capped.lines.find((l) => l.includes(" PASS pid=" + spared.pid + " "))!,
      passLine(spared.pid, "127.0.0.3", "exec"),
    );
  } finally {
    await capped.stop();
    await uncapped.stop();
  }
}

Deno.test(
  "filter --max-session 1: SIGALRM ends the exec'ed session; 0 and SMTPDELAY_MAX_SESSION=0 do not",
  E2E,
  async () => {
    await maxSession("filter", "1", 2000, async (capped, { killed }) => {
      assert.equal(await capped.endOf(killed.pid), -14, "killed by SIGALRM (tcpserver: status 14)");
      assert.ok(capped.lines.includes(`tcpserver: end ${killed.pid} status 14`));
      await killed.peer.untilEnd();
      assert.equal(killed.peer.text, BANNER + "250-recorder\r\n250 PIPELINING\r\n");
      const lasted = secondsBetween(killed.peer.connectedAt, killed.peer.endedAt!);
      assert.ok(lasted >= 1 && lasted < 3, `ended ${lasted} s after the connect, want 1 s`);
      // The cap counts from the filter's start, not from the banner: no lower bound there.
      const afterBanner = secondsBetween(killed.peer.firstByteAt!, killed.peer.endedAt!);
      assert.ok(afterBanner < 2.5, `ended ${afterBanner} s after the banner, want under 1 s`);
      const handed = (await capped.record(killed.pid))!;
      assert.equal(handed.info.exe, RECORDER, "exec: the recorder has the filter's pid");
      assert.ok(!capped.lines.some((l) => l.includes(" END ")), "no relay, no END line");
    });
  },
);

Deno.test(
  "serve --max-session 0.6: SIGTERM to the child and END why=session; 0 and SMTPDELAY_MAX_SESSION=0 do not",
  E2E,
  async () => {
    await maxSession("serve", "0.6", 1600, async (capped, { killed, spared }) => {
      assert.equal(await capped.endOf(killed.pid), -15, "killed by SIGTERM (status 15)");
      assert.ok(capped.lines.includes(`tcpserver: end ${killed.pid} status 15`));
      const line = capped.lines.find((l) => l.includes(" END "))!;
      const m = new RegExp(
        `^smtp-delay: info: END pid=${killed.pid} ip=127\\.0\\.0\\.2 why=session in=- out=- ` +
          `seconds=(\\d+\\.\\d{3})$`,
      ).exec(line);
      assert.ok(m, `END line ${JSON.stringify(line)}`);
      const seconds = Number(m[1]);
      assert.ok(seconds >= 0.6 && seconds < 2.5, `END after ${seconds} s, want 0.6`);
      await killed.peer.untilEnd();
      assert.equal(killed.peer.text, BANNER + "250-recorder\r\n250 PIPELINING\r\n");
      const lasted = secondsBetween(killed.peer.connectedAt, killed.peer.endedAt!);
      assert.ok(lasted >= 0.6 && lasted < 2.5, `ended ${lasted} s after the connect, want 0.6`);
      const handed = (await capped.record(killed.pid))!;
      assert.equal(handed.info.ppid, String(capped.server.pid));
      assert.equal(await socketKind(spared.pid, 0), "tcp", "no relay: the child has the socket");
    });
  },
);

for (const mode of MODES) {
  Deno.test(
    `${mode} --max-idle 0.8: a patient session is relayed byte for byte, then ends idle`,
    E2E,
    async () => {
      const rig = await Rig.start(mode, [...QUICK, "--max-idle", "0.8"]);
      try {
        const { peer, pid, child } = await openRelayed(rig, "127.0.0.2");
        // 0.3 s between commands: longer than the cap in all, never idle for 0.8 s.
        const started = performance.now(); // after the server's start
        const { sent, lastSentAt } = await mail(peer, messageBody(5_000, 7), 300);
        const lastReplyAt = performance.now();
        assert.ok(secondsBetween(started, lastReplyAt) >= 1.2, "the session outlived the cap");
        assert.equal(peer.text, BANNER + MAIL_REPLIES, "every reply, in order");
        await peer.untilEnd();
        // The relay's last byte (the last reply) went after the message was
        // sent and before its reply arrived: the 0.8 s count from in between.
        const idle = secondsBetween(lastSentAt, peer.endedAt!);
        assert.ok(idle >= 0.8, `closed ${idle} s after the message was sent, want 0.8 or more`);
        const afterReply = secondsBetween(lastReplyAt, peer.endedAt!);
        assert.ok(afterReply < 1.6, `closed ${afterReply} s after the last reply, want 0.8`);
        const seconds = await endLine(rig, "127.0.0.2", {
          pid: child,
          why: "idle",
          in: sent.length,
          out: peer.received.length,
        });
        const least = secondsBetween(started, lastSentAt) + 0.8 - 0.0005; // seconds= is rounded
        assert.ok(seconds >= least && seconds < 6, `END seconds=${seconds}, want ${least} or more`);
        assert.equal(peer.text, BANNER + MAIL_REPLIES, "nothing after the last reply");
        // The child sees the end of its input and exits 0; the filter exits with its status.
        assert.equal(await rig.endOf(pid), 0);
        assert.deepEqual((await rig.record(child))!.input, sent, "the child read every byte");
      } finally {
        await rig.stop();
      }
    },
  );

  Deno.test(
    `${mode} --max-bytes-per-second 20000: 60 KB of DATA take 2 s, every byte in order`,
    E2E,
    async () => {
      const rate = 20_000;
      const rig = await Rig.start(mode, [...QUICK, "--max-bytes-per-second", String(rate)]);
      try {
        const { peer, pid, child } = await openRelayed(rig, "127.0.0.2");
        for (const [i, code] of ["250", "250", "250", "354"].entries()) {
          await command(peer, ENVELOPE[i]!, code);
        }
        const body = concat(messageBody(60_000, 3), text(".\r\n"));
        const t0 = performance.now();
        await command(peer, body, "250");
        const took = secondsBetween(t0, performance.now());
        // The bucket holds one second's bytes: the rest comes at `rate` per second.
        const least = (body.length - rate) / rate;
        assert.ok(took >= least && took < least * 2.5, `${body.length} bytes in ${took} s`);
        await quitAfterMail(rig, "127.0.0.2", { peer, pid, child }, concat(...ENVELOPE, body));
      } finally {
        await rig.stop();
      }
    },
  );

  Deno.test(
    `${mode}: tcprules set the caps per client; QUIT and a half-close end a relay with why=eof`,
    E2E,
    async (t) => {
      const rig = await Rig.start(mode, QUICK, [
        { from: "127.0.0.3", env: { SMTPDELAY_MAX_IDLE: "5" } },
        { from: "127.0.0.4", env: { SMTPDELAY_MAX_BYTES_PER_SECOND: "1000000" } },
      ]);
      try {
        await t.step("a client without a cap variable: exec'ed, not relayed", async () => {
          const { peer, pid } = await open(rig, "127.0.0.2");
          await passed(rig, pid, "127.0.0.2", "exec");
          // Under tcpserver the recorder is the filter's process (exec); under serve, its child.
          const handed = (await rig.record(pid))!;
          assert.equal(handed.info.exe, RECORDER);
          assert.equal(handed.info.pid, String(pid));
          assert.equal(handed.info.ppid, String(rig.server.pid), "tcpserver's or serve's child");
          assert.equal(await socketKind(pid, 0), "tcp", "fd 0 is the client's socket");
          await command(peer, text("QUIT\r\n"), "221");
          await peer.untilEnd();
          assert.equal(await rig.endOf(pid), 0);
          assert.ok(!rig.lines.some((l) => l.includes(" END ")), "no END line without a relay");
        });

        await t.step("SMTPDELAY_MAX_IDLE: relayed; QUIT then a half-close gets 221", async () => {
          const { peer, pid, child } = await openRelayed(rig, "127.0.0.3");
          await command(peer, ENVELOPE[0]!, "250");
          await peer.send("QUIT\r\n");
          peer.endOutput(); // FIN right after QUIT, before the reply
          await peer.untilEnd();
          assert.equal(peer.text, BANNER + "250-recorder\r\n250 PIPELINING\r\n221 bye\r\n");
          const sent = concat(ENVELOPE[0]!, text("QUIT\r\n"));
          const seconds = await endLine(rig, "127.0.0.3", {
            pid: child,
            why: "eof",
            in: sent.length,
            out: peer.received.length,
          });
          assert.ok(seconds < 4, `END after ${seconds} s: not the idle cap`);
          assert.equal(await rig.endOf(pid), 0);
          assert.deepEqual((await rig.record(child))!.input, sent);
        });

        await t.step("SMTPDELAY_MAX_BYTES_PER_SECOND: relayed; QUIT ends it", async () => {
          const { peer, pid, child } = await openRelayed(rig, "127.0.0.4");
          const { sent: mailed } = await mail(peer, messageBody(30_000, 5));
          await quitAfterMail(rig, "127.0.0.4", { peer, pid, child }, mailed);
        });
      } finally {
        await rig.stop();
      }
    },
  );

  Deno.test(
    `${mode}: a client that resets ends the relay with why=reset; the child sees EOF`,
    E2E,
    async () => {
      const rig = await Rig.start(mode, [...QUICK, "--max-idle", "5"]);
      try {
        const { peer, pid, child } = await openRelayed(rig, "127.0.0.2");
        await command(peer, ENVELOPE[0]!, "250");
        await command(peer, ENVELOPE[1]!, "250");
        const received = peer.received.length;
        peer.reset();
        const seconds = await endLine(rig, "127.0.0.2", {
          pid: child,
          why: "reset",
          in: ENVELOPE[0]!.length + ENVELOPE[1]!.length,
          out: received,
        });
        assert.ok(seconds < 4, `END after ${seconds} s: not the idle cap`);
        // The recorder exits 0 at the end of its input (and the filter with it).
        assert.equal(await rig.endOf(pid), 0);
        assert.equal(await socketKind(child, 0), undefined, "the child is gone");
        assert.deepEqual((await rig.record(child))!.input, concat(ENVELOPE[0]!, ENVELOPE[1]!));
      } finally {
        await rig.stop();
      }
    },
  );

  Deno.test(
    `${mode}: a relayed session ends with the next program's exit status`,
    E2E,
    async () => {
      // A next program that greets, reads one line and exits 7.
      const script =
        `printf '220 sh\\r\\n'; read line; printf '%s' "$line" >"$RECORD_DIR/line"; exit 7`;
      const rig = await Rig.start(mode, [...QUICK, "--max-idle", "5"], [], [
        "/bin/sh",
        "-c",
        script,
      ]);
      try {
        const peer = await rig.connect("127.0.0.2");
        const port = peer.localPort;
        await peer.until(/^220 sh\r\n/);
        const pid = await rig.pidOf(port);
        await passed(rig, pid, "127.0.0.2", "relay");
        await peer.send("QUIT\r\n");
        assert.equal(await peer.untilEnd(), "220 sh\r\n");
        assert.equal(await rig.endOf(pid), 7, "tcpserver: end PID status 1792");
        assert.ok(rig.lines.includes(`tcpserver: end ${pid} status 1792`));
        // The END line names the child: under tcpserver, not the filter's pid.
        const end = await rig.waitLog(/^smtp-delay: info: END /);
        const child = Number(/ pid=(\d+) /.exec(end)![1]);
        assert.ok(mode === "serve" ? child === pid : child !== pid, end);
        await endLine(rig, "127.0.0.2", {
          pid: child,
          why: "eof",
          in: 6,
          out: 8,
        });
        assert.equal(await Deno.readTextFile(`${rig.server.records}/line`), "QUIT\r");
      } finally {
        await rig.stop();
      }
    },
  );
}
