/**
 * Command line and environment -> one frozen Config. Pure: the caller passes
 * Deno.args and the environment in. Anything malformed throws UsageError,
 * which main turns into one line on stderr and exit 100, before the client is
 * touched.
 */
import type { Tier } from "./classify.ts";
import type { MemoryConfig } from "./history.ts";
import { parseIp } from "./ip.ts";
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
  const settings = (table: ReadonlyArray<readonly [string, string, string, string, number]>) =>
    table.map(([option, variable, , unit, fallback]) =>
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
    "                              redis://HOST[:PORT][/DB]",
    `                              [${DEFAULT_STORE}]`,
    "  --store-timeout N           SMTPDELAY_STORE_TIMEOUT [0.2 s]",
    "  --allow FILE                SMTPDELAY_ALLOW: CIDRs and names exempt",
    ...settings(MEMORY_SETTINGS),
    ...settings(CAP_SETTINGS),
    "",
    "serve takes tcpserver's -1 -c N -x CDB -X -h -H -l NAME -b N -q -Q -v -R -U",
    "-u UID -g GID, and --waiting N, --per-ip N, --stress N, --stress-delay N.",
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
  /** `none`, `sqlite:PATH` or `redis://[:PASSWORD@]HOST[:PORT][/DB]`. */
  readonly store: string;
  /** Longest time a store operation may take before the filter goes on without memory. */
  readonly storeTimeoutMs: number;
  /** --allow: file of CIDRs and rDNS suffixes exempt from everything. */
  readonly allowFile: string | undefined;
  /** throttle.c's caps on a session that passed (0: no cap). */
  readonly caps: Caps;
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

/** The caps' options and variables, as MEMORY_SETTINGS. */
export const CAP_SETTINGS = [
  ["max-session", "SMTPDELAY_MAX_SESSION", "maxSessionMs", "seconds", 900],
  ["max-idle", "SMTPDELAY_MAX_IDLE", "maxIdleMs", "seconds", 0],
  ["max-bytes-per-second", "SMTPDELAY_MAX_BYTES_PER_SECOND", "maxBytesPerSecond", "count", 0],
] as const satisfies ReadonlyArray<
  readonly [string, string, keyof Caps, "seconds" | "count", number]
>;

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
  | { kind: "print"; text: string; stdout: boolean };

/** The texts of -v, --version and --help. */
export function printRequest(letter: "v" | "--version" | "--help"): Request {
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

/**
 * The memory's settings: long option, variable, field, unit, default. Each is
 * an option of the run file and a variable tcprules can set per client.
 */
export const MEMORY_SETTINGS = [
  ["pass-ttl", "SMTPDELAY_PASS_TTL", "passTtlMs", "seconds", 86_400],
  ["penalty-ttl", "SMTPDELAY_PENALTY_TTL", "penaltyTtlMs", "seconds", 86_400],
  ["strikes", "SMTPDELAY_STRIKES", "strikes", "count", 3],
  ["box", "SMTPDELAY_BOX", "boxMs", "seconds", 600],
  ["box-max", "SMTPDELAY_BOX_MAX", "boxMaxMs", "seconds", 86_400],
  ["rate", "SMTPDELAY_RATE", "rate", "count", 30],
  ["rate-step", "SMTPDELAY_RATE_STEP", "rateStepMs", "seconds", 1],
  ["rate-cap", "SMTPDELAY_RATE_CAP", "rateCapMs", "seconds", 60],
  ["max-conns", "SMTPDELAY_MAX_CONNS", "maxConns", "count", 0],
  ["max-rate", "SMTPDELAY_MAX_RATE", "maxRate", "count", 0],
  ["window", "SMTPDELAY_WINDOW", "windowMs", "seconds", 60],
  ["live-ttl", "SMTPDELAY_LIVE_TTL", "liveTtlMs", "seconds", 1_200],
] as const satisfies ReadonlyArray<
  readonly [string, string, keyof MemoryConfig, "seconds" | "count", number]
>;

/** Longest TTL accepted, in seconds (30 days), and the largest count. */
export const MAX_TTL_SECONDS = 2_592_000;
export const MAX_COUNT = 1_000_000;

/** Long options that take a value. */
const LONG_OPTIONS: ReadonlySet<string> = new Set([
  "store",
  "store-timeout",
  "allow",
  ...MEMORY_SETTINGS.map(([option]) => option),
  ...CAP_SETTINGS.map(([option]) => option),
]);

const NUMERIC_OPTIONS = new Set(["d", "D", "P", "N", "t"]);
/** The letters that take a value. */
const VALUE_OPTIONS: ReadonlySet<string> = new Set([...NUMERIC_OPTIONS, "f"]);
/** The letters without a value. */
const FLAG_OPTIONS: ReadonlySet<string> = new Set(["S", "v"]);

/** Long options without a value that every command takes. */
const LONG_FLAGS: ReadonlySet<string> = new Set(["help", "version"]);

/** One parsed option: its letter (or `--name`) and, for options that take one, its value. */
export interface Option {
  readonly letter: string;
  readonly value: string;
}

/** The option letters and long names a command takes. */
export interface OptionSet {
  /** Letters without a value. */
  readonly flags: ReadonlySet<string>;
  /** Letters with a value. */
  readonly values: ReadonlySet<string>;
  /** Long option names (all take a value). */
  readonly longs: ReadonlySet<string>;
  /** Why a letter is refused, when it has a reason of its own. */
  readonly refused?: (letter: string) => string | undefined;
}

/**
 * getopt(3) as djb's programs use it: options first, clustered flags (`-Sv`),
 * values attached or separate (`-d5`, `-d 5`), `--` ends the options, and the
 * first word that is not an option starts the program. Long options take a
 * value, attached or separate (`--store URL`, `--store=URL`), but for
 * `--help` and `--version`, which every command takes and which take none.
 */
export function scanOptions(
  args: readonly string[],
  set: OptionSet,
): { options: Option[]; rest: string[] } {
  const options: Option[] = [];
  let i = 0;
  const valueAfter = (what: string): string => {
    if (i + 1 >= args.length) throw new UsageError(`option ${what} needs a value`);
    return args[++i]!;
  };
  for (; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (arg.length < 2 || arg[0] !== "-") break;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      if (LONG_FLAGS.has(name) && eq < 0) {
        options.push({ letter: `--${name}`, value: "" });
        continue;
      }
      if (!set.longs.has(name)) throw new UsageError(`unknown option "--${name}"`);
      const value = eq < 0 ? valueAfter(`--${name}`) : arg.slice(eq + 1);
      options.push({ letter: `--${name}`, value });
      continue;
    }
    for (let j = 1; j < arg.length; j++) {
      const letter = arg[j]!;
      if (set.flags.has(letter)) {
        options.push({ letter, value: "" });
      } else if (set.values.has(letter)) {
        const value = arg.slice(j + 1) || valueAfter(`-${letter}`);
        options.push({ letter, value });
        break;
      } else {
        throw new UsageError(set.refused?.(letter) ?? `unknown option "-${letter}"`);
      }
    }
  }
  return { options, rest: args.slice(i) };
}

/** The filter's options. */
export const FILTER_OPTIONS: OptionSet = {
  flags: FLAG_OPTIONS,
  values: VALUE_OPTIONS,
  longs: LONG_OPTIONS,
};

/** getopt for the filter's own options (see scanOptions). */
export function getopt(args: readonly string[]): { options: Option[]; rest: string[] } {
  return scanOptions(args, FILTER_OPTIONS);
}

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
    [host, port] = text.split(":") as [string, string];
  }
  if (host.includes("%") || !parseIp(host)) throw bad();
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw bad();
  return Object.freeze({ ipAddr: host, port: Number(port) });
}

/**
 * Checks a store URL: `none`, `sqlite:/ABSOLUTE/PATH`,
 * `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]` (the Redis store parses it in
 * full when it opens: importing it here would cost every connection).
 */
export function parseStore(text: string, what: string): string {
  const ok = text === "none" || /^sqlite:\/[^\0]*[^/]$/.test(text) ||
    /^redis:\/\/([^@\s/]*@)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?(\/[0-9]{0,5})?$/.test(
      text,
    );
  const port = /^redis:\/\/(?:[^@]*@)?(?:\[[^\]]*\]|[^:/]*):([0-9]+)/.exec(text)?.[1];
  if (!ok || (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535))) {
    throw new UsageError(
      `${what} wants none, sqlite:/PATH or redis://HOST[:PORT][/DB], got "${text}"`,
    );
  }
  return text;
}

/** The memory's settings that do nothing without a store. */
const STORE_SETTINGS = [
  ...MEMORY_SETTINGS.map(([option, variable]) => [option, variable] as const),
  ["store-timeout", "SMTPDELAY_STORE_TIMEOUT"] as const,
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
  const none = options.findLast((o) => o.letter === "--store")?.value === "none";
  const warnings: string[] = [];
  for (const [option, variable] of STORE_SETTINGS) {
    if (none && options.some((o) => o.letter === `--${option}`)) {
      throw new UsageError(`--${option} needs a store, and --store none has none`);
    }
    if (store?.text === "none" && env[variable]) {
      warnings.push(`${variable} does nothing without a store (${store.what} none)`);
    }
  }
  return warnings;
}

/** Environment variables that override an option for one client (tcprules). */
export const ENV_OVERRIDES = [
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
  const { options, rest } = getopt(args);
  const asked = options.find((o) => o.letter === "--help") ??
    options.find((o) => o.letter === "--version" || o.letter === "v");
  if (asked) return printRequest(asked.letter as "v" | "--version" | "--help");
  // -N is a percentage, the other numbers are seconds (kept as milliseconds).
  const parse = (letter: string, text: string, what: string) =>
    letter === "N" ? parsePercent(text, what) : parseSeconds(text, what);
  const numbers = new Map<string, number>();
  let patternFile: string | undefined;
  for (const { letter, value } of options) {
    if (letter === "f") patternFile = value === "" ? undefined : value;
    else if (NUMERIC_OPTIONS.has(letter)) numbers.set(letter, parse(letter, value, `-${letter}`));
  }
  for (const [name, letter] of ENV_OVERRIDES) {
    const text = env[name];
    if (text) numbers.set(letter, parse(letter, text, name));
  }

  const long = (name: string, variable: string): { text: string; what: string } | undefined => {
    const fromEnv = env[variable];
    if (fromEnv) return { text: fromEnv, what: variable };
    const given = options.findLast((o) => o.letter === `--${name}`);
    return given && { text: given.value, what: `--${name}` };
  };
  // Every option's value is checked, even where a variable overrides it.
  for (const { letter, value } of options) {
    const setting = [...MEMORY_SETTINGS, ...CAP_SETTINGS].find(([option]) =>
      `--${option}` === letter
    );
    if (setting) parseSetting(setting[3], value, letter);
    if (letter === "--store") parseStore(value, letter);
    if (letter === "--store-timeout") parseStoreTimeout(value, letter);
  }
  /** A table of settings -> its values: the variable, else the option, else the default. */
  const settings = (
    table: ReadonlyArray<readonly [string, string, string, "seconds" | "count", number]>,
  ) =>
    Object.fromEntries(table.map(([option, variable, field, unit, fallback]) => {
      const given = long(option, variable);
      if (given) return [field, parseSetting(unit, given.text, given.what)];
      return [field, unit === "seconds" ? fallback * 1000 : fallback];
    }));
  const memory = settings(MEMORY_SETTINGS) as unknown as MemoryConfig;
  const caps = settings(CAP_SETTINGS) as unknown as Caps;
  const storeGiven = long("store", "SMTPDELAY_STORE");
  const store = storeGiven ? parseStore(storeGiven.text, storeGiven.what) : DEFAULT_STORE;
  const timeoutGiven = long("store-timeout", "SMTPDELAY_STORE_TIMEOUT");
  const storeTimeoutMs = timeoutGiven
    ? parseStoreTimeout(timeoutGiven.text, timeoutGiven.what)
    : DEFAULTS.storeTimeoutMs;
  const allowFile = long("allow", "SMTPDELAY_ALLOW")?.text || undefined;
  const warnings = withoutStore(options, env, storeGiven);

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
      standalone: options.some((o) => o.letter === "S"),
      justDelay: mode === "JUSTDELAY",
      nameServer: env.SMTPDELAY_DNS ? parseNameServer(env.SMTPDELAY_DNS) : undefined,
      lookupTimeoutMs: numbers.get("t") ?? DEFAULTS.lookupTimeoutMs,
      patternFile,
      memory: Object.freeze(memory),
      store,
      storeTimeoutMs,
      allowFile,
      caps: Object.freeze(caps),
      program: Object.freeze([...rest]),
    }),
  };
}
