/**
 * Command line and environment -> one frozen Config. Pure: the caller passes
 * Deno.args and the environment in. Anything malformed throws UsageError,
 * which main turns into one line on stderr and exit 100, before the client is
 * touched.
 */
import type { Tier } from "./classify.ts";
import { type Option, type OptionSet, scanOptions } from "./getopt.ts";
import type { MemoryConfig } from "./history.ts";
import { parseIp } from "./ip.ts";
import {
  type Lists,
  makeLists,
  parseReply,
  parseSpecs,
  parseThreshold,
  unreachable,
} from "./lists/spec.ts";
import { parseStoreUrl, type StoreUrl } from "./store/url.ts";
import { UsageError } from "./usage_error.ts";

export const VERSION = "0.1.0";

/** The short usage, in usage errors and after -v. */
export const USAGE = "usage: smtp-delay [options] prog [arg ...] | " +
  "smtp-delay serve [options] HOST PORT prog [arg ...] | " +
  "smtp-delay state [--store URL] show|list|forgive|expire (see smtp-delay --help)";

/** The filter's usage, in its usage errors. */
export const FILTER_USAGE = "usage: smtp-delay [options] prog [arg ...]; see smtp-delay --help";

/**
 * --help: every form and option, in 80 columns (the README has the rest).
 * The memory's and the caps' lines come from their tables.
 */
export function helpText(): string {
  const lines = (table: { readonly [field: string]: Setting }) =>
    Object.values(table).map(({ option, variable, unit, fallback }) =>
      `  --${option} N`.padEnd(30) + `${variable} [${fallback}${unit === "seconds" ? " s" : ""}]`
    );
  return [
    `smtp-delay ${VERSION}: holds the SMTP banner back by reverse DNS and memory,`,
    "and rejects clients that talk before it.",
    "",
    "usage: smtp-delay [options] prog [arg ...]",
    "       smtp-delay serve [tcpserver options] [serve options] [options]",
    "                        HOST PORT prog [arg ...]",
    "       smtp-delay state [--store URL] show ADDR | list | forgive ADDR | expire",
    "       smtp-delay metrics [--since TIME] HOST:PORT DIR",
    "       smtp-delay report [--since TIME] [--until TIME] [--json] [--html FILE]",
    "                         [--svg FILE] [FILE|DIR ...]",
    "       smtp-delay allowlist spf DOMAIN ...",
    "       smtp-delay --help | --version",
    "",
    "Options, and the variables that set them per client (the variable wins):",
    "  -d N                        SMTPDELAYd: delay of the ptr tier [0.25 s]",
    "  -D N                        SMTPDELAYD: delay of the dynamic tier [16 s]",
    "  -P N                        SMTPDELAYP: delay of the noptr tier [26 s]",
    "  -N N                        SMTPDELAYN: % of noptr clients refused [0]",
    "  -t N                        longest PTR lookup [5 s]",
    "  -f FILE                     dynamic-name patterns instead of the built-ins",
    "  -S                          answer early talkers (451), refusals (421)",
    "  -v                          the version and the usage, on stderr",
    "  --store URL                 SMTPDELAY_STORE: sqlite:/PATH, none,",
    "                              redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]",
    `                              [${DEFAULT_STORE}]`,
    "  --store-timeout N           SMTPDELAY_STORE_TIMEOUT [0.2 s]",
    "  --allow FILE                SMTPDELAY_ALLOW: CIDRs and names exempt",
    "  --action WORD               SMTPDELAY_ACTION: enforce, ignore (log only)",
    "  --teaser TEXT               SMTPDELAY_TEASER: 220-TEXT as the delay starts",
    "  --teaser-tiers LIST         SMTPDELAY_TEASER_TIERS [noptr,dynamic]",
    "  --dnsbl SPEC                SMTPDELAY_DNSBL (SPECs between spaces): a list,",
    "                              ZONE[=FILTER][*WEIGHT], repeatable [none]",
    "  --dnsbl-threshold N         SMTPDELAY_DNSBL_THRESHOLD: refused at [1]",
    "  --dnswl-threshold N         SMTPDELAY_DNSWL_THRESHOLD: no delay at [-1]",
    "  --dnsbl-reply 'CODE TEXT'   SMTPDELAY_DNSBL_REPLY [421 ...blocklist...]",
    ...lines(MEMORY_SETTINGS),
    ...lines(CAP_SETTINGS),
    "",
    "serve takes tcpserver's -1 -c N -x CDB -X -h -H -l NAME -b N -q -Q -v -R -U",
    "-u UID -g GID, and --waiting N, --per-ip N, --stress N, --stress-delay N,",
    "--metrics HOST:PORT (Prometheus's /metrics; metrics counts a multilog DIR),",
    "--proxy CIDR,... (the load balancers that send a PROXY protocol header).",
    "Exit codes: 0 answered or hung up, 100 usage, 111 temporary failure.",
  ].join("\n");
}

/** Where to send the PTR query; absent means the system resolver. */
export interface NameServer {
  readonly ipAddr: string;
  readonly port: number;
}

export interface Config {
  /** Banner delay per tier, in milliseconds. */
  readonly delayMs: Readonly<Record<Tier, number>>;
  /** Percent chance (0..100) that a `noptr` client is refused with 421. */
  readonly refuseNoptrPercent: number;
  /** -S: answer early talkers and refused clients ourselves. */
  readonly standalone: boolean;
  /** SMTPDELAY=JUSTDELAY: delay and early check only, then RBLSMTPD="". */
  readonly justDelay: boolean;
  readonly nameServer: NameServer | undefined;
  /** Longest time the PTR lookup may take, in milliseconds. */
  readonly lookupTimeoutMs: number;
  /** -f: file of dynamic-name patterns replacing the built-in list. */
  readonly patternFile: string | undefined;
  /** The per-IP memory's settings. */
  readonly memory: MemoryConfig;
  /** The store, parsed once, at start: what parseStoreUrl takes, the store opens. */
  readonly store: StoreUrl;
  /** Longest time a store operation may take before the filter goes on without memory. */
  readonly storeTimeoutMs: number;
  /** --allow: file of CIDRs and rDNS suffixes exempt from everything. */
  readonly allowFile: string | undefined;
  /** throttle.c's caps on a session that passed (0: no cap). */
  readonly caps: Caps;
  /**
   * --action: `enforce` refuses as the verdict says; `ignore` (postscreen's
   * log-only rollout) runs every test and waits every delay, then hands every
   * client on, saying what it would have done.
   */
  readonly action: "enforce" | "ignore";
  /** --teaser: the text of a `220-` line sent at the start of the delay; undefined: none. */
  readonly teaser: string | undefined;
  /** --teaser-tiers: the tiers that get the teaser. */
  readonly teaserTiers: readonly Tier[];
  /** --dnsbl and its thresholds and reply; undefined: no list. */
  readonly lists: Lists | undefined;
  /** The next program and its arguments. */
  readonly program: readonly string[];
}

/** The caps on a session after the hand-off, in ms or bytes per second; 0 switches one off. */
export interface Caps {
  /** The whole session, from the filter's start. */
  readonly maxSessionMs: number;
  /** No byte either way for this long ends the session (needs the relay). */
  readonly maxIdleMs: number;
  /** Bytes read from the client per second (needs the relay). */
  readonly maxBytesPerSecond: number;
}

/**
 * One setting of the memory or the caps: an option of the run file, and a
 * variable tcprules can set per client (the variable wins).
 */
export interface Setting {
  /** The long option, without its dashes. */
  readonly option: string;
  readonly variable: string;
  /** Seconds (kept in ms, up to 30 days) or a whole count (up to a million). */
  readonly unit: "seconds" | "count";
  /** The default, in the unit the admin writes. */
  readonly fallback: number;
}

/** What a settings table makes of each row: the row itself, or the value a run reads. */
type RowMaker<Row> = (
  option: string,
  variable: string,
  unit: Setting["unit"],
  fallback: number,
) => Row;

/** A settings table's rows, one per field of T: the compiler checks none is missing or extra. */
type Rows<T, Row> = { readonly [Field in keyof T]: Row };

/**
 * The memory's settings: long option, variable, unit, default. A function of
 * what to make of each row, so that one table gives both the rows (--help,
 * the options) and the MemoryConfig parseConfig reads, without a cast.
 */
function memorySettings<Row>(row: RowMaker<Row>): Rows<MemoryConfig, Row> {
  return {
    passTtlMs: row("pass-ttl", "SMTPDELAY_PASS_TTL", "seconds", 86_400),
    penaltyTtlMs: row("penalty-ttl", "SMTPDELAY_PENALTY_TTL", "seconds", 86_400),
    strikes: row("strikes", "SMTPDELAY_STRIKES", "count", 3),
    boxMs: row("box", "SMTPDELAY_BOX", "seconds", 600),
    boxMaxMs: row("box-max", "SMTPDELAY_BOX_MAX", "seconds", 86_400),
    rate: row("rate", "SMTPDELAY_RATE", "count", 30),
    rateStepMs: row("rate-step", "SMTPDELAY_RATE_STEP", "seconds", 1),
    rateCapMs: row("rate-cap", "SMTPDELAY_RATE_CAP", "seconds", 60),
    maxConns: row("max-conns", "SMTPDELAY_MAX_CONNS", "count", 0),
    maxRate: row("max-rate", "SMTPDELAY_MAX_RATE", "count", 0),
    windowMs: row("window", "SMTPDELAY_WINDOW", "seconds", 60),
    liveTtlMs: row("live-ttl", "SMTPDELAY_LIVE_TTL", "seconds", 1_200),
  };
}

/** The caps' settings, as memorySettings. */
function capSettings<Row>(row: RowMaker<Row>): Rows<Caps, Row> {
  return {
    maxSessionMs: row("max-session", "SMTPDELAY_MAX_SESSION", "seconds", 900),
    maxIdleMs: row("max-idle", "SMTPDELAY_MAX_IDLE", "seconds", 0),
    maxBytesPerSecond: row("max-bytes-per-second", "SMTPDELAY_MAX_BYTES_PER_SECOND", "count", 0),
  };
}

const asSetting: RowMaker<Setting> = (option, variable, unit, fallback) =>
  Object.freeze({ option, variable, unit, fallback });

/** The memory's settings, by the MemoryConfig field each sets. */
export const MEMORY_SETTINGS: Rows<MemoryConfig, Setting> = Object.freeze(
  memorySettings(asSetting),
);

/** The caps' settings, by the Caps field each sets. */
export const CAP_SETTINGS: Rows<Caps, Setting> = Object.freeze(capSettings(asSetting));

/** Every setting of the two tables. */
const SETTINGS: readonly Setting[] = [
  ...Object.values(MEMORY_SETTINGS),
  ...Object.values(CAP_SETTINGS),
];

/** True when the caps need the filter to stay as a relay instead of exec'ing. */
export function needsRelay(caps: Caps): boolean {
  return caps.maxIdleMs > 0 || caps.maxBytesPerSecond > 0;
}

/**
 * Whether the next program's chain runs rblsmtpd, the one program that acts
 * on RBLSMTPD: a word of its command line named rblsmtpd (chain loading puts
 * the whole chain there: `fixcrio rblsmtpd -r zen qmail-smtpd`).
 */
export function runsRblsmtpd(program: readonly string[]): boolean {
  return program.some((word) => word.slice(word.lastIndexOf("/") + 1) === "rblsmtpd");
}

/** The warning for clients handed on with RBLSMTPD set to a chain without rblsmtpd. */
export function noRblsmtpdWarning(program: readonly string[]): string {
  return `without -S, early talkers go on to ${program[0]} with RBLSMTPD set, and only ` +
    "rblsmtpd acts on it (put rblsmtpd after smtp-delay, or use -S)";
}

/**
 * What the command line asks for: a run (with the warnings its settings
 * call for), or a text to print: -v (version and usage, on stderr: under
 * tcpserver stdout is the client), --version and --help (on stdout).
 */
export type Request =
  | { kind: "run"; config: Config; warnings: readonly string[] }
  | PrintRequest;

/** A text to print, and where. */
export type PrintRequest = { kind: "print"; text: string; stdout: boolean };

/** The texts of -v, --version and --help. */
export function printRequest(letter: "v" | "--version" | "--help"): PrintRequest {
  if (letter === "--help") return { kind: "print", text: helpText(), stdout: true };
  if (letter === "--version") return { kind: "print", text: `smtp-delay ${VERSION}`, stdout: true };
  return { kind: "print", text: `smtp-delay ${VERSION}\n${USAGE}`, stdout: false };
}

export const DEFAULTS = {
  delayMs: { ptr: 250, dynamic: 16_000, noptr: 26_000 },
  refuseNoptrPercent: 0,
  lookupTimeoutMs: 5_000,
  storeTimeoutMs: 200,
} as const;

/** Longest delay or lookup deadline accepted, in seconds. */
export const MAX_SECONDS = 300;

/** The default store: one SQLite file. */
export const DEFAULT_STORE = "sqlite:/var/lib/smtp-delay/state.db";

/** Longest TTL accepted, in seconds (30 days), and the largest count. */
export const MAX_TTL_SECONDS = 2_592_000;
export const MAX_COUNT = 1_000_000;

/** The tiers that get the teaser unless --teaser-tiers says otherwise. */
const DEFAULT_TEASER_TIERS: readonly Tier[] = Object.freeze(["noptr", "dynamic"]);

/** Longest teaser text: a reply line is at most 512 bytes with its code and CRLF (RFC 5321). */
const MAX_TEASER = 200;

/** --teaser: printable ASCII and spaces, one line, 1 to MAX_TEASER characters. */
function parseTeaser(text: string, what: string): string {
  if (!/^[ -~]+$/.test(text) || text.length > MAX_TEASER) {
    throw new UsageError(
      `${what} wants 1 to ${MAX_TEASER} printable ASCII characters, got "${text.slice(0, 100)}"`,
    );
  }
  return text;
}

/** --teaser-tiers: `none`, or tiers separated by commas (`noptr,dynamic`). */
function parseTeaserTiers(text: string, what: string): Tier[] {
  if (text === "none") return [];
  const tiers = text.split(",");
  if (!tiers.every((t) => t === "ptr" || t === "dynamic" || t === "noptr")) {
    throw new UsageError(
      `${what} wants none or ptr, dynamic, noptr joined by commas, got "${text}"`,
    );
  }
  return [...new Set(tiers as Tier[])];
}

/** --action: enforce or ignore. */
function parseAction(text: string, what: string): Config["action"] {
  if (text !== "enforce" && text !== "ignore") {
    throw new UsageError(`${what} wants enforce or ignore, got "${text}"`);
  }
  return text;
}

/** Long options that take a value. */
const LONG_OPTIONS: ReadonlySet<string> = new Set([
  "store",
  "store-timeout",
  "allow",
  "action",
  "teaser",
  "teaser-tiers",
  "dnsbl",
  "dnsbl-threshold",
  "dnswl-threshold",
  "dnsbl-reply",
  ...SETTINGS.map(({ option }) => option),
]);

const NUMERIC_OPTIONS = new Set(["d", "D", "P", "N", "t"]);
/** The letters that take a value. */
const VALUE_OPTIONS: ReadonlySet<string> = new Set([...NUMERIC_OPTIONS, "f"]);
/** The letters without a value. */
const FLAG_OPTIONS: ReadonlySet<string> = new Set(["S", "v"]);

/** The filter's options. */
export const FILTER_OPTIONS: OptionSet = {
  flags: FLAG_OPTIONS,
  values: VALUE_OPTIONS,
  longs: LONG_OPTIONS,
};

const DECIMAL = /^[0-9]{1,9}(\.[0-9]{1,9})?$/;

/** Parses "2", "0.5", "16.000000" as a number from 0 to `max`; throws naming `what`. */
export function parseDecimal(text: string, max: number, what: string, unit: string): number {
  const value = DECIMAL.test(text) ? Number(text) : NaN;
  if (!(value <= max)) {
    throw new UsageError(`${what} wants ${unit} from 0 to ${max}, got "${text}"`);
  }
  return value;
}

function parseSeconds(text: string, what: string): number {
  return Math.round(parseDecimal(text, MAX_SECONDS, what, "seconds") * 1000);
}

/** A memory setting: seconds (to ms, up to 30 days) or a whole count (up to a million). */
function parseSetting(unit: "seconds" | "count", text: string, what: string): number {
  if (unit === "seconds") {
    return Math.round(parseDecimal(text, MAX_TTL_SECONDS, what, "seconds") * 1000);
  }
  if (!/^[0-9]{1,7}$/.test(text) || Number(text) > MAX_COUNT) {
    throw new UsageError(`${what} wants a whole number from 0 to ${MAX_COUNT}, got "${text}"`);
  }
  return Number(text);
}

/** The store deadline: more than 0, at most 10 seconds; in ms. */
function parseStoreTimeout(text: string, what: string): number {
  const ms = Math.round(parseDecimal(text, 10, what, "seconds") * 1000);
  if (ms < 1) throw new UsageError(`${what} wants seconds from 0.001 to 10, got "${text}"`);
  return ms;
}

function parsePercent(text: string, what: string): number {
  return parseDecimal(text, 100, what, "a percentage");
}

/** SMTPDELAY_DNS: "IP", "IP:PORT", "IPv6" or "[IPv6]:PORT". */
export function parseNameServer(text: string, what = "SMTPDELAY_DNS"): NameServer {
  const bad = () => new UsageError(`${what} wants IP or IP:PORT, got "${text}"`);
  let host = text;
  let port = "53";
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1]!;
    port = bracketed[2] ?? "53";
  } else if (text.indexOf(":") === text.lastIndexOf(":") && text.includes(":")) {
    host = text.slice(0, text.indexOf(":"));
    port = text.slice(text.indexOf(":") + 1);
  }
  if (host.includes("%") || !parseIp(host)) throw bad();
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw bad();
  return Object.freeze({ ipAddr: host, port: Number(port) });
}

/** The memory's settings that do nothing without a store. */
const STORE_SETTINGS: ReadonlyArray<{ readonly option: string; readonly variable: string }> = [
  ...Object.values(MEMORY_SETTINGS),
  { option: "store-timeout", variable: "SMTPDELAY_STORE_TIMEOUT" },
];

/**
 * What `--store none` makes of the memory's settings: beside a memory
 * option of the run file it can never work, a usage error; when the store
 * in effect (`store`, said by `from`) is none, a memory variable (tcprules,
 * for some clients) does nothing, a warning returned for the caller to log.
 * A run file's options beside SMTPDELAY_STORE=none for some clients is the
 * admin's meaning, and says nothing.
 */
function withoutStore(
  options: readonly Option[],
  env: Readonly<Record<string, string | undefined>>,
  store: { text: string; what: string } | undefined,
): string[] {
  const none = options.findLast((o) => o.name === "--store")?.value === "none";
  const warnings: string[] = [];
  for (const { option, variable } of STORE_SETTINGS) {
    if (none && options.some((o) => o.name === `--${option}`)) {
      throw new UsageError(`--${option} needs a store, and --store none has none`);
    }
    if (store?.text === "none" && env[variable]) {
      warnings.push(`${variable} does nothing without a store (${store.what} none)`);
    }
  }
  return warnings;
}

/** The settings of the lists that do nothing without one. */
const LIST_SETTINGS = [
  { option: "dnsbl-threshold", variable: "SMTPDELAY_DNSBL_THRESHOLD" },
  { option: "dnswl-threshold", variable: "SMTPDELAY_DNSWL_THRESHOLD" },
  { option: "dnsbl-reply", variable: "SMTPDELAY_DNSBL_REPLY" },
] as const;

/**
 * The lists: SMTPDELAY_DNSBL's SPECs (spaces between; `none`: no list),
 * else every --dnsbl; their thresholds and reply, each variable over its
 * option. Warnings: a threshold or reply in effect for a client without
 * lists (unless SMTPDELAY_DNSBL=none says so), a threshold no sum of
 * weights reaches. A run file's threshold beside lists that tcprules sets
 * for some clients is not a usage error: the others would lose their session.
 */
function listsOf(
  options: readonly Option[],
  env: Readonly<Record<string, string | undefined>>,
  given: (option: string, variable: string) => { text: string; what: string } | undefined,
): { lists: Lists | undefined; warnings: string[] } {
  const fromOptions = parseSpecs(
    options.filter((o) => o.name === "--dnsbl").map((o) => o.value),
    "--dnsbl",
  );
  const text = env.SMTPDELAY_DNSBL?.trim();
  const specs = text ? parseSpecs(text.split(/\s+/), "SMTPDELAY_DNSBL") : fromOptions;
  const warnings: string[] = [];
  if (specs.length === 0) {
    for (const { option, variable } of LIST_SETTINGS) {
      const set = given(option, variable);
      if (set && text !== "none") {
        warnings.push(`${set.what} does nothing without lists (--dnsbl, SMTPDELAY_DNSBL)`);
      }
    }
    return { lists: undefined, warnings };
  }
  const block = given("dnsbl-threshold", "SMTPDELAY_DNSBL_THRESHOLD");
  const allow = given("dnswl-threshold", "SMTPDELAY_DNSWL_THRESHOLD");
  const reply = given("dnsbl-reply", "SMTPDELAY_DNSBL_REPLY");
  const lists = makeLists(
    specs,
    block ? parseThreshold(block.text, 1, block.what) : undefined,
    allow ? parseThreshold(allow.text, -1, allow.what) : undefined,
    reply ? parseReply(reply.text, reply.what) : undefined,
  );
  warnings.push(
    ...unreachable(lists, block?.what ?? "--dnsbl-threshold", allow?.what ?? "--dnswl-threshold"),
  );
  return { lists, warnings };
}

/** Environment variables that override an option for one client (tcprules). */
const ENV_OVERRIDES = [
  ["SMTPDELAYd", "d"],
  ["SMTPDELAYD", "D"],
  ["SMTPDELAYP", "P"],
  ["SMTPDELAYN", "N"],
] as const;

/**
 * Builds the Config from the arguments (without the program name) and the
 * environment. Later wins: defaults, then options, then SMTPDELAY* variables.
 * An empty variable counts as unset (tcprules can set, not unset).
 */
export function parseConfig(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Request {
  const { options, rest } = scanOptions(args, FILTER_OPTIONS);
  if (options.some((o) => o.name === "--help")) return printRequest("--help");
  const version = options.find((o) => o.name === "--version" || o.name === "v");
  if (version) return printRequest(version.name === "v" ? "v" : "--version");
  // -N is a percentage, the other numbers are seconds (kept as milliseconds).
  const parseNumber = (letter: string, text: string, what: string) =>
    letter === "N" ? parsePercent(text, what) : parseSeconds(text, what);
  const numbers = new Map<string, number>();
  let patternFile: string | undefined;
  for (const { name: letter, value } of options) {
    if (letter === "f") patternFile = value === "" ? undefined : value;
    else if (NUMERIC_OPTIONS.has(letter)) {
      numbers.set(letter, parseNumber(letter, value, `-${letter}`));
    }
  }
  for (const [variable, letter] of ENV_OVERRIDES) {
    const text = env[variable];
    if (text) numbers.set(letter, parseNumber(letter, text, variable));
  }

  /** A long option's value: its variable's (not empty), else the option's last, else none. */
  const given = (option: string, variable: string): { text: string; what: string } | undefined => {
    const fromEnv = env[variable];
    if (fromEnv) return { text: fromEnv, what: variable };
    const last = options.findLast((o) => o.name === `--${option}`);
    return last && { text: last.value, what: `--${option}` };
  };
  // Every option's value is checked, even where a variable overrides it.
  for (const { name, value } of options) {
    const setting = SETTINGS.find(({ option }) => `--${option}` === name);
    if (setting) parseSetting(setting.unit, value, name);
    if (name === "--store") parseStoreUrl(value, name);
    if (name === "--store-timeout") parseStoreTimeout(value, name);
    if (name === "--action") parseAction(value, name);
    if (name === "--teaser" && value !== "") parseTeaser(value, name);
    if (name === "--teaser-tiers") parseTeaserTiers(value, name);
    if (name === "--dnsbl-threshold") parseThreshold(value, 1, name);
    if (name === "--dnswl-threshold") parseThreshold(value, -1, name);
    if (name === "--dnsbl-reply") parseReply(value, name);
  }
  const listed = listsOf(options, env, given);
  /** A setting's value: the variable's, else the option's, else the default. */
  const valueOf: RowMaker<number> = (option, variable, unit, fallback) => {
    const found = given(option, variable);
    if (found) return parseSetting(unit, found.text, found.what);
    return unit === "seconds" ? fallback * 1000 : fallback;
  };
  const memory: MemoryConfig = memorySettings(valueOf);
  const caps: Caps = capSettings(valueOf);
  const storeGiven = given("store", "SMTPDELAY_STORE");
  const store = parseStoreUrl(storeGiven?.text ?? DEFAULT_STORE, storeGiven?.what ?? "--store");
  const timeoutGiven = given("store-timeout", "SMTPDELAY_STORE_TIMEOUT");
  const storeTimeoutMs = timeoutGiven
    ? parseStoreTimeout(timeoutGiven.text, timeoutGiven.what)
    : DEFAULTS.storeTimeoutMs;
  const allowFile = given("allow", "SMTPDELAY_ALLOW")?.text || undefined;
  const actionGiven = given("action", "SMTPDELAY_ACTION");
  const action = actionGiven ? parseAction(actionGiven.text, actionGiven.what) : "enforce";
  const teaserGiven = given("teaser", "SMTPDELAY_TEASER");
  const teaser = teaserGiven?.text ? parseTeaser(teaserGiven.text, teaserGiven.what) : undefined;
  const tiersGiven = given("teaser-tiers", "SMTPDELAY_TEASER_TIERS");
  const teaserTiers = tiersGiven
    ? parseTeaserTiers(tiersGiven.text, tiersGiven.what)
    : DEFAULT_TEASER_TIERS;
  const warnings = [...withoutStore(options, env, storeGiven), ...listed.warnings];
  if (listed.lists && numbers.get("t") === 0) {
    warnings.push("the lists (--dnsbl, SMTPDELAY_DNSBL) are never asked with -t 0");
  }
  if (tiersGiven && teaser === undefined) {
    warnings.push(`${tiersGiven.what} does nothing without a teaser (--teaser)`);
  }

  const mode = env.SMTPDELAY ?? "";
  if (mode !== "" && mode !== "JUSTDELAY") {
    throw new UsageError(`SMTPDELAY wants JUSTDELAY or nothing, got "${mode}"`);
  }
  if (rest.length === 0) throw new UsageError(`no program to run (${FILTER_USAGE})`);

  return {
    kind: "run",
    warnings,
    config: Object.freeze({
      delayMs: Object.freeze({
        ptr: numbers.get("d") ?? DEFAULTS.delayMs.ptr,
        dynamic: numbers.get("D") ?? DEFAULTS.delayMs.dynamic,
        noptr: numbers.get("P") ?? DEFAULTS.delayMs.noptr,
      }),
      refuseNoptrPercent: numbers.get("N") ?? DEFAULTS.refuseNoptrPercent,
      standalone: options.some((o) => o.name === "S"),
      justDelay: mode === "JUSTDELAY",
      nameServer: env.SMTPDELAY_DNS ? parseNameServer(env.SMTPDELAY_DNS) : undefined,
      lookupTimeoutMs: numbers.get("t") ?? DEFAULTS.lookupTimeoutMs,
      patternFile,
      memory: Object.freeze(memory),
      store,
      storeTimeoutMs,
      allowFile,
      caps: Object.freeze(caps),
      action,
      teaser,
      teaserTiers: Object.freeze([...teaserTiers]),
      lists: listed.lists,
      program: Object.freeze([...rest]),
    }),
  };
}
