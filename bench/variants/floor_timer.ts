/** bench/floor.ts plus one setTimeout(0): what Deno's first timer costs a process. */
await new Promise((resolve) => setTimeout(resolve, 0));
await import("../floor.ts");
