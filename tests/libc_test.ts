/**
 * src/libc.ts for real, through FFI, in a child process whose fd 0 is a pipe
 * this test writes to (tests/fixtures/libc_child.ts). No network, no sleeps:
 * every wait has a deadline.
 */
import assert from "node:assert/strict";
import { libc, POLLHUP, POLLIN } from "../src/libc.ts";

const FIXTURE = new URL("./fixtures/libc_child.ts", import.meta.url).pathname;
/** The permission flags, from the one file the Makefile reads them from too. */
const PERMISSIONS = Deno.readTextFileSync(new URL("../permissions", import.meta.url))
  .trim()
  .split(/\s+/);
/** The longest any single step may take before the test gives up. */
const DEADLINE_MS = 15_000;

/** SIGPIPE (13) is bit 12 of the SigIgn mask in /proc/PID/status. */
function ignoresSigpipe(sigIgnHex: string): boolean {
  return ((BigInt(`0x${sigIgnHex}`) >> 12n) & 1n) === 1n;
}

/** The SigIgn mask of a live process, as hex. */
function sigIgnOf(pid: number): string {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const mask = /^SigIgn:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (!mask) throw new Error(`no SigIgn in /proc/${pid}/status`);
  return mask;
}

function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: no answer in ${DEADLINE_MS} ms`)),
      DEADLINE_MS,
    );
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The fixture running in `deno run` with the project's permission flags. */
class Child {
  readonly process: Deno.ChildProcess;
  readonly stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #stdout: ReadableStreamDefaultReader<Uint8Array>;
  readonly #stderr: Promise<string>;
  #buffer = "";
  #stdinOpen = true;
  #eof = false;

  constructor(args: string[]) {
    this.process = new Deno.Command(Deno.execPath(), {
      args: ["run", ...PERMISSIONS, FIXTURE, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    }).spawn();
    this.stdin = this.process.stdin.getWriter();
    this.#stdout = this.process.stdout.getReader();
    this.#stderr = new Response(this.process.stderr).text();
  }

  async #fill(what: string): Promise<void> {
    const { value, done } = await withDeadline(this.#stdout.read(), what);
    if (done) this.#eof = true;
    else this.#buffer += new TextDecoder().decode(value);
  }

  /** The next line of stdout, without its newline. */
  async line(what: string): Promise<string> {
    while (!this.#buffer.includes("\n")) {
      if (this.#eof) throw new Error(`${what}: stdout ended; stderr: ${await this.#stderr}`);
      await this.#fill(what);
    }
    const end = this.#buffer.indexOf("\n");
    const line = this.#buffer.slice(0, end);
    this.#buffer = this.#buffer.slice(end + 1);
    return line;
  }

  /** The next line of stdout, parsed as JSON. */
  async json(what: string): Promise<Record<string, unknown>> {
    const line = await this.line(what);
    try {
      return JSON.parse(line);
    } catch {
      throw new Error(`${what}: not JSON: ${JSON.stringify(line)}; stderr: ${await this.#stderr}`);
    }
  }

  /** Everything left on stdout, up to its end. */
  async rest(what: string): Promise<string> {
    while (!this.#eof) await this.#fill(what);
    const rest = this.#buffer;
    this.#buffer = "";
    return rest;
  }

  async write(text: string): Promise<void> {
    await this.stdin.write(new TextEncoder().encode(text));
  }

  async closeStdin(): Promise<void> {
    if (!this.#stdinOpen) return;
    this.#stdinOpen = false;
    await this.stdin.close().catch(() => {});
  }

  /** Closes our end of its stdin, waits for its exit (killing it past the deadline), drains its output. */
  async finish(): Promise<{ code: number; stderr: string }> {
    await this.closeStdin();
    let status: Deno.CommandStatus;
    try {
      status = await withDeadline(this.process.status, "child exit");
    } catch (e) {
      this.process.kill("SIGKILL");
      await this.process.status;
      throw e;
    } finally {
      if (!this.#eof) await this.rest("child stdout").catch(() => this.#stdout.cancel());
    }
    return { code: status.code, stderr: await this.#stderr };
  }
}

/** Runs `body` with a fresh child and always reaps it, so that no process outlives the test. */
async function withChild(
  args: string[],
  body: (child: Child) => Promise<void>,
): Promise<{ code: number; stderr: string }> {
  const child = new Child(args);
  try {
    await body(child);
  } catch (e) {
    await child.finish().catch(() => {});
    throw e;
  }
  return await child.finish();
}

Deno.test("libc on an empty pipe: nothing readable, no bytes, no peek", async () => {
  await withChild(["probe"], async (child) => {
    const empty = await child.json("empty step");
    assert.deepEqual(empty, { step: "empty", readable: 0, bytesWaiting: 0, peek: null });
    await child.write("x");
    await child.json("readable step");
    await child.json("read step");
  });
});

Deno.test("libc waitReadable() wakes when bytes arrive, and nothing reads them", async () => {
  const { code, stderr } = await withChild(["probe"], async (child) => {
    await child.json("empty step");
    await child.write("EHLO x\r\n");
    const readable = await child.json("readable step");
    assert.equal(readable.step, "readable");
    assert.equal(readable.revents, POLLIN, `revents: got ${readable.revents}, want POLLIN`);
    assert.equal(readable.bytesWaiting, 8, `bytesWaiting: got ${readable.bytesWaiting}, want 8`);
    assert.equal(readable.readable, POLLIN, "readable sees the same bytes");
    assert.equal(readable.peek, null, "peek() on a pipe (not a socket) gives undefined");
    assert.equal(readable.bytesWaitingAgain, 8, "the probes left the 8 bytes unread");
    const read = await child.json("read step");
    assert.deepEqual(read, { step: "read", text: "EHLO x\r\n", bytesWaiting: 0 });
    await child.closeStdin();
    const hangup = await child.json("hangup step");
    assert.equal(hangup.bytesWaiting, 0);
    assert.ok(
      (hangup.revents as number) & POLLHUP,
      `revents after the writer closed: got ${hangup.revents}, want POLLHUP set`,
    );
  });
  assert.equal(code, 0, `child exit status; stderr: ${stderr}`);
});

Deno.test("libc waitReadable() resolves 0 when its timeout passes on a quiet pipe", async () => {
  await withChild(["timeout", "100"], async (child) => {
    const got = await child.json("timeout");
    assert.equal(got.revents, 0);
    const elapsedMs = got.elapsedMs as number;
    assert.ok(elapsedMs >= 90, `returned after ${elapsedMs} ms, before its 100 ms timeout`);
  });
});

Deno.test("libc exec() replaces the process: the next program has the same pid", async () => {
  const { code, stderr } = await withChild(["exec", "sh", "-c", "echo $$"], async (child) => {
    const before = await child.json("pid before exec");
    const after = await child.rest("output of sh");
    assert.equal(
      after,
      `${before.pid}\n`,
      `sh's pid: got ${JSON.stringify(after)}, want ${before.pid}`,
    );
  });
  assert.equal(code, 0, `exit status of sh; stderr: ${stderr}`);
});

Deno.test("libc exec() gives the next program SIGPIPE at its default", async () => {
  await withChild(["exec", "--wait", "cat", "/proc/self/status"], async (child) => {
    const before = await child.json("before exec");
    const deno = sigIgnOf(before.pid as number);
    assert.ok(
      ignoresSigpipe(deno),
      `Deno itself should ignore SIGPIPE (SigIgn ${deno}), else this test proves nothing`,
    );
    await child.write("go");
    await child.json("after the wait");
    const status = await child.rest("status of cat");
    const pid = /^Pid:\s*(\d+)$/m.exec(status)?.[1];
    const sigIgn = /^SigIgn:\s*([0-9a-f]+)$/m.exec(status)?.[1];
    assert.equal(Number(pid), before.pid, "cat runs in the same process");
    assert.ok(sigIgn, `no SigIgn line in ${JSON.stringify(status)}`);
    assert.equal(ignoresSigpipe(sigIgn), false, `SigIgn of the exec'd program: ${sigIgn}`);
  });
});

Deno.test("libc exec() passes the environment as Deno.env left it", async () => {
  await withChild(["exec", "sh", "-c", 'printf "%s\\n" "$SMTPDELAY_FIXTURE"'], async (child) => {
    await child.json("before exec");
    assert.equal(await child.rest("output of sh"), "set by Deno.env\n");
  });
});

Deno.test("libc exec() hands fd 0 on unread and in blocking mode", async () => {
  const argv = ["exec", "--wait", "cat", "/proc/self/fdinfo/0", "-"];
  await withChild(argv, async (child) => {
    await child.json("before exec");
    const sent = "EHLO x\r\nMAIL FROM:<a@example.com>\r\n"; // 35 bytes
    await child.write(sent);
    await child.closeStdin();
    const seen = await child.json("after the wait");
    assert.equal(seen.bytesWaiting, 35, `bytesWaiting: got ${seen.bytesWaiting}, want 35`);
    const out = await child.rest("output of cat");
    const flags = /^flags:\s*([0-7]+)$/m.exec(out)?.[1];
    assert.ok(flags, `no flags line in ${JSON.stringify(out)}`);
    assert.equal(parseInt(flags, 8) & 0o4000, 0, `fd 0 is O_NONBLOCK (flags ${flags})`);
    assert.ok(
      out.endsWith(`\n${sent}`),
      `cat did not get every byte: ${JSON.stringify(out)}`,
    );
  });
});

Deno.test("libc exec() of a program that cannot run returns the reason", async (t) => {
  const rows: [string, string, string][] = [
    ["a name not in PATH", "smtp-delay-test-no-such-program", "No such file or directory"],
    ["a missing path", "/nonexistent/dir/prog", "No such file or directory"],
    ["a file that is not executable", FIXTURE, "Permission denied"],
  ];
  for (const [name, program, reason] of rows) {
    await t.step(name, async () => {
      const { code, stderr } = await withChild(["exec", program], async (child) => {
        const before = await child.json("before exec");
        const after = await child.json("after the failed exec");
        assert.equal(after.failed, reason);
        const sigIgn = sigIgnOf(before.pid as number);
        assert.ok(ignoresSigpipe(sigIgn), `SIGPIPE not ignored again (SigIgn ${sigIgn})`);
      });
      assert.equal(code, 0, `the process carried on after the failed exec; stderr: ${stderr}`);
    });
  }
});

Deno.test("libc sleep() resolves after about its time, without a timer", async () => {
  const start = performance.now();
  await libc().sleep(120);
  const ms = performance.now() - start;
  assert.ok(ms >= 115 && ms < 2000, `slept ${ms} ms, want 120`);
});

Deno.test("libc readProcFile() reads /proc, which Deno's file API refuses without --allow-all", async () => {
  const stat = libc().readProcFile("/proc/self/stat");
  assert.ok(stat?.startsWith(`${Deno.pid} (`), `got ${stat?.slice(0, 40)}`);
  assert.equal(libc().readProcFile("/proc/no-such-file"), undefined);
  const hostname = libc().readProcFile("/proc/sys/kernel/hostname");
  assert.equal(hostname?.trim(), (await Deno.readTextFile("/proc/sys/kernel/hostname")).trim());
});
