/**
 * `smtp-delay state ...`: the admin's view of the memory, on either store.
 *
 *     smtp-delay state [--store URL] show ADDRESS   what is remembered of a client
 *     smtp-delay state [--store URL] list           the penalised and the boxed
 *     smtp-delay state [--store URL] forgive ADDRESS   clear its strikes, box and pass
 *     smtp-delay state [--store URL] expire         delete expired records (cron)
 *
 * Output on stdout, one `key=value` line per record; errors through log.ts.
 * Exit 0, 100 for usage, 111 when the store fails or does not exist: the
 * admin never creates a store (a file made by root before the filter's
 * first connection would be one the filter cannot write; a mistyped path
 * would be a new, empty memory).
 */
import { FILTER_OPTIONS, parseConfig, printRequest } from "./config.ts";
import { scanOptions } from "./getopt.ts";
import { forgive, keyOf, type MemoryConfig, recall } from "./history.ts";
import { parseIp } from "./ip.ts";
import { libc } from "./libc.ts";
import * as log from "./log.ts";
import { openStore } from "./store/open.ts";
import type { ClientRecord, Store } from "./store/store.ts";
import { formatStoreUrl, type StoreUrl } from "./store/url.ts";
import { UsageError } from "./usage_error.ts";

const USAGE =
  "usage: smtp-delay state [--store URL] show ADDRESS | list | forgive ADDRESS | expire";

/** The key for an address the admin typed: an IP, or a /64 key as `list` prints it. */
export function keyFor(text: string): string {
  const ip = parseIp(text.includes(":") ? text.replace(/\/64$/, "") : text);
  if (!ip) throw new UsageError(`not an IP address: "${text}" (${USAGE})`);
  return keyOf(ip);
}

const isoTime = (ms: number | undefined) => ms === undefined ? "-" : new Date(ms).toISOString();

/** One line about a record, as `show` and `list` print it. */
export function describeRecord(
  key: string,
  record: ClientRecord,
  config: MemoryConfig,
  now: number,
): string {
  const recalled = recall(record, config, now);
  const { lastPassAt, lastStrikeAt } = record;
  return [
    key,
    `passed=${isoTime(lastPassAt)}${lastPassAt && !recalled.passed ? "(old)" : ""}`,
    `strikes=${record.strikes}`,
    `last-strike=${isoTime(lastStrikeAt)}${lastStrikeAt && !recalled.penalised ? "(old)" : ""}`,
    `boxes=${record.boxes}`,
    `box-until=${isoTime(recalled.boxUntil)}`,
    `arrivals=${recalled.arrivals}`,
    `open=${record.live.length}`,
  ].join(" ");
}

/** Penalised (a recent strike) or boxed now. */
export function penalised(record: ClientRecord, config: MemoryConfig, now: number): boolean {
  const recalled = recall(record, config, now);
  return recalled.penalised || recalled.boxUntil !== undefined;
}

function print(lines: string[]): void {
  const text = lines.length ? lines.join("\n") + "\n" : "";
  Deno.stdout.writeSync(new TextEncoder().encode(text));
}

const VERBS: { readonly [verb: string]: "address" | "none" } = {
  show: "address",
  forgive: "address",
  list: "none",
  expire: "none",
};

/** What the admin asked for, checked before any store is opened. */
function parseCommand(words: readonly string[]): { verb: string; key: string | undefined } {
  const [verb, address, ...extra] = words;
  if (verb === undefined) throw new UsageError(`no command (${USAGE})`);
  const wants = Object.hasOwn(VERBS, verb) ? VERBS[verb] : undefined;
  if (wants === undefined) throw new UsageError(`unknown command "${verb}" (${USAGE})`);
  if (wants === "address" && address === undefined) {
    throw new UsageError(`${verb} needs an ADDRESS (${USAGE})`);
  }
  const surplus = wants === "address" ? extra : words.slice(1);
  if (surplus.length > 0) throw new UsageError(`${verb} takes no "${surplus[0]}" (${USAGE})`);
  return { verb, key: address === undefined ? undefined : keyFor(address) };
}

/**
 * Why a SQLite store that does not exist yet is not opened: nothing is
 * remembered there, and the admin does not create it (the filter does, at
 * its first connection). Undefined for any other store.
 */
function notCreatedYet(store: StoreUrl): string | undefined {
  if (store.kind !== "sqlite") return undefined;
  try {
    Deno.statSync(store.path);
    return undefined;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) return undefined; // open() will say why
    return `unable to open ${
      formatStoreUrl(store)
    }: No such file or directory (nothing is remembered there ` +
      "yet: the filter creates it at its first connection)";
  }
}

async function runCommand(
  store: Store,
  config: MemoryConfig,
  { verb, key }: { verb: string; key: string | undefined },
): Promise<void> {
  const now = Date.now();
  switch (verb) {
    case "show": {
      const record = await store.get(key!);
      print([record ? describeRecord(key!, record, config, now) : `${key} nothing remembered`]);
      return;
    }
    case "list": {
      const all = await store.list();
      print(
        all.filter(([, record]) => penalised(record, config, now))
          .map(([listed, record]) => describeRecord(listed, record, config, now)),
      );
      return;
    }
    case "forgive": {
      const record = await store.update(key!, forgive(config, now));
      print([record ? `${key} forgiven` : `${key} nothing remembered`]);
      return;
    }
    case "expire":
      print([`expired ${await store.expire(now)}`]);
      return;
    default:
      throw new UsageError(USAGE);
  }
}

/** Runs `smtp-delay state ARGS`; returns the exit code. */
export async function admin(
  args: readonly string[],
  env: Readonly<{ [name: string]: string | undefined }>,
): Promise<number> {
  const { options, rest } = scanOptions(args, FILTER_OPTIONS);
  if (options.some((o) => o.name === "--help" || o.name === "--version")) {
    const asked = options.some((o) => o.name === "--help") ? "--help" : "--version";
    print([printRequest(asked).text]);
    return 0;
  }
  const wanted = parseCommand(rest);
  // The admin's own --store wins over SMTPDELAY_STORE (for the filter, the variable wins).
  const hasStore = options.some((o) => o.name === "--store");
  const request = parseConfig(
    [...args.slice(0, args.length - rest.length), "state"],
    hasStore ? { ...env, SMTPDELAY_STORE: undefined } : env,
  );
  if (request.kind !== "run") throw new UsageError(`-v is not a state option (${USAGE})`);
  const { config } = request;
  if (config.store.kind === "none") {
    throw new UsageError(`no store to look at: --store none (${USAGE})`);
  }
  const absent = notCreatedYet(config.store);
  if (absent) {
    log.fatal(absent);
    return 111;
  }
  let store: Store | undefined;
  try {
    store = await openStore(config.store, Math.max(config.storeTimeoutMs, 5_000), libc().sleep);
    await runCommand(store!, config.memory, wanted);
    return 0;
  } catch (e) {
    log.fatal(`unable to use the store: ${log.reason(e)}`);
    return 111;
  } finally {
    store?.close();
  }
}
