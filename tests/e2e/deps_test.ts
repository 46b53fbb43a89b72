/**
 * scripts/deps.sh -n: the packages README's install line would install,
 * decided by what is on PATH. npm comes along only when none of npm, node
 * and deno is there (Debian's npm conflicts with a Node.js from elsewhere).
 */
import assert from "node:assert/strict";
import { ROOT } from "../fixtures/source.ts";
import { withTempDir } from "../fixtures/temp_dir.ts";
import { E2E, run } from "./harness.ts";

/** What `scripts/deps.sh -n` prints with PATH holding only `commands` (stubs). */
async function dryRun(dir: string, commands: string[]): Promise<string[]> {
  const bin = `${dir}/bin`;
  await Deno.mkdir(bin);
  for (const c of commands) {
    await Deno.writeTextFile(`${bin}/${c}`, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  }
  const out = await run(["/bin/bash", `${ROOT}scripts/deps.sh`, "-n"], { PATH: bin });
  assert.equal(out.code, 0, out.stderr);
  const line = out.stdout.trim();
  assert.match(line, /^apt-get install -y [a-z0-9 .+-]+$/);
  return line.split(" ").slice(3);
}

Deno.test(
  "deps.sh -n lists every package, npm too, when PATH has none of their commands",
  E2E,
  async () => {
    await withTempDir(async (dir) => {
      const packages = await dryRun(dir, []);
      for (
        const p of ["make", "gcc", "ucspi-tcp", "dnsmasq-base", "swaks", "daemontools", "qpsmtpd"]
      ) {
        assert.ok(packages.includes(p), `${p} in ${packages}`);
      }
      assert.ok(packages.includes("npm"), packages.join(" "));
    });
  },
);

Deno.test("deps.sh -n leaves npm out when node, npm or deno is on PATH", E2E, async (t) => {
  for (const present of [["node"], ["npm"], ["node", "npm"], ["deno"]]) {
    await t.step(present.join(" and "), async () => {
      await withTempDir(async (dir) => {
        const packages = await dryRun(dir, present);
        assert.ok(!packages.includes("npm"), packages.join(" "));
        assert.ok(packages.includes("daemontools"), packages.join(" "));
      });
    });
  }
});

Deno.test("deps.sh -n leaves out the package whose command is on PATH", E2E, async () => {
  await withTempDir(async (dir) => {
    const packages = await dryRun(dir, ["svscan", "tcpserver", "node"]);
    assert.ok(!packages.includes("daemontools") && !packages.includes("ucspi-tcp"), `${packages}`);
    assert.ok(packages.includes("qpsmtpd"), packages.join(" "));
  });
});

Deno.test(
  "deps.sh -n on this machine: nothing to install once the tests can run",
  E2E,
  async () => {
    const out = await run(["bash", `${ROOT}scripts/deps.sh`, "-n"]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, "deps.sh: every package is there\n");
  },
);

Deno.test("deps.sh refuses an unknown option with exit 100", E2E, async () => {
  const out = await run(["bash", `${ROOT}scripts/deps.sh`, "-x"]);
  assert.equal(out.code, 100);
  assert.match(out.stderr, /^deps\.sh: fatal: usage: /);
});
