/** bench/floor.ts plus importing an npm Redis client (ioredis): what its import costs a process. */
import Redis from "npm:ioredis@5.11.1";

if (typeof Redis !== "function") throw new Error("no ioredis");
await import("../floor.ts");
