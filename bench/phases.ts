/**
 * bench/phases.ts: the wall time of each phase of the filter's start-up, timed
 * inside one process with performance.now() (make bench-startup runs it many
 * times and prints the medians). It does what main.ts does on a `ptr` client
 * at 0 s delay, up to the exec, from the same modules, and prints one JSON
 * line of milliseconds per phase on stdout.
 */
const t0 = performance.now();
const phases: Record<string, number> = {};
let last = t0;
const phase = (name: string) => {
  const t = performance.now();
  phases[name] = t - last;
  last = t;
};

const { parseConfig } = await import("../src/config.ts");
const { readClient } = await import("../src/client.ts");
const { BUILTIN_PATTERNS, classify, parsePatterns } = await import("../src/classify.ts");
const { decide } = await import("../src/decide.ts");
const { libc } = await import("../src/libc.ts");
const { formatOutcome } = await import("../src/log.ts");
const { watch } = await import("../src/watch.ts");
phase("load the modules");
const env = Deno.env.toObject();
const request = parseConfig(["-d", "0", "--store", "none", "/bin/true"], env);
if (request.kind !== "run") throw new Error("unexpected -v");
phase("read options and environment");
const client = readClient(env);
phase("read the client");
const c = libc();
phase("make the libc interface (no symbol bound yet)");
const watched = watch(c, 0, () => performance.now()).waitSync(0);
phase("poll fd 0 (binding the screening's 14 symbols)");
const tier = classify(client.host, client.ip, parsePatterns(BUILTIN_PATTERNS));
phase("classify the name");
decide(request.config, {
  tier,
  lookup: "host",
  watched,
  roll: 50,
  delayOver: true,
  memory: undefined,
  exempt: false,
  listed: undefined,
});
const line = formatOutcome({
  event: "pass",
  pid: Deno.pid,
  ip: client.ipText,
  tier,
  ptr: client.host,
  lookup: "host",
  delayMs: 0,
  waitedMs: 0,
  action: "exec",
  memory: "off",
});
phase("decide and format the log line");
Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify({ ...phases, line }) + "\n"));
