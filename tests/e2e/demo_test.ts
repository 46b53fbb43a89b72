/**
 * `make demo` (scripts/demo.sh) runs any number of times on one machine: its
 * early talker is struck in a memory of its own, in its own temporary
 * directory, which it removes; the host's memory is never touched.
 */
import assert from "node:assert/strict";
import { E2E, FILTER } from "./harness.ts";
import { ROOT, runFileEnv } from "../fixtures/source.ts";

const HOST_STORE = "/var/lib/smtp-delay/state.db";

/** The host store's modification time, or "absent". */
function hostStore(): string {
  try {
    return String(Deno.statSync(HOST_STORE).mtime?.getTime());
  } catch {
    return "absent";
  }
}

Deno.test("make demo works four times in a row and leaves nothing behind", E2E, async () => {
  const tmp = await Deno.makeTempDir({ prefix: "smtp-delay-demo-test-" });
  const before = hostStore();
  try {
    for (let run = 1; run <= 4; run++) {
      const out = await new Deno.Command("bash", {
        args: [`${ROOT}scripts/demo.sh`],
        cwd: ROOT,
        clearEnv: true,
        env: runFileEnv({ DENO: FILTER[0]!, TMPDIR: tmp }),
        stdin: "null",
        signal: AbortSignal.timeout(60_000),
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, `run ${run}:\n${text}`);
      assert.match(text, /<- {2}250 ok\r?\n -> QUIT/, `run ${run}: swaks delivered\n${text}`);
      assert.match(text, /^451 You talked before my greeting/m, `run ${run}: the early talker`);
      assert.match(text, /^smtp-delay: info: PASS .* memory=-$/m, `run ${run}: a stranger again`);
      assert.match(text, /^smtp-delay: info: EARLY .* action=451 /m, `run ${run}`);
      assert.doesNotMatch(text, /^421 |action=421/m, `run ${run}: never boxed`);
      assert.deepEqual([...Deno.readDirSync(tmp)], [], `run ${run} left files in TMPDIR`);
    }
    assert.equal(hostStore(), before, `${HOST_STORE} was touched`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
