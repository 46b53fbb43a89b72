/**
 * Nothing of the metrics is loaded unless asked for: the module graph that
 * Deno loads at start (static imports, followed from main.ts) holds no file
 * of src/metrics/ and none of src/report/ (the parser the metrics read lines
 * with), for the per-connection filter and for serve alike; serve reaches
 * src/metrics/ only through a dynamic import, taken when --metrics is given.
 */
import assert from "node:assert/strict";
import { ROOT } from "./fixtures/source.ts";

interface Dependency {
  readonly specifier: string;
  readonly code?: { readonly specifier: string };
  readonly isDynamic?: boolean;
}
interface Module {
  readonly specifier: string;
  readonly dependencies?: readonly Dependency[];
}

const info = await (async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", `${ROOT}main.ts`],
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: Module[] };
  return new Map(graph.modules.map((m) => [m.specifier, m]));
})();

const url = (path: string) => new URL(path, `file://${ROOT}`).href;

/** Every module loaded at start from `root`: static imports of code (not types, not dynamic). */
function loadedFrom(root: string): Set<string> {
  const seen = new Set<string>();
  const todo = [root];
  while (todo.length > 0) {
    const at = todo.pop()!;
    if (seen.has(at)) continue;
    seen.add(at);
    for (const d of info.get(at)?.dependencies ?? []) {
      if (d.code && !d.isDynamic) todo.push(d.code.specifier);
    }
  }
  return seen;
}

const lazy = (m: string) => m.includes("/src/metrics/") || m.includes("/src/report/");

Deno.test("the filter and serve load nothing of src/metrics/ or src/report/ at start", async (t) => {
  for (const root of ["main.ts", "src/serve/server.ts"]) {
    await t.step(root, () => {
      const loaded = [...loadedFrom(url(root))];
      assert.ok(loaded.length > 5, `${loaded.length} modules from ${root}`);
      assert.deepEqual(loaded.filter(lazy), []);
    });
  }
});

Deno.test("serve reaches the metrics through one dynamic import, of live.ts", () => {
  const server = info.get(url("src/serve/server.ts"))!;
  const metrics = (server.dependencies ?? []).filter((d) => d.specifier.includes("/metrics/"));
  assert.deepEqual(metrics.map((d) => [d.specifier, d.isDynamic]), [["../metrics/live.ts", true]]);
});

Deno.test("`smtp-delay metrics` is a dynamic import of main.ts", () => {
  const main = info.get(url("main.ts"))!;
  const metrics = (main.dependencies ?? []).filter((d) => d.specifier.includes("/metrics/"));
  assert.deepEqual(metrics.map((d) => [d.specifier, d.isDynamic]), [[
    "./src/metrics/command.ts",
    true,
  ]]);
});
