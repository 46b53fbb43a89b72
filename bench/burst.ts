/**
 * make bench-burst: serve under a burst of simultaneous connects from
 * distinct loopback addresses (tests/e2e/burst.ts, the e2e test's load
 * generator), with tcpserver's listen backlog (-b 20) and with serve's
 * default, in the same run. Prints a table and writes it to
 * bench/results/burst.md.
 *
 *     COUNT=3000 DEADLINE=25 make bench-burst
 */
import type { BurstResult } from "../tests/e2e/burst.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const DENO = Deno.env.get("DENO") ?? `${ROOT}.tools/node_modules/.bin/deno`;
const PERMISSIONS = (Deno.env.get("PERMISSIONS") ?? "").split(/\s+/).filter((w) => w);
const COUNT = Number(Deno.env.get("COUNT") ?? 3000);
const DEADLINE_S = Number(Deno.env.get("DEADLINE") ?? 25);

/** One burst against serve started with `backlog` (undefined: its default). */
async function once(backlog: string[]): Promise<BurstResult & { seconds: number }> {
  const serve = new Deno.Command(DENO, {
    args: [
      "run",
      ...PERMISSIONS,
      `${ROOT}main.ts`,
      "serve",
      "-1",
      "-H",
      "-l",
      "mx.burst.test",
      "-c",
      "200",
      ...backlog,
      "-S",
      "-t",
      "0",
      "-P",
      "1",
      "127.0.0.1",
      "0",
      `${ROOT}build/recorder`,
    ],
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", SMTPDELAY_STORE: "none" },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const reader = serve.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`serve printed ${JSON.stringify(out)} and closed stdout`);
      out += value;
    }
    reader.releaseLock();
    const start = performance.now();
    const load = await new Deno.Command(DENO, {
      args: [
        "run",
        "--allow-net",
        "--allow-ffi",
        "--no-prompt",
        `${ROOT}tests/e2e/burst.ts`,
        out.trim(),
        String(COUNT),
        String(DEADLINE_S * 1000),
      ],
      stdin: "null",
    }).output();
    if (load.code !== 0) throw new Error(new TextDecoder().decode(load.stderr));
    const result = JSON.parse(new TextDecoder().decode(load.stdout)) as BurstResult;
    return { ...result, seconds: (performance.now() - start) / 1000 };
  } finally {
    serve.kill("SIGKILL");
    await serve.status;
    serve.stdout.cancel().catch(() => {});
  }
}

const rows: string[] = [];
for (const [name, backlog] of [["-b 20 (tcpserver's)", ["-b", "20"]], ["default", []]] as const) {
  const r = await once([...backlog]);
  rows.push(
    `| ${name} | ${r.banner} | ${r.busy} | ${r.other} | ${r.hung} | ${r.failed} | ` +
      `${(r.slowestMs / 1000).toFixed(1)} s |`,
  );
}
const text = [
  `# serve under a burst of ${COUNT} connects from ${COUNT} addresses`,
  "",
  `\`make bench-burst\` (bench/burst.ts), ${new Date().toISOString().slice(0, 10)}: serve -c 200 ` +
  `-S -P 1 (--waiting 1000), every client waits up to ${DEADLINE_S} s for a first line.`,
  "",
  "| backlog | banner | 4xx | other | hung | failed | last first line |",
  "| ------- | ------ | --- | ----- | ---- | ------ | --------------- |",
  ...rows,
  "",
].join("\n");
console.log(text);
await Deno.writeTextFile(`${ROOT}bench/results/burst.md`, text);
