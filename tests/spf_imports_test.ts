/**
 * Nothing of src/spf/ is on the filter's path: the module graph Deno loads
 * at start (static imports of code, followed from main.ts and from serve)
 * holds no file of it; main.ts reaches src/spf/command.ts only through a
 * dynamic import, taken for `smtp-delay allowlist`.
 */
import assert from "node:assert/strict";
import { ROOT } from "./fixtures/source.ts";

interface Module {
  readonly specifier: string;
  readonly dependencies?: ReadonlyArray<{
    readonly specifier: string;
    readonly code?: { readonly specifier: string };
    readonly isDynamic?: boolean;
  }>;
}

const graph = await (async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", `${ROOT}main.ts`],
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const { modules } = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: Module[] };
  return new Map(modules.map((m) => [m.specifier, m]));
})();

const url = (path: string) => new URL(path, `file://${ROOT}`).href;

/** The modules loaded at start from `root`, and the dynamic imports met on the way. */
function walk(root: string): { loaded: Set<string>; dynamic: Set<string> } {
  const loaded = new Set<string>();
  const dynamic = new Set<string>();
  const todo = [root];
  while (todo.length > 0) {
    const at = todo.pop()!;
    if (loaded.has(at)) continue;
    loaded.add(at);
    for (const d of graph.get(at)?.dependencies ?? []) {
      if (!d.code) continue;
      if (d.isDynamic) dynamic.add(d.code.specifier);
      else todo.push(d.code.specifier);
    }
  }
  return { loaded, dynamic };
}

Deno.test("the filter and serve load nothing of src/spf/ at start", async (t) => {
  for (const root of ["main.ts", "src/serve/server.ts"]) {
    await t.step(root, () => {
      const { loaded } = walk(url(root));
      assert.ok(loaded.size > 5, `${loaded.size} modules from ${root}`);
      assert.deepEqual([...loaded].filter((m) => m.includes("/src/spf/")), []);
    });
  }
  await t.step("main.ts imports src/spf/command.ts when asked", () => {
    assert.ok(walk(url("main.ts")).dynamic.has(url("src/spf/command.ts")));
  });
});
