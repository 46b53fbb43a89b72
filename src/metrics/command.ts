/**
 * `smtp-delay metrics [--since TIME] HOST:PORT DIR`: the per-connection
 * filter's metrics, from its log. It follows the multilog directory DIR
 * (follow.ts), reads each line with the report's parser and counts it as
 * serve counts its own (counters.ts), and answers `GET /metrics` on
 * HOST:PORT (endpoint.ts). The filter itself does nothing more for it: a
 * connection costs what it cost before.
 *
 * It reads DIR from the start (every rotated file, then current), or from
 * TIME (the report's grammar: `-2h`, `2026-12-05T08:00`), before it listens; it runs until SIGTERM or SIGINT, then exits 0;
 * 100 for usage, 111 when it cannot read DIR or listen.
 */
import { scanOptions } from "../getopt.ts";
import * as log from "../log.ts";
import { parseTime } from "../report/options.ts";
import { decodeTai64n, parseLine } from "../report/parse.ts";
import { parseListenAddress } from "../serve/options.ts";
import { UsageError } from "../usage_error.ts";
import { Counters } from "./counters.ts";
import { Endpoint } from "./endpoint.ts";
import { CONTENT_TYPE, render } from "./exposition.ts";
import { Follower } from "./follow.ts";

export const METRICS_USAGE = "usage: smtp-delay metrics [--since TIME] HOST:PORT DIR";

/** The command line: the address, the directory, and --since. */
export function parseMetricsArgs(
  args: readonly string[],
  nowMs: number,
): { hostname: string; port: number; dir: string; sinceMs: number | undefined } | "help" {
  const { options, rest } = scanOptions(args, {
    flags: new Set(),
    values: new Set(),
    longs: new Set(["since"]),
  });
  if (options.some((o) => o.name === "--help" || o.name === "--version")) return "help";
  const since = options.findLast((o) => o.name === "--since")?.value;
  const [address, dir, ...extra] = rest;
  if (address === undefined || dir === undefined || extra.length > 0) {
    throw new UsageError(
      `${
        address === undefined ? "no HOST:PORT" : dir === undefined ? "no DIR" : "too many words"
      } ` +
        `(${METRICS_USAGE})`,
    );
  }
  const { hostname, port } = parseListenAddress(address, "HOST:PORT");
  return {
    hostname,
    port,
    dir,
    sinceMs: since === undefined ? undefined : parseTime(since, nowMs, "--since"),
  };
}

/** `smtp-delay metrics ARGS`: returns the exit code. */
export async function metrics(args: readonly string[]): Promise<number> {
  const asked = parseMetricsArgs(args, Date.now());
  if (asked === "help") {
    Deno.stdout.writeSync(new TextEncoder().encode(METRICS_USAGE + "\n"));
    return 0;
  }
  const { hostname, port, dir, sinceMs } = asked;
  const counters = new Counters();
  const follower = new Follower({
    dir,
    sinceMs,
    decode: decodeTai64n,
    warn: log.warning,
    line: (text) => {
      const record = parseLine(text);
      // With --since, a line counts when its stamp says it is that recent (no stamp: not known).
      if (sinceMs !== undefined && !(record?.atMs !== undefined && record.atMs >= sinceMs)) return;
      counters.count(record);
    },
  });
  try {
    await follower.start();
  } catch (e) {
    log.fatal(`unable to read ${dir}: ${log.reason(e)}`);
    return 111;
  }
  let endpoint: Endpoint;
  try {
    endpoint = Endpoint.listen(hostname, port, {
      contentType: CONTENT_TYPE,
      body: () => render(counters.families()),
    });
  } catch (e) {
    const where = hostname.includes(":") ? `[${hostname}]` : hostname;
    log.fatal(`unable to listen on ${where}:${port}: ${log.reason(e)}`);
    return 111;
  }
  const stop = () => follower.stop();
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  try {
    await follower.run();
  } finally {
    Deno.removeSignalListener("SIGTERM", stop);
    Deno.removeSignalListener("SIGINT", stop);
    await endpoint.close();
  }
  return 0;
}
