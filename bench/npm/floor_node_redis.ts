/** bench/floor.ts plus importing an npm Redis client (node-redis): what its import costs a process. */
import { createClient } from "npm:redis@5.12.1";

if (typeof createClient !== "function") throw new Error("no redis");
await import("../floor.ts");
