/**
 * The metrics, end to end, in both modes, scraped over HTTP as Prometheus
 * scrapes them: `serve --metrics` (clients that pass, talk early, hang up,
 * are refused BUSY; the gauges while clients wait and a session runs; a
 * hostile scraper while clients are screened, whose delays must hold), and
 * `smtp-delay metrics` following the multilog directory of the filter under
 * a real tcpserver, across rotations and its own restart, with the same
 * counts for the same clients.
 */
import assert from "node:assert/strict";
import {
  Client,
  E2E,
  FILTER,
  freePort,
  greeted,
  Pipe,
  poll,
  RECORDER,
  type Rule,
  ruleLine,
  serverEnv,
  ServeServer,
  watching,
  writeRules,
} from "./harness.ts";

/** Each client's address says what it does; tcprules give it its name, hence its tier. */
const RULES: Rule[] = [
  { from: "127.0.0.2", env: { TCPREMOTEHOST: "mail.example.net" } }, // ptr: waits, passes
  // 127.0.0.3: no name, noptr: talks at once
  { from: "127.0.0.4", env: { TCPREMOTEHOST: "dsl-192-0-2-3.pool.example.net" } }, // hangs up
  { from: "127.0.0.5", env: { TCPREMOTEHOST: "dsl-192-0-2-5.pool.example.net" } }, // BUSY
];

/** The screening: no lookup (-t 0: tiers from the rules' names), short ptr delay, long others. */
const SCREENING = ["-S", "-t", "0", "-d", "0.35", "-D", "8", "-P", "8"];

const decoder = new TextDecoder();

/** The samples of a scrape, by name and labels as written (`x{a="b"}`). */
type Samples = Map<string, number>;

/** GET /metrics on 127.0.0.1:`port`; the status line, the headers and the samples. */
async function scrape(port: number): Promise<{ head: string; body: string; samples: Samples }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let text = "";
  try {
    await conn.write(new TextEncoder().encode(
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Prometheus/2.42.0\r\n" +
        "Accept: text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n\r\n",
    ));
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n));
    }
  } finally {
    conn.close();
  }
  const at = text.indexOf("\r\n\r\n");
  const body = text.slice(at + 4);
  const samples: Samples = new Map();
  for (const line of body.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return { head: text.slice(0, at), body, samples };
}

/** The connection counts that are not zero. */
function counts(samples: Samples): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of samples) {
    const m = /^smtp_delay_connections_total\{event="(\w+)",tier="([\w-]+)"\}$/.exec(key);
    if (m && value !== 0) out[`${m[1]} ${m[2]}`] = value;
  }
  return out;
}

/** Scrapes until the counts are `want` (lines are counted as they are written: a moment after). */
async function countsBecome(port: number, want: Record<string, number>): Promise<Samples> {
  let last: Record<string, number> = {};
  return await poll(
    () => `counts ${JSON.stringify(want)}, got ${JSON.stringify(last)}`,
    async () => {
      const { samples } = await scrape(port);
      last = counts(samples);
      return JSON.stringify(last) === JSON.stringify(sorted(want)) ? samples : undefined;
    },
    50,
  );
}

/** `want` with the keys in the exposition's order: event PASS EARLY CLOSED REFUSED BUSY, tier. */
function sorted(want: Record<string, number>): Record<string, number> {
  const events = ["PASS", "EARLY", "CLOSED", "REFUSED", "BUSY"];
  const tiers = ["ptr", "dynamic", "noptr", "-"];
  const rank = (k: string) => {
    const [e, t] = k.split(" ");
    return events.indexOf(e!) * 10 + tiers.indexOf(t!);
  };
  return Object.fromEntries(Object.entries(want).sort(([a], [b]) => rank(a) - rank(b)));
}

/** A server of either mode, as the scenario uses it. */
interface Target {
  readonly port: number;
  inScreening(clientPort: number): Promise<void>;
}

/**
 * The same clients for both modes: two that wait and pass (ptr), one that
 * talks at once (noptr, 451), one that hangs up in the screening (dynamic).
 */
async function clients(server: Target): Promise<void> {
  for (let i = 0; i < 2; i++) {
    const c = await Client.connect(server.port, "127.0.0.2");
    await c.until(/^220 recorder ESMTP\r\n/);
    await c.shut();
  }
  const early = await Client.connect(server.port, "127.0.0.3");
  await early.send("EHLO early.example.org\r\n");
  assert.match(await early.untilEnd(), /^451 /);
  await early.shut();
  const quitter = await Client.connect(server.port, "127.0.0.4");
  await server.inScreening(quitter.localPort);
  await quitter.shut();
}

/** What `clients` leaves in the counts. */
const SCENARIO: Record<string, number> = { "PASS ptr": 2, "EARLY noptr": 1, "CLOSED dynamic": 1 };

Deno.test(
  "serve --metrics counts each outcome and BUSY, and shows its waiting and children",
  E2E,
  async () => {
    const metricsPort = freePort();
    const server = await ServeServer.start({
      args: ["-H", "--per-ip", "2", ...SCREENING, "--metrics", `127.0.0.1:${metricsPort}`],
      rules: RULES,
    });
    try {
      const first = await scrape(metricsPort);
      assert.match(first.head, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(first.head, /\r\nContent-Type: text\/plain; version=0\.0\.4; charset=utf-8\r\n/);
      assert.deepEqual(counts(first.samples), {}, "every count starts at 0");
      assert.equal(first.samples.get("smtp_delay_waiting_limit"), 1000);
      assert.equal(first.samples.get("smtp_delay_children_limit"), 40);

      await clients(server);
      let samples = await countsBecome(metricsPort, SCENARIO);
      assert.equal(samples.get('smtp_delay_wait_seconds_count{tier="ptr"}'), 2);
      assert.equal(samples.get('smtp_delay_wait_seconds_bucket{tier="ptr",le="0.3"}'), 0);
      assert.equal(samples.get('smtp_delay_wait_seconds_bucket{tier="ptr",le="+Inf"}'), 2);
      assert.ok(samples.get('smtp_delay_wait_seconds_sum{tier="ptr"}')! >= 0.7);
      assert.equal(samples.get('smtp_delay_wait_seconds_count{tier="noptr"}'), 1);
      assert.equal(samples.get("smtp_delay_store_failures_total"), 0);

      // Two clients of one address wait, a third is refused (--per-ip 2); a session runs.
      const held = [
        await Client.connect(server.port, "127.0.0.5"),
        await Client.connect(server.port, "127.0.0.5"),
      ];
      for (const c of held) await server.inScreening(c.localPort);
      const refused = await Client.connect(server.port, "127.0.0.5");
      assert.match(await refused.untilEnd(), /^421 Too many connections waiting/);
      await refused.shut();
      const { client: session } = await greeted(server, "127.0.0.2");
      samples = await countsBecome(metricsPort, { ...SCENARIO, "PASS ptr": 3, "BUSY -": 1 });
      assert.equal(samples.get("smtp_delay_waiting"), 2);
      assert.equal(samples.get("smtp_delay_children"), 1);
      for (const c of held) await c.shut();
      await session.shut();
      samples = await countsBecome(metricsPort, {
        ...SCENARIO,
        "PASS ptr": 3,
        "CLOSED dynamic": 3,
        "BUSY -": 1,
      });
      assert.equal(samples.get("smtp_delay_waiting"), 0);
      // Every count the endpoint shows is a line of the log.
      const outcome = (word: string) =>
        server.lines.filter((l) => l.startsWith(`smtp-delay: info: ${word} `)).length;
      assert.equal(outcome("PASS"), 3);
      assert.equal(outcome("CLOSED"), 3);
      assert.equal(outcome("BUSY"), 1);
    } finally {
      await server.stop();
    }
  },
);

Deno.test(
  "serve --metrics refuses what is not HOST:PORT, and a port it cannot bind",
  E2E,
  async (t) => {
    for (const bad of ["9465", ":9465", "localhost:9465", "::1:9465", "127.0.0.1:0"]) {
      await t.step(bad, async () => {
        const out = await new Deno.Command(FILTER[0]!, {
          args: [...FILTER.slice(1), "serve", "--metrics", bad, "127.0.0.1", "0", "/bin/true"],
          clearEnv: true,
          env: serverEnv("/nonexistent"),
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(out.code, 100);
        assert.match(
          decoder.decode(out.stderr),
          /^smtp-delay: fatal: --metrics wants an IP address and a port/,
        );
      });
    }
    await t.step("a port in use: 111", async () => {
      const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      try {
        const port = (taken.addr as Deno.NetAddr).port;
        const out = await new Deno.Command(FILTER[0]!, {
          args: [
            ...FILTER.slice(1),
            "serve",
            "--metrics",
            `127.0.0.1:${port}`,
            "127.0.0.1",
            "0",
            "/bin/true",
          ],
          clearEnv: true,
          env: serverEnv("/nonexistent"),
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(out.code, 111);
        assert.equal(
          decoder.decode(out.stderr),
          `smtp-delay: fatal: unable to listen on 127.0.0.1:${port} (--metrics): ` +
            "Address already in use\n",
        );
      } finally {
        taken.close();
      }
    });
  },
);

/** CPU seconds (user + system) process `pid` has used so far. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100/s)
}

/**
 * Scrapers that misbehave, all at once, until `stop` resolves: many that
 * connect and say nothing, some that send a request a byte at a time and
 * never finish it, some that send a whole request and never read, and one
 * that connects and hangs up in a loop.
 */
function hostileScrapers(port: number, stop: Promise<void>): Promise<void> {
  let stopped = false;
  stop.then(() => stopped = true);
  const conns = new Set<Deno.Conn>();
  const open = async () => {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.add(c);
    return c;
  };
  const quietly = async (f: () => Promise<void>) => {
    try {
      await f();
    } catch {
      // closed by the endpoint's deadline, or by us
    }
  };
  const silent = Array.from({ length: 40 }, () => quietly(async () => void await open()));
  const trickle = Array.from({ length: 4 }, () =>
    quietly(async () => {
      for (;;) {
        const c = await open();
        c.setNoDelay(true);
        try {
          await c.write(new TextEncoder().encode("GET /metrics HTTP/1.1\r\n"));
          while (!stopped) {
            await c.write(new TextEncoder().encode("X"));
            await new Promise((r) => setTimeout(r, 1));
          }
          return;
        } catch {
          if (stopped) return; // else closed at the deadline: again
        }
      }
    }));
  const deaf = Array.from({ length: 4 }, () =>
    quietly(async () => {
      const c = await open();
      await c.write(new TextEncoder().encode("GET /metrics HTTP/1.1\r\n\r\n"));
    }));
  const churn = quietly(async () => {
    while (!stopped) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
    }
  });
  return (async () => {
    await Promise.all([...silent, ...deaf]);
    await stop;
    for (const c of conns) {
      try {
        c.close();
      } catch {
        // closed
      }
    }
    await Promise.all([...trickle, churn]);
  })();
}

Deno.test("a hostile scraper cannot hold up the screening: the delays hold", E2E, async () => {
  const metricsPort = freePort();
  const server = await ServeServer.start({
    args: [
      "-H",
      "--per-ip",
      "0",
      "-S",
      "-t",
      "0",
      "-d",
      "1",
      "--metrics",
      `127.0.0.1:${metricsPort}`,
    ],
    rules: RULES,
  });
  let release!: () => void;
  const stop = new Promise<void>((r) => release = r);
  let hostile: Promise<void> | undefined;
  const clients: Client[] = [];
  try {
    hostile = hostileScrapers(metricsPort, stop);
    await new Promise((r) => setTimeout(r, 300)); // the endpoint's slots are taken
    const cpuBefore = await cpuSeconds(server.pid);
    const t0 = performance.now();
    // 20 clients, 1 s delay, all at once while the scrapers go on.
    for (let i = 0; i < 20; i++) clients.push(await Client.connect(server.port, "127.0.0.2"));
    await Promise.all(clients.map((c) => c.until(/^220 recorder ESMTP\r\n/)));
    const seconds = clients.map((c) => (c.firstByteAt! - c.connectedAt) / 1000);
    const wallS = (performance.now() - t0) / 1000;
    const cpuS = (await cpuSeconds(server.pid)) - cpuBefore;
    const worst = Math.max(...seconds);
    console.log(
      `banner after ${Math.min(...seconds).toFixed(3)} to ${worst.toFixed(3)} s; ` +
        `serve's CPU ${(cpuS * 1000).toFixed(0)} ms in ${wallS.toFixed(2)} s`,
    );
    for (const s of seconds) assert.ok(s >= 1, `banner after ${s} s, before the delay`);
    // A stalled loop would hold them for seconds (the endpoint's deadline is 5 s); 2.5 s leaves
    // a loaded machine room to start the recorders.
    assert.ok(worst < 2.5, `banner after ${worst} s: the scrapers held the screening up`);
    // The scrapers cost serve little: under a fifth of a core meanwhile.
    assert.ok(cpuS < wallS / 5, `serve used ${cpuS} s of CPU in ${wallS} s`);
    for (const c of clients) await c.shut();
    release();
    await hostile;
    hostile = undefined;
    // Once they are gone, the endpoint drains what they left in its listen queue (closed
    // connections, at most acceptsPerSecond) and answers again.
    const t1 = performance.now();
    await countsBecome(metricsPort, { "PASS ptr": 20 });
    console.log(`answered again ${((performance.now() - t1) / 1000).toFixed(2)} s after`);
  } finally {
    release();
    await hostile;
    await server.stop();
  }
});

/**
 * The per-connection filter under a real tcpserver, its stderr (and
 * tcpserver's) into a real multilog writing `DIR/log`, as the README's run
 * files have it.
 */
class MultiloggedFilter implements Target {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly tcpserver: Deno.ChildProcess,
    private readonly multilog: Deno.ChildProcess,
    private readonly piped: Promise<void>,
  ) {}

  get logDir(): string {
    return `${this.dir}/log`;
  }

  static async start(): Promise<MultiloggedFilter> {
    const dir = await Deno.makeTempDir({ prefix: "smtp-delay-metrics-" });
    await Deno.mkdir(`${dir}/records`);
    await Deno.mkdir(`${dir}/log`);
    await writeRules(`${dir}/rules.cdb`, [...RULES.map(ruleLine), ":allow"]);
    const port = freePort();
    const multilog = new Deno.Command("multilog", {
      args: ["t", "s4096", "n20", `${dir}/log`],
      stdin: "piped",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const tcpserver = new Deno.Command("tcpserver", {
      args: [
        ...["-v", "-R", "-H", "-x", `${dir}/rules.cdb`, "-c", "200", "127.0.0.1", String(port)],
        ...FILTER,
        ...SCREENING,
        RECORDER,
      ],
      clearEnv: true,
      env: serverEnv(dir),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const piped = tcpserver.stderr.pipeTo(multilog.stdin);
    const server = new MultiloggedFilter(dir, port, tcpserver, multilog, piped);
    await server.logged(/^@[0-9a-f]{24} tcpserver: status: 0\/200$/m).catch(async (e) => {
      await server.stop();
      throw e;
    });
    return server;
  }

  /** Every line of the log directory: the rotated files in order, then current. */
  async text(): Promise<string> {
    const names: string[] = [];
    for await (const e of Deno.readDir(this.logDir)) if (e.name.startsWith("@")) names.push(e.name);
    names.sort().push("current");
    let text = "";
    for (const name of names) {
      // current is missing for a moment: before multilog starts, and while it rotates.
      text += await Deno.readTextFile(`${this.logDir}/${name}`).catch(() => "");
    }
    return text;
  }

  /** Waits until the log has a line matching `re`; returns that match. */
  async logged(re: RegExp): Promise<RegExpExecArray> {
    return await poll(
      `${re} in ${this.logDir}`,
      async () => re.exec(await this.text()) ?? undefined,
    );
  }

  /** Waits until the log holds `n` outcome lines. */
  async outcomes(n: number): Promise<void> {
    await poll(`${n} outcome lines in ${this.logDir}`, async () => {
      const lines = (await this.text()).match(/ smtp-delay: info: (PASS|EARLY|CLOSED|REFUSED) /g);
      return (lines?.length ?? 0) >= n || undefined;
    }, 20);
  }

  /** The filter for that client polls its fd 0. */
  async inScreening(clientPort: number): Promise<void> {
    const m = await this.logged(new RegExp(`tcpserver: ok (\\d+) .*::${clientPort}$`, "m"));
    await watching(Number(m[1]));
  }

  /** multilog rotates current (SIGALRM); returns once the rotated file is there. */
  async rotate(): Promise<void> {
    const count = async () => {
      let n = 0;
      for await (const e of Deno.readDir(this.logDir)) if (e.name.startsWith("@")) n++;
      return n;
    };
    const before = await count();
    this.multilog.kill("SIGALRM");
    await poll("multilog to rotate", async () => await count() > before || undefined);
  }

  async stop(): Promise<void> {
    try {
      this.tcpserver.kill("SIGTERM");
    } catch {
      // gone
    }
    await this.tcpserver.status;
    await this.piped.catch(() => {});
    await this.multilog.status;
    await Deno.remove(this.dir, { recursive: true });
  }
}

/** `smtp-delay metrics [ARGS] 127.0.0.1:PORT DIR`, once it answers. */
async function follower(dir: string, args: string[] = []) {
  const port = freePort();
  const child = new Deno.Command(FILTER[0]!, {
    args: [...FILTER.slice(1), "metrics", ...args, `127.0.0.1:${port}`, dir],
    clearEnv: true,
    env: serverEnv(dir),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Pipe(child.stderr);
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // gone
    }
    const status = await child.status;
    await stderr.close();
    return status;
  };
  try {
    await poll(() => `smtp-delay metrics to listen: ${stderr.lines.join("\n")}`, async () => {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return true;
      } catch {
        return undefined;
      }
    }, 20);
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, stop, stderr };
}

Deno.test(
  "smtp-delay metrics follows the filter's multilog directory, rotations and all",
  E2E,
  async () => {
    const server = await MultiloggedFilter.start();
    const followers: Array<{ stop(): Promise<Deno.CommandStatus> }> = [];
    try {
      // Before the follower starts: one round of clients, then a rotation.
      await clients(server);
      await server.outcomes(4);
      await server.rotate();
      const first = await follower(server.logDir);
      followers.push(first);
      await countsBecome(first.port, SCENARIO);
      // While it follows: another round, a rotation, one more client in the new current.
      await clients(server);
      await server.outcomes(8);
      await server.rotate();
      const last = await Client.connect(server.port, "127.0.0.2");
      await last.until(/^220 recorder ESMTP\r\n/);
      await last.shut();
      const all = { "PASS ptr": 5, "EARLY noptr": 2, "CLOSED dynamic": 2 };
      const samples = await countsBecome(first.port, all);
      assert.equal(samples.get('smtp_delay_wait_seconds_count{tier="ptr"}'), 5);
      assert.equal(samples.get("smtp_delay_waiting"), undefined, "no gauges: no server to ask");
      // The same counts as the log's lines say.
      const text = await server.text();
      assert.equal(text.match(/ smtp-delay: info: PASS .* tier=ptr /g)?.length, 5);
      // Restarted, it reads the directory again: the same counts.
      assert.equal((await first.stop()).code, 0);
      followers.pop();
      const again = await follower(server.logDir);
      followers.push(again);
      await countsBecome(again.port, all);
      // --since: only what came after.
      const since = await follower(server.logDir, ["--since", new Date().toISOString()]);
      followers.push(since);
      await countsBecome(since.port, {});
      const late = await Client.connect(server.port, "127.0.0.2");
      await late.until(/^220 recorder ESMTP\r\n/);
      await late.shut();
      await countsBecome(since.port, { "PASS ptr": 1 });
      await countsBecome(again.port, { ...all, "PASS ptr": 6 });
    } finally {
      for (const f of followers) await f.stop();
      await server.stop();
    }
  },
);

Deno.test(
  "smtp-delay metrics: usage errors exit 100, a directory that is not there 111",
  E2E,
  async (t) => {
    const runMetrics = async (args: string[]) => {
      const out = await new Deno.Command(FILTER[0]!, {
        args: [...FILTER.slice(1), "metrics", ...args],
        clearEnv: true,
        env: serverEnv("/nonexistent"),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      return {
        code: out.code,
        stdout: decoder.decode(out.stdout),
        stderr: decoder.decode(out.stderr),
      };
    };
    const rows: [string, string[], number, RegExp][] = [
      ["no address", [], 100, /^smtp-delay: fatal: no HOST:PORT \(usage: smtp-delay metrics /],
      ["no directory", ["127.0.0.1:9465"], 100, /^smtp-delay: fatal: no DIR /],
      [
        "a bad address",
        ["9465", "/tmp"],
        100,
        /^smtp-delay: fatal: HOST:PORT wants an IP address and a port/,
      ],
      ["a bad --since", ["--since", "yesterday", "127.0.0.1:9465", "/tmp"], 100, /--since wants/],
      [
        "no such directory",
        [`127.0.0.1:${freePort()}`, "/nonexistent/log"],
        111,
        /^smtp-delay: fatal: unable to read \/nonexistent\/log: No such file or directory$/m,
      ],
    ];
    for (const [name, args, code, re] of rows) {
      await t.step(name, async () => {
        const got = await runMetrics(args);
        assert.equal(got.code, code, got.stderr);
        assert.match(got.stderr, re);
      });
    }
    await t.step("--help: the usage on stdout, exit 0", async () => {
      const got = await runMetrics(["--help"]);
      assert.equal(got.code, 0);
      assert.equal(got.stdout, "usage: smtp-delay metrics [--since TIME] HOST:PORT DIR\n");
    });
  },
);
