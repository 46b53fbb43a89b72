/**
 * A real tcpserver chain on a free loopback port:
 *
 *     tcpserver -v -R -H -l localhost -c 1000 -b 1024 127.0.0.1 PORT FILTER... RECORDER
 *
 * or a filter that is its own listening server, in tcpserver's place
 * (`smtp-delay serve -v ... 127.0.0.1 PORT RECORDER`: it writes tcpserver's
 * lines), started under a small, fixed environment, followed through its -v
 * log ("status: N/1000" after every fork and every reaped child), and stopped
 * with every process below it, by pid, even when the benchmark fails.
 */
import { descendants } from "./proc.ts";

export interface ServerOptions {
  /**
   * The filter command, run by tcpserver (empty: the next program alone); or,
   * with `ownServer`, the whole server command, "{port}" where the port goes.
   */
  readonly filter: readonly string[];
  /**
   * `filter` listens by itself, in tcpserver's place: it must write
   * tcpserver's -v lines ("tcpserver: status: N/M") on stderr.
   */
  readonly ownServer?: boolean;
  /** The next program (build/recorder). */
  readonly next: string;
  /** Extra environment for the chain (RECORD_DIR, SMTPDELAY*). */
  readonly env: Readonly<Record<string, string>>;
  /** Where tcpserver's log (and the filters' stderr) goes. */
  readonly logPath: string;
}

export interface Server {
  readonly port: number;
  /** tcpserver's pid, or the own server's. */
  readonly pid: number;
  /** Children tcpserver counts right now (from its last status line). */
  readonly children: number;
  /** Resolves when tcpserver has no child left; false after `timeoutMs`. */
  idle(timeoutMs: number): Promise<boolean>;
  /** Stops tcpserver and kills what is left below it. Safe to call twice. */
  stop(): Promise<void>;
}

/** Servers not stopped yet, for the signal handler and the final clean-up. */
const live = new Set<Server>();

/** Stops every server still running (on error, Ctrl-C or exit). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((s) => s.stop()));
}

/** The variables the chain inherits; everything else is left out. */
const PASSED_ENV = ["PATH", "HOME", "DENO_DIR", "DENO_NO_UPDATE_CHECK", "NO_COLOR", "TMPDIR"];

/** A port nobody listens on right now (tcpserver may still lose it: then we retry). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A timer to race with: `promise` resolves "timeout" after `ms`; clear() drops it. */
function timer(ms: number): { promise: Promise<"timeout">; clear(): void } {
  let id: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<"timeout">((resolve) => {
    id = setTimeout(() => resolve("timeout"), ms);
  });
  return { promise, clear: () => clearTimeout(id) };
}

/** Starts the chain; retries on another port if tcpserver cannot bind (at most 5 tries). */
export async function startServer(o: ServerOptions): Promise<Server> {
  for (let attempt = 1;; attempt++) {
    const port = freePort();
    const started = await tryStart(o, port);
    if (started) return started;
    if (attempt === 5) throw new Error(`The server would not start; see "${o.logPath}"`);
  }
}

async function tryStart(o: ServerOptions, port: number): Promise<Server | undefined> {
  const env: Record<string, string> = {};
  for (const name of PASSED_ENV) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  Object.assign(env, o.env);
  const tcpserver = ["tcpserver", "-v", "-R", "-H", "-l", "localhost", "-c", "1000", "-b", "1024"];
  const [program, ...args] = o.ownServer
    ? [...o.filter.map((word) => word.replaceAll("{port}", String(port))), o.next]
    : [...tcpserver, "127.0.0.1", String(port), ...o.filter, o.next];
  const child = new Deno.Command(program!, {
    args,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();

  const log = await Deno.open(o.logPath, { write: true, create: true, append: true });
  let children = -1; // -1: no status line yet
  let waiters: Array<() => void> = [];
  const notify = () => {
    const w = waiters;
    waiters = [];
    w.forEach((f) => f());
  };
  const changed = () => new Promise<void>((resolve) => waiters.push(resolve));
  let gone = false;
  const exited = child.status.then((s) => {
    gone = true;
    notify();
    return s;
  });

  // Reads the log to its end, whatever happens: a full pipe would stall the chain.
  const reading = (async () => {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of child.stderr) {
      await log.write(chunk);
      const lines = (partial + decoder.decode(chunk, { stream: true })).split("\n");
      partial = lines.pop()!;
      for (const line of lines) {
        const m = /^tcpserver: status: ([0-9]+)\//.exec(line);
        if (m) {
          children = Number(m[1]);
          notify();
        }
      }
    }
  })().finally(() => log.close());

  let stopping: Promise<void> | undefined;
  const server: Server = {
    port,
    pid: child.pid,
    get children() {
      return children;
    },
    async idle(timeoutMs) {
      const t = timer(timeoutMs);
      try {
        while (children !== 0 && !gone) {
          if (await Promise.race([changed(), t.promise]) === "timeout") return false;
        }
        return children === 0;
      } finally {
        t.clear();
      }
    },
    stop() {
      stopping ??= (async () => {
        const below = await descendants(child.pid);
        try {
          child.kill("SIGTERM");
        } catch {
          // already gone
        }
        for (const pid of below) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch {
            // already gone
          }
        }
        const t = timer(5_000);
        if (await Promise.race([exited, t.promise]) === "timeout") {
          try {
            child.kill("SIGKILL");
          } catch {
            // gone meanwhile
          }
          await exited;
        }
        t.clear();
        await reading.catch(() => {});
        live.delete(server);
      })();
      return stopping;
    },
  };
  live.add(server);

  // Ready when the first status line is there; gone when tcpserver exits (busy port).
  const t = timer(10_000);
  try {
    while (children < 0 && !gone) {
      if (await Promise.race([changed(), t.promise]) === "timeout") {
        await server.stop();
        throw new Error(`The server gave no status line; see "${o.logPath}"`);
      }
    }
  } finally {
    t.clear();
  }
  if (children < 0) {
    await server.stop();
    return undefined; // it exited: most likely the port was taken meanwhile (or a bad command)
  }
  return server;
}
