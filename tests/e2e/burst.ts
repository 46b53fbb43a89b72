/**
 * A burst of simultaneous connects, as a subprocess of the e2e tests (its
 * sockets count against its own fd limit, not the test's):
 *
 *     deno run --allow-net --allow-ffi burst.ts PORT COUNT DEADLINE_MS
 *
 * Client i connects to 127.0.0.1 PORT from its own loopback address
 * (127.100.0.1 on: Linux answers all of 127/8), all in one go, and waits for
 * the first line the server sends; it closes then, or at DEADLINE_MS. Prints
 * one JSON line: how many got a 220 banner, a 4xx, anything else, nothing
 * (hung), or a failed connect; the slowest first line in ms; and the first
 * few addresses that hung or failed.
 */
import net from "node:net";

/** Raises this process's soft fd limit to its hard one (a burst needs an fd per client). */
function raiseFileLimit(): void {
  const lib = Deno.dlopen("libc.so.6", {
    getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
    setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  });
  const RLIMIT_NOFILE = 7;
  const limit = new BigUint64Array(2);
  const buf = new Uint8Array(limit.buffer);
  if (lib.symbols.getrlimit(RLIMIT_NOFILE, buf) === 0) {
    limit[0] = limit[1]!;
    lib.symbols.setrlimit(RLIMIT_NOFILE, buf);
  }
  lib.close();
}

/** The source address of client `i` (0-based): 127.100.0.1, 127.100.0.2, ... */
export function sourceOf(i: number): string {
  const n = i + 1;
  return `127.${100 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

export interface BurstResult {
  banner: number;
  busy: number;
  other: number;
  hung: number;
  failed: number;
  slowestMs: number;
  stuck: string[];
}

if (import.meta.main) {
  const [port, count, deadlineMs] = Deno.args.map(Number) as [number, number, number];
  raiseFileLimit();
  const result: BurstResult = {
    banner: 0,
    busy: 0,
    other: 0,
    hung: 0,
    failed: 0,
    slowestMs: 0,
    stuck: [],
  };
  const start = performance.now();
  const clients: Array<Promise<void>> = [];
  for (let i = 0; i < count; i++) {
    const from = sourceOf(i);
    clients.push(
      new Promise((resolve) => {
        let text = "";
        let settled = false;
        const socket = net.createConnection({ host: "127.0.0.1", port, localAddress: from });
        const settle = (how: "line" | "hung" | "failed") => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          socket.destroy();
          if (how === "line") {
            result.slowestMs = Math.max(result.slowestMs, performance.now() - start);
            if (text.startsWith("220 ")) result.banner++;
            else if (/^4[0-9][0-9] /.test(text)) result.busy++;
            else result.other++;
          } else {
            result[how]++;
            if (result.stuck.length < 5) result.stuck.push(`${from} ${how}`);
          }
          resolve();
        };
        const timer = setTimeout(() => settle("hung"), deadlineMs);
        socket.on("data", (d: Uint8Array) => {
          text += new TextDecoder().decode(d);
          if (text.includes("\n")) settle("line");
        });
        socket.on("error", () => settle(text ? "line" : "failed"));
        socket.on("close", () => settle(text ? "line" : "failed"));
      }),
    );
  }
  await Promise.all(clients);
  result.slowestMs = Math.round(result.slowestMs);
  console.log(JSON.stringify(result));
}
