/**
 * Nothing of src/spf/ is on the filter's path: the module graph Deno loads
 * at start (static imports of code, followed from main.ts and from serve)
 * holds no file of it; main.ts reaches src/spf/command.ts only through a
 * dynamic import, taken for `smtp-delay allowlist`.
 */
import assert from "node:assert/strict";
import { url, walk } from "./fixtures/module_graph.ts";

Deno.test("the filter and serve load nothing of src/spf/ at start", async (t) => {
  for (const root of ["main.ts", "src/serve/server.ts"]) {
    await t.step(root, async () => {
      const { loaded } = await walk(root);
      assert.ok(loaded.size > 5, `${loaded.size} modules from ${root}`);
      assert.deepEqual([...loaded].filter((m) => m.includes("/src/spf/")), []);
    });
  }
  await t.step("main.ts imports src/spf/command.ts when asked", async () => {
    assert.ok((await walk("main.ts")).dynamic.has(url("src/spf/command.ts")));
  });
});
