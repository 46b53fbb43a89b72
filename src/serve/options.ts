/**
 * `smtp-delay serve` command line -> ServeConfig. Pure: the caller passes the
 * arguments (after `serve`), the environment and /etc/services' text.
 *
 * tcpserver's letters keep tcpserver's meaning, except where the screening
 * already owns the letter (-d -D -P -t): those are the screening's, and
 * tcpserver's -d/-D (Nagle), -p/-P (paranoid) and -t (ident timeout) are not
 * taken. -v is tcpserver's verbosity here, not the version.
 */
import { FILTER_OPTIONS, MAX_COUNT } from "../config.ts";
import { type OptionSet, scanOptions } from "../getopt.ts";
import { type Ip, parseIp } from "../ip.ts";
import { UsageError } from "../usage_error.ts";
import { type Net, parseNets } from "./proxy.ts";

export const SERVE_USAGE = "usage: smtp-delay serve [-1hHqQvRUX] [-c N] [-x rules.cdb] " +
  "[-l NAME] [-b N] [-u UID] [-g GID] [--waiting N] [--per-ip N] [--stress N] [--stress-delay N] " +
  "[--metrics HOST:PORT] [--proxy CIDR,...] [screening options] " +
  "HOST PORT prog [arg ...]";

/** The server's own settings; the screening's come from parseConfig per connection. */
export interface ServeConfig {
  readonly ip: Ip;
  readonly port: number;
  /** -c: children (handed-on sessions) running at once [40]. */
  readonly maxChildren: number;
  /** --waiting: clients in the screening at once [1000]; beyond, 421. */
  readonly maxWaiting: number;
  /** --per-ip: connections (waiting or in a session) per IPv4 address or IPv6 /64 [50]; 0: no cap. */
  readonly maxPerIp: number;
  /** --stress: percent of --waiting from which the delays shrink [90]; 0: never. */
  readonly stressPercent: number;
  /** --stress-delay: longest delay under stress, ms [2 s]. */
  readonly stressDelayMs: number;
  /** -x: the tcprules cdb; -X: a missing file means no rules. */
  readonly rulesFile: string | undefined;
  readonly rulesMissingOk: boolean;
  /** -h (default) / -H: look up the client's name and set TCPREMOTEHOST. */
  readonly lookupRemote: boolean;
  /** -l: TCPLOCALHOST; undefined: the local address's PTR, looked up once. */
  readonly localName: string | undefined;
  /** -b: the listen backlog [4096]; the kernel caps it at net.core.somaxconn. */
  readonly backlog: number;
  /** -q 0, -Q 1 (default), -v 2: which tcpserver lines are logged. */
  readonly verbosity: 0 | 1 | 2;
  /** -U (UID, GID from the environment), -u, -g: drop root after binding. */
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  /** -1: print the local port on stdout once listening. */
  readonly printPort: boolean;
  /** --metrics: where the Prometheus endpoint listens; absent: no endpoint. */
  readonly metrics?: ListenAddress;
  /**
   * --proxy: the load balancers whose connections start with a PROXY
   * protocol header (proxy.ts); absent: none, every peer is the client.
   */
  readonly proxy?: readonly Net[];
  /** The screening's options, as parseConfig takes them (program appended). */
  readonly screening: readonly string[];
  readonly program: readonly string[];
}

/**
 * -b's default. tcpserver's 20 dates from a server that stops accepting at
 * -c and lets the backlog hold the rest; serve accepts every client at once
 * (into the screening, or to answer it 421), so the backlog only has to hold
 * a burst until the next accept. A connection that finds the queue full
 * never reaches serve: the kernel drops its handshake and the client, which
 * believes it is connected, waits for a retransmission (seconds to minutes).
 * 4096 is Linux's own cap (net.core.somaxconn since 5.4).
 */
const BACKLOG = 4096;

const SERVE_FLAGS = new Set(["1", "h", "H", "q", "Q", "v", "R", "U", "X"]);
const SERVE_VALUES = new Set(["c", "x", "l", "b", "u", "g"]);
const SERVE_LONG = new Set(["waiting", "per-ip", "stress", "stress-delay", "metrics", "proxy"]);
/** tcpserver options whose letters smtp-delay does not take (or uses for the screening). */
const NOT_TAKEN = new Set(["p", "r", "o", "O", "B", "4", "6", "I"]);

function count(text: string, what: string, min: number): number {
  if (!/^[0-9]{1,7}$/.test(text) || Number(text) < min || Number(text) > MAX_COUNT) {
    throw new UsageError(`${what} wants a whole number from ${min} to ${MAX_COUNT}, got "${text}"`);
  }
  return Number(text);
}

/** Whether `text` is a uid or gid: 0 to 4294967294 (the largest is "no change" to setuid). */
function isId(text: string): boolean {
  return /^[0-9]{1,10}$/.test(text) && Number(text) <= 4_294_967_294;
}

function id(text: string, what: string): number {
  if (!isId(text)) throw new UsageError(`${what} wants a user or group id, got "${text}"`);
  return Number(text);
}

/** -U: UID and GID as envuidgid sets them. */
function fromEnvuidgid(env: Readonly<Record<string, string | undefined>>): [number, number] {
  const uid = env.UID ?? "";
  const gid = env.GID ?? "";
  if (!isId(uid) || !isId(gid)) {
    throw new UsageError(
      "-U wants UID and GID in the environment (run serve under envuidgid), " +
        `got UID="${uid}" GID="${gid}"`,
    );
  }
  return [Number(uid), Number(gid)];
}

function percent(text: string, what: string): number {
  if (!/^[0-9]{1,3}$/.test(text) || Number(text) > 100) {
    throw new UsageError(`${what} wants a whole percentage from 0 to 100, got "${text}"`);
  }
  return Number(text);
}

/** The port of a service name in /etc/services' text (tcp), or of a number. */
export function parsePort(text: string, services: string): number {
  if (/^[0-9]{1,5}$/.test(text)) {
    const port = Number(text);
    if (port <= 65535) return port;
  } else if (/^[a-z][a-z0-9-]*$/i.test(text)) {
    for (const line of services.split("\n")) {
      const words = line.replace(/#.*/, "").trim().split(/\s+/);
      const [name, proto, ...aliases] = words;
      const m = /^([0-9]{1,5})\/tcp$/.exec(proto ?? "");
      if (m && (name === text || aliases.includes(text))) {
        if (Number(m[1]) <= 65535) return Number(m[1]);
        break; // a broken /etc/services line
      }
    }
  }
  throw new UsageError(`PORT wants a number from 0 to 65535 or a tcp service, got "${text}"`);
}

/** HOST: an IPv4 or IPv6 address; `0` is 0.0.0.0, as in tcpserver. */
export function parseHost(text: string): Ip {
  const ip = parseIp(text === "0" ? "0.0.0.0" : text);
  if (!ip) throw new UsageError(`HOST wants an IP address or 0, got "${text}"`);
  return ip;
}

/** An address to listen on, as Deno.listen takes it (an IPv6 address without brackets). */
export interface ListenAddress {
  readonly hostname: string;
  readonly port: number;
}

/**
 * `--metrics HOST:PORT`: an IPv4 address or a bracketed IPv6 one, and a port
 * from 1 to 65535, both required. There is no default: the endpoint listens
 * only where the admin said (127.0.0.1:9465, not the clients' address).
 */
export function parseListenAddress(text: string, what: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(text);
  const host = m?.[1] ?? m?.[2];
  const ip = host === undefined ? undefined : parseIp(host);
  const port = Number(m?.[3]);
  if (!ip || (ip.family === 6) !== (m?.[1] !== undefined) || port < 1 || port > 65535) {
    throw new UsageError(
      `${what} wants an IP address and a port, as 127.0.0.1:9465 or [::1]:9465, got "${text}"`,
    );
  }
  return { hostname: host!, port };
}

/** serve's letters and long options, and the screening's. */
const SERVE_OPTIONS: OptionSet = {
  flags: new Set([...SERVE_FLAGS, "S"]), // -v is serve's verbosity, not the version
  values: new Set([...SERVE_VALUES, ...FILTER_OPTIONS.values]),
  longs: new Set([...SERVE_LONG, ...FILTER_OPTIONS.longs]),
  refused: (letter) =>
    NOT_TAKEN.has(letter)
      ? `option "-${letter}" of tcpserver is not taken by smtp-delay serve`
      : undefined,
};

/** --help or --version among serve's options (before HOST), if asked for. */
export function serveAsks(args: readonly string[]): "--help" | "--version" | undefined {
  const { options } = scanOptions(args, SERVE_OPTIONS);
  if (options.some((o) => o.name === "--help")) return "--help";
  return options.some((o) => o.name === "--version") ? "--version" : undefined;
}

/**
 * Splits the command line: the server's options here, the screening's
 * passed on (checked later by parseConfig), then HOST PORT prog.
 */
export function parseServe(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  services: string,
): ServeConfig {
  const { options, rest } = scanOptions(args, SERVE_OPTIONS);
  const mine = options.filter((o) =>
    SERVE_FLAGS.has(o.name) || SERVE_VALUES.has(o.name) || SERVE_LONG.has(o.name.slice(2))
  );
  // The rest are the screening's, passed on as words for parseConfig.
  const screening = options.filter((o) => !mine.includes(o)).flatMap((o) =>
    o.name.startsWith("--")
      ? [`${o.name}=${o.value}`]
      : o.value === "" && !FILTER_OPTIONS.values.has(o.name)
      ? [`-${o.name}`]
      : [`-${o.name}`, o.value]
  );
  const [hostText, portText, ...program] = rest;
  if (hostText === undefined || portText === undefined || program.length === 0) {
    throw new UsageError(
      `no ${
        hostText === undefined ? "HOST" : portText === undefined ? "PORT" : "program"
      } (${SERVE_USAGE})`,
    );
  }
  const last = (letter: string) => mine.findLast((o) => o.name === letter)?.value;
  const has = (letter: string) => mine.some((o) => o.name === letter);
  const lastOf = (letters: string[]) => mine.findLast((o) => letters.includes(o.name))?.name;
  // -U (UID and GID from envuidgid), -u, -g: the last one given wins, as in tcpserver.
  let uid: number | undefined;
  let gid: number | undefined;
  for (const { name: letter, value } of mine) {
    if (letter === "U") [uid, gid] = fromEnvuidgid(env);
    else if (letter === "u") uid = id(value, "-u");
    else if (letter === "g") gid = id(value, "-g");
  }
  const verbosity = ({ q: 0, Q: 1, v: 2 } as const)[lastOf(["q", "Q", "v"]) as "q" | "Q" | "v"] ??
    1;
  const stress = last("--stress");
  const stressDelay = last("--stress-delay");
  return Object.freeze({
    ip: parseHost(hostText),
    port: parsePort(portText, services),
    maxChildren: last("c") === undefined ? 40 : count(last("c")!, "-c", 1),
    maxWaiting: last("--waiting") === undefined ? 1000 : count(last("--waiting")!, "--waiting", 1),
    maxPerIp: last("--per-ip") === undefined ? 50 : count(last("--per-ip")!, "--per-ip", 0),
    stressPercent: stress === undefined ? 90 : percent(stress, "--stress"),
    stressDelayMs: stressDelay === undefined ? 2000 : secondsMs(stressDelay, "--stress-delay"),
    rulesFile: last("x"),
    rulesMissingOk: has("X"),
    lookupRemote: lastOf(["h", "H"]) !== "H",
    localName: last("l"),
    backlog: last("b") === undefined ? BACKLOG : count(last("b")!, "-b", 1),
    verbosity,
    uid,
    gid,
    printPort: has("1"),
    ...(last("--metrics") === undefined
      ? {}
      : { metrics: parseListenAddress(last("--metrics")!, "--metrics") }),
    ...(last("--proxy") === undefined ? {} : { proxy: parseNets(last("--proxy")!, "--proxy") }),
    screening: Object.freeze(screening),
    program: Object.freeze(program),
  });
}

function secondsMs(text: string, what: string): number {
  if (!/^[0-9]{1,3}(\.[0-9]{1,3})?$/.test(text) || Number(text) > 300) {
    throw new UsageError(`${what} wants seconds from 0 to 300, got "${text}"`);
  }
  return Math.round(Number(text) * 1000);
}
