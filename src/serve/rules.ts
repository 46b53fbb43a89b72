/** tcpserver's rules: which tcprules record applies to a connection, and what it says. Pure. */

import type { Cdb } from "./cdb.ts";

/** What tcpserver looks rules up by. undefined means unknown; "" is a known, empty value. */
export type RuleQuery = {
  /** TCPREMOTEIP: a dotted quad, or IPv6 text as tcpserver writes it. */
  ip: string;
  /** TCPREMOTEHOST, lowercase as tcpserver writes it; undefined when there is no name. */
  host?: string | undefined;
  /** TCPREMOTEINFO (the ident answer); undefined when not looked up or not known. */
  info?: string | undefined;
};

/** What a rule says: allow or deny, and the variables it sets. */
export type Rule = { kind: "allow" | "deny"; env: Record<string, string> };

/** The first rule that applies; key is its address, undefined when none did (allow, no env). */
export type RuleMatch = Rule & { key: string | undefined };

/**
 * The keys tcpserver tries, first match wins (ucspi-tcp 0.88 rules.c): info@ip, info@=host, ip,
 * =host, the prefixes of ip that end with "." (or ":", as IPv6-patched tcpservers do), from the
 * longest, then =.suffixes of host from the longest, "=" (the last three only with a host), "".
 */
export function ruleKeys({ ip, host, info }: RuleQuery): string[] {
  const keys: string[] = [];
  if (info !== undefined) keys.push(`${info}@${ip}`);
  if (info !== undefined && host !== undefined) keys.push(`${info}@=${host}`);
  keys.push(ip);
  if (host !== undefined) keys.push(`=${host}`);
  for (let end = ip.length; end > 0; end--) {
    if (ip[end - 1] === "." || ip[end - 1] === ":") keys.push(ip.slice(0, end));
  }
  if (host !== undefined) {
    for (let at = 0; at < host.length; at++) if (host[at] === ".") keys.push(`=${host.slice(at)}`);
    keys.push("=");
  }
  keys.push("");
  return keys;
}

const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

/**
 * Reads a record's data as tcpserver does: NUL-terminated entries; "D..." denies, "+NAME=VALUE"
 * sets NAME (split at the first "=", a later entry wins, an empty NAME is kept as tcpserver
 * keeps it); other entries, and bytes after the last NUL, are ignored. tcprules writes nothing
 * for "allow". Names and values are decoded as UTF-8, because Deno encodes env strings as UTF-8
 * when it starts a child: valid UTF-8 reaches the child byte for byte, while bytes that are not
 * UTF-8 (which tcpserver would pass on as they are) become U+FFFD.
 */
export function parseRule(data: Uint8Array): Rule {
  let kind: Rule["kind"] = "allow";
  const env = new Map<string, string>();
  for (let at = 0, end = data.indexOf(0); end !== -1; at = end + 1, end = data.indexOf(0, at)) {
    const entry = data.subarray(at, end);
    const eq = entry.indexOf(0x3d); // =
    if (entry[0] === 0x44) kind = "deny"; // D
    if (entry[0] === 0x2b && eq !== -1) { // +
      env.set(decoder.decode(entry.subarray(1, eq)), decoder.decode(entry.subarray(eq + 1)));
    }
  }
  return { kind, env: Object.fromEntries(env) }; // fromEntries: "__proto__" is a plain name
}

/** The first rule for `query` in a rules table; `find` gives a key's record data (tcprules cdb). */
export function lookupRule(
  find: (key: string) => Uint8Array | undefined,
  query: RuleQuery,
): RuleMatch {
  for (const key of ruleKeys(query)) {
    const data = find(key);
    if (data !== undefined) return { ...parseRule(data), key };
  }
  return { kind: "allow", env: {}, key: undefined };
}

/** lookupRule() in a cdb made by tcprules; throws CdbError if the file is corrupt. */
export function lookupRuleInCdb(cdb: Cdb, query: RuleQuery): RuleMatch {
  return lookupRule((key) => cdb.find(key), query);
}
