/**
 * The lists cost a run file without them nothing but their options'
 * grammar: the module graph Deno loads at start, from main.ts and from
 * serve, holds src/lists/spec.ts (config.ts parses --dnsbl) and no other
 * file of src/lists/; screen.ts reaches the queries only through dynamic
 * imports, taken for a client with lists.
 */
import assert from "node:assert/strict";
import { url, walk } from "./fixtures/module_graph.ts";

Deno.test("the filter and serve load only the lists' grammar at start", async (t) => {
  for (const root of ["main.ts", "src/serve/server.ts"]) {
    await t.step(root, async () => {
      const { loaded } = await walk(root);
      assert.ok(loaded.size > 5, `${loaded.size} modules from ${root}`);
      assert.deepEqual([...loaded].filter((m) => m.includes("/src/lists/")), [
        url("src/lists/spec.ts"),
      ]);
    });
  }
  await t.step("screen.ts imports the queries when a client has lists", async () => {
    const { dynamic } = await walk("main.ts");
    assert.ok(dynamic.has(url("src/lists/listing.ts")), [...dynamic].join("\n"));
    assert.ok(dynamic.has(url("src/lists/ask.ts")));
  });
});
