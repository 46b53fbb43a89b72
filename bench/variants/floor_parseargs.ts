/** bench/floor.ts plus node:util's parseArgs: what that import costs a process. */
import { parseArgs } from "node:util";

parseArgs({ args: ["-d", "0"], options: { d: { type: "string", short: "d" } }, strict: true });
await import("../floor.ts");
