/**
 * `make install-launcher` (what `make install` installs when `make dist`
 * cannot compile) into temporary directories: the launcher names the final
 * paths, answers -v, runs as root and as nobody, and its module cache is
 * complete: no run of any path (the filter, state, serve) writes a byte of
 * it, not even as root, and a run as nobody on the read-only cache is much
 * cheaper than one without a cache.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { PERMISSIONS, ROOT } from "../fixtures/source.ts";
import { E2E, Pipe, run } from "./harness.ts";

/**
 * Every entry under `dir`: type, size, inode and mtime, by path. (Not ctime:
 * SQLite, run as root, fchowns the -wal it opens to the database's owner,
 * which changes nothing but the ctime.)
 */
async function tree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (path: string) => {
    const s = await Deno.lstat(path);
    const kind = s.isDirectory ? "d" : s.isSymlink ? "l" : "f";
    out.set(path, `${kind} ${s.size} ${s.ino} ${s.mtime?.getTime()}`);
    if (s.isDirectory) {
      for await (const e of Deno.readDir(path)) {
        await walk(`${path}/${e.name}`);
      }
    }
  };
  await walk(dir);
  return out;
}

/** The entries that differ between two trees, for a readable failure. */
function changes(before: Map<string, string>, after: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [path, was] of before) {
    const now = after.get(path);
    if (now !== was) out.push(`${path}: ${was} -> ${now ?? "gone"}`);
  }
  for (const path of after.keys()) if (!before.has(path)) out.push(`${path}: new`);
  return out;
}

/** A temporary directory that `nobody` may enter (makeTempDir's are 0700). */
async function openTempDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "smtp-delay-install-" });
  await Deno.chmod(dir, 0o755);
  return dir;
}

/** `make -s TARGET VARS...` in the repository; fails the test unless it exits 0. */
async function make(...args: string[]): Promise<string> {
  const out = await run(["make", "-s", "-C", ROOT, ...args]);
  assert.equal(out.code, 0, `make ${args.join(" ")}:\n${out.stdout}${out.stderr}`);
  return out.stderr;
}

/** The launcher's environment for a client of the filter (fd 0 is /dev/null: it hangs up). */
const CLIENT = { TCPREMOTEIP: "192.0.2.2", TCPREMOTEHOST: "mail.example.net" };

/** Runs `sbin/smtp-delay` through every path that loads modules of its own, as root. */
async function everyPath(launcher: string, dir: string): Promise<void> {
  const state = `sqlite:${dir}/state.db`;
  const runs: Array<[string[], Record<string, string>, number]> = [
    [["-v"], {}, 0],
    [["-d", "0", "--store", "none", "/bin/true"], CLIENT, 0],
    [["-d", "0", "--store", state, "/bin/true"], CLIENT, 0],
    [["-d", "0", "--store", "redis://127.0.0.1:1", "/bin/true"], CLIENT, 0],
    [["-d", "0", "--allow", "/nonexistent", "/bin/true"], CLIENT, 100],
    [["state", "--store", state, "list"], {}, 0],
    [["state", "--store", "none", "list"], {}, 100],
    [["serve"], {}, 100],
  ];
  for (const [args, env, code] of runs) {
    const out = await run([launcher, ...args], env);
    assert.equal(out.code, code, `${args.join(" ")}: ${out.stderr}`);
  }
  // serve for real: it runs itself again with V8 flags, listens, stops at SIGTERM.
  const serve = new Deno.Command(launcher, {
    args: ["serve", "-1", "127.0.0.1", "0", "/bin/true"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const stdout = new Pipe(serve.stdout);
  try {
    await stdout.until(() => stdout.lines.length > 0, "serve to print its port");
    assert.match(stdout.lines[0]!, /^[0-9]+$/);
  } finally {
    try {
      serve.kill("SIGTERM");
    } catch {
      // it exited: the assertion says why
    }
    await serve.status;
    await stdout.close();
  }
}

/** CPU seconds (user + system) that `runs` starts of `cmd` as nobody took, from bash's `times`. */
async function cpuOfStarts(cmd: string[], runs: number): Promise<number> {
  const quoted = cmd.map((w) => `'${w}'`).join(" ");
  const script =
    `for i in $(seq ${runs}); do setuidgid nobody ${quoted} </dev/null 2>/dev/null; done; times`;
  const out = await run(["bash", "-c", script], CLIENT);
  const children = out.stdout.trim().split("\n").pop()!; // "0m0.410s 0m0.120s"
  return children.split(" ").reduce((sum, t) => {
    const m = /^(\d+)m([\d.]+)s$/.exec(t);
    return sum + (m ? Number(m[1]) * 60 + Number(m[2]) : NaN);
  }, 0);
}

Deno.test(
  "make install-launcher: a launcher with the permission flags, a complete cache, read-only for nobody",
  E2E,
  async (t) => {
    const dir = await openTempDir();
    try {
      const prefix = `${dir}/usr`;
      const lib = `${prefix}/lib/smtp-delay`;
      const launcher = `${prefix}/sbin/smtp-delay`;
      const said = await make("install-launcher", `PREFIX=${prefix}`);
      assert.match(said, new RegExp(`installed the launcher ${launcher}: Deno 2\\.9\\.6 runs`));

      await t.step(
        "the launcher runs the installed Deno with exactly the flags of permissions",
        async () => {
          const text = await Deno.readTextFile(launcher);
          const exec = text.split("\n").find((l) => l.startsWith("exec "))!;
          assert.equal(
            exec,
            `exec ${lib}/deno run --no-code-cache --config ${lib}/deno.json ${
              PERMISSIONS.join(" ")
            } ` +
              `${lib}/main.ts "$@"`,
          );
          assert.ok(text.includes(`DENO_DIR=${lib}/cache\n`), text);
          const v = await run([launcher, "-v"]);
          assert.equal(v.code, 0);
          assert.match(v.stderr, /^smtp-delay \S+\n/);
        },
      );

      await t.step("no run writes the cache, as root: the filter, state, serve", async () => {
        const before = await tree(`${lib}/cache`);
        assert.ok(
          [...before.keys()].some((p) => p.endsWith("/src/serve/server.ts.js")),
          "serve emitted",
        );
        assert.ok(
          [...before.keys()].some((p) => p.endsWith("/src/store/redis.ts.js")),
          "redis emitted",
        );
        await everyPath(launcher, dir);
        await everyPath(launcher, dir);
        assert.deepEqual(changes(before, await tree(`${lib}/cache`)), []);
      });

      await t.step(
        "nobody runs it on the read-only cache, much cheaper than without a cache",
        async () => {
          const before = await tree(`${lib}/cache`);
          const v = await run(["setuidgid", "nobody", launcher, "-v"]);
          assert.equal(v.code, 0, v.stderr);
          const pass = await run(
            ["setuidgid", "nobody", launcher, "-d", "0", "--store", "none", "/bin/true"],
            CLIENT,
          );
          assert.equal(pass.code, 0, pass.stderr);
          const args = ["-d", "0", "--store", "none", "/bin/true"];
          const uncached = [
            "env",
            `DENO_DIR=${dir}/none`, // does not exist, and nobody cannot create it
            `${lib}/deno`,
            "run",
            // Without a cache, Deno would first look deno.lock's npm packages
            // up on the registry, a wait on the network, not the CPU measured.
            "--cached-only",
            "--no-code-cache",
            "--config",
            `${lib}/deno.json`,
            ...PERMISSIONS,
            `${lib}/main.ts`,
            ...args,
          ];
          const prepared = await cpuOfStarts([launcher, ...args], 5);
          const cold = await cpuOfStarts(uncached, 5);
          assert.ok(
            prepared < 0.8 * cold,
            `5 starts: ${prepared} s of CPU, ${cold} s without a cache`,
          );
          assert.deepEqual(changes(before, await tree(`${lib}/cache`)), []);
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "make install-launcher DESTDIR=...: every path names PREFIX, and the cache serves it there",
  E2E,
  async () => {
    const dir = await openTempDir();
    try {
      const prefix = `${dir}/final`;
      const staged = `${dir}/stage${prefix}`;
      await make("install-launcher", `DESTDIR=${dir}/stage`, `PREFIX=${prefix}`);
      await assert.rejects(Deno.stat(prefix), Deno.errors.NotFound);
      const text = await Deno.readTextFile(`${staged}/sbin/smtp-delay`);
      assert.ok(text.includes(`exec ${prefix}/lib/smtp-delay/deno run `), text);
      assert.ok(!text.includes("/stage/"), text);
      const man = `${staged}/share/man/man8/smtp-delay.8`;
      assert.equal(await Deno.readTextFile(man), await Deno.readTextFile(`${ROOT}smtp-delay.8`));
      assert.equal((await Deno.stat(man)).mode! & 0o777, 0o644, "the man page is 0644");
      const cache = `${staged}/lib/smtp-delay/cache`;
      const emitted = [...(await tree(`${cache}/gen/file`)).keys()]
        .map((p) => p.slice(`${cache}/gen/file`.length));
      assert.ok(emitted.includes(`${prefix}/lib/smtp-delay/main.ts.js`), emitted.join("\n"));
      assert.ok(!emitted.some((p) => p.includes("/stage/")), emitted.join("\n"));
      const db = new DatabaseSync(`${cache}/dep_analysis_cache_v2`, { readOnly: true });
      const keys = db.prepare("SELECT specifier FROM moduleinfocache").all()
        .map((r) => String(r.specifier));
      db.close();
      assert.ok(keys.length >= 20, keys.join("\n"));
      for (const key of keys) assert.ok(key.startsWith(`file://${prefix}/lib/smtp-delay/`), key);

      // What a package manager does: the files land under PREFIX.
      const cp = await run(["cp", "-a", staged, prefix]);
      assert.equal(cp.code, 0, cp.stderr);
      const launcher = `${prefix}/sbin/smtp-delay`;
      const before = await tree(`${prefix}/lib/smtp-delay/cache`);
      await everyPath(launcher, dir);
      assert.deepEqual(changes(before, await tree(`${prefix}/lib/smtp-delay/cache`)), []);
      const v = await run(["setuidgid", "nobody", launcher, "-v"]);
      assert.equal(v.code, 0, v.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
