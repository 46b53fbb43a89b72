/**
 * The store URL (`--store`, SMTPDELAY_STORE) -> which store and where. The
 * one grammar: config checks the URL with it at start (exit 100), and the
 * stores open what it gives; a URL that passes here is one a store takes.
 * Cheap to import (config does, on every connection): no store is loaded.
 *
 *     none
 *     sqlite:/ABSOLUTE/PATH                       a file, not a directory
 *     redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]
 *
 * Redis: HOST is a name (letters, digits, `-`, `_`, dots), an IPv4 address,
 * or an IPv6 address in brackets; PORT 1..65535 (6379); DB 0..999999999
 * (0). USER and PASSWORD are percent-decoded (`%40` for `@`, `%2F` for `/`);
 * the last `@` before the path ends them. A password alone authenticates as
 * Redis's `default` user; a user needs a password. No query, no fragment, no
 * space or control character (percent-encode them in a password).
 */
import { parseIp } from "../ip.ts";
import { UsageError } from "../usage_error.ts";

/** A Redis server, as the Redis store connects to it. */
export interface RedisTarget {
  /** Host name or IP address (an IPv6 address without its brackets). */
  readonly host: string;
  readonly port: number;
  readonly db: number;
  /** ACL user (Redis 6 and later); the password alone authenticates as `default`. */
  readonly username?: string;
  readonly password?: string;
  /** `host:port` (`[v6]:port`), for messages: never the password. */
  readonly name: string;
}

/** Which store a URL names. */
export type StoreUrl =
  | { readonly kind: "none" }
  | { readonly kind: "sqlite"; readonly path: string }
  | { readonly kind: "redis"; readonly target: RedisTarget };

/** A store as messages name it: its URL without the user or password. */
export function formatStoreUrl(store: StoreUrl): string {
  switch (store.kind) {
    case "none":
      return "none";
    case "sqlite":
      return `sqlite:${store.path}`;
    case "redis":
      return `redis://${store.target.name}/${store.target.db}`;
  }
}

/** The forms, as usage errors name them. */
const STORE_FORMS = "none, sqlite:/PATH or redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]";

const REDIS_FORM = "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]";
const DEFAULT_PORT = 6379;
/** Host name labels: letters, digits, `-` and `_`, joined by single dots, an optional final dot. */
const HOST_NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$/;

/**
 * Parses a store URL; throws a UsageError naming `what` (the option or
 * variable it came from) and quoting the URL without its password.
 */
export function parseStoreUrl(text: string, what: string): StoreUrl {
  if (text === "none") return { kind: "none" };
  if (text.startsWith("sqlite:")) {
    const path = text.slice("sqlite:".length);
    if (!path.startsWith("/") || path.endsWith("/") || path.includes("\0")) {
      throw new UsageError(
        `${what} wants sqlite:/PATH, an absolute path to a file, got "${hidePassword(text)}"`,
      );
    }
    return { kind: "sqlite", path };
  }
  if (text.startsWith("redis://")) {
    const target = parseRedis(text.slice("redis://".length));
    if (typeof target === "string") {
      throw new UsageError(`${what} wants ${REDIS_FORM}, got "${hidePassword(text)}": ${target}`);
    }
    return { kind: "redis", target };
  }
  const why = text.startsWith("rediss://") ? ": Redis over TLS (rediss://) is not supported" : "";
  throw new UsageError(`${what} wants ${STORE_FORMS}, got "${hidePassword(text)}"${why}`);
}

/** The Redis URL after `redis://`, or why it is not one. */
function parseRedis(rest: string): RedisTarget | string {
  if (/[\0- \x7f]/.test(rest)) {
    return "a space or control character (percent-encode it in a password)";
  }
  if (/[?#]/.test(rest)) return "no ?query or #fragment (in a password, write ? as %3F, # as %23)";
  const slash = rest.indexOf("/");
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? "" : rest.slice(slash);
  const at = authority.lastIndexOf("@");
  const userinfo = at < 0 ? undefined : authority.slice(0, at);
  const hostPort = authority.slice(at + 1);
  if (path.includes("@")) return "a / before the @ (in a password, write / as %2F)";

  const address = hostPort.startsWith("[")
    ? /^\[([^\]]*)\](?::(.*))?$/.exec(hostPort)
    : /^([^:]*)(?::([^:]*))?$/.exec(hostPort);
  if (!address) {
    return hostPort.startsWith("[")
      ? `"${hostPort}" is not [IPV6] or [IPV6]:PORT`
      : "an IPv6 address goes in brackets ([::1]:6379)";
  }
  const host = address[1]!;
  const portText = address[2];
  if (host === "") return "no host";
  if (hostPort.startsWith("[")) {
    if (!host.includes(":") || host.includes("%") || !parseIp(host)) {
      return `"[${host}]" is not an IPv6 address in brackets`;
    }
  } else if (/^[0-9.]+$/.test(host)) {
    if (parseIp(host)?.family !== 4) return `"${host}" is not an IPv4 address`;
  } else if (!HOST_NAME.test(host)) {
    return `"${host}" is not a host name`;
  }

  let port = DEFAULT_PORT;
  if (portText !== undefined) {
    port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 1 && port <= 65535)) return `the port "${portText}" is not from 1 to 65535`;
  }

  if (!/^(\/([0-9]{1,9})?)?$/.test(path)) {
    return `the path "${path}" is not a database number from 0 to 999999999`;
  }
  const db = path.length > 1 ? Number(path.slice(1)) : 0;

  let username = "", password = "";
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(":");
    if (colon < 0 && userinfo !== "") {
      return "a user without a password (the password alone is redis://:PASSWORD@HOST)";
    }
    try {
      username = decodeURIComponent(userinfo.slice(0, Math.max(colon, 0)));
      password = decodeURIComponent(userinfo.slice(colon + 1));
    } catch {
      return "bad percent-encoding in the user or the password";
    }
    if (username !== "" && password === "") return "a user without a password";
  }
  return {
    host,
    port,
    db,
    ...(username === "" ? {} : { username }),
    ...(password === "" ? {} : { password }),
    name: `${host.includes(":") ? `[${host}]` : host}:${port}`,
  };
}

/**
 * A URL as messages may quote it: `scheme://user:***@...`, or
 * `scheme://***@...` when the part before the `@` has no colon (most often
 * a password that lost its colon). Up to the last `@`: in a URL that does
 * not parse, the password may hold a `/`, `?` or `#`.
 */
function hidePassword(text: string): string {
  return text.replace(
    /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)(.*)@/s,
    (_, scheme: string, userinfo: string) => {
      const colon = userinfo.indexOf(":");
      return `${scheme}${colon < 0 ? "***" : `${userinfo.slice(0, colon)}:***`}@`;
    },
  );
}
