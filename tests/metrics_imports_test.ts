/**
 * Nothing of the metrics is loaded unless asked for: the module graph that
 * Deno loads at start (static imports, followed from main.ts) holds no file
 * of src/metrics/ and none of src/report/ (the parser the metrics read lines
 * with), for the per-connection filter and for serve alike; serve reaches
 * src/metrics/ only through a dynamic import, taken when --metrics is given.
 */
import assert from "node:assert/strict";
import { url, walk } from "./fixtures/module_graph.ts";

const lazy = (m: string) => m.includes("/src/metrics/") || m.includes("/src/report/");

Deno.test("the filter and serve load nothing of src/metrics/ or src/report/ at start", async (t) => {
  for (const root of ["main.ts", "src/serve/server.ts"]) {
    await t.step(root, async () => {
      const { loaded } = await walk(root);
      assert.ok(loaded.size > 5, `${loaded.size} modules from ${root}`);
      assert.deepEqual([...loaded].filter(lazy), []);
    });
  }
});

Deno.test("serve reaches the metrics through one dynamic import, of live.ts", async () => {
  const { dynamic } = await walk("src/serve/server.ts");
  assert.deepEqual([...dynamic].filter((m) => m.includes("/src/metrics/")), [
    url("src/metrics/live.ts"),
  ]);
});

Deno.test("`smtp-delay metrics` is a dynamic import of main.ts", async () => {
  const { dynamic } = await walk("main.ts");
  assert.deepEqual([...dynamic].filter((m) => m.includes("/src/metrics/")), [
    url("src/metrics/command.ts"),
  ]);
});
