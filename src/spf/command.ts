/**
 * `smtp-delay allowlist spf DOMAIN ...`: the networks the domains' SPF
 * records pass (expand.ts), merged (cidr.ts), as an allowlist file for
 * `--allow` on stdout: a comment line naming the command, then for each
 * domain a comment line and its CIDRs, IPv4 then IPv6, none that a domain
 * before it already listed.
 *
 * The file is printed only when every domain was expanded (exit 0), so
 * that a cron job that writes a temporary file and renames it on success
 * never replaces a good file with a short one: nothing is printed when a
 * domain cannot be expanded (no good SPF record, nothing to list, every
 * address: exit 100, after every domain was tried, each failure on its own
 * line) or when the DNS fails (exit 111, at once). What the expansion
 * could not list (`ptr`, `exists:`, macros; where it stopped) is a warning
 * on stderr and is said in the domain's comment line.
 */
import { parseNameServer } from "../config.ts";
import { scanOptions } from "../getopt.ts";
import * as log from "../log.ts";
import { UsageError } from "../usage_error.ts";
import { formatCidr, type Range, size, subtract, toCidrs, union } from "./cidr.ts";
import { DEFAULT_TIMING, DnsFailure, DnsResolver, systemServers } from "./dns.ts";
import { expand, type Expansion, type Note, type Resolver } from "./expand.ts";
import { parseDomainSpec } from "./record.ts";

export const ALLOWLIST_USAGE = "usage: smtp-delay allowlist spf DOMAIN ...";

/** The domains asked for, lowercase, each once, in order; "help" for --help and --version. */
export function parseAllowlistArgs(args: readonly string[]): { domains: string[] } | "help" {
  const { options, rest } = scanOptions(args, {
    flags: new Set(),
    values: new Set(),
    longs: new Set(),
  });
  if (options.length > 0) return "help"; // --help or --version: the only options taken
  const [kind, ...words] = rest;
  if (kind !== "spf") {
    throw new UsageError(
      `${
        kind === undefined ? "no list" : `unknown list "${log.clean(kind)}"`
      } (${ALLOWLIST_USAGE})`,
    );
  }
  if (words.length === 0) throw new UsageError(`no DOMAIN (${ALLOWLIST_USAGE})`);
  const domains: string[] = [];
  for (const word of words) {
    const spec = parseDomainSpec(word);
    if (spec?.kind !== "name" || !/^[a-z0-9_.-]+$/.test(spec.name)) {
      throw new UsageError(`not a domain: "${log.clean(word)}"`);
    }
    if (!domains.includes(spec.name)) domains.push(spec.name);
  }
  return { domains };
}

/** What the command does: the file to print, or the lines that say why there is none. */
export type Outcome =
  | { readonly code: 0; readonly text: string; readonly warnings: readonly string[] }
  | {
    readonly code: 100 | 111;
    readonly fatal: readonly string[];
    readonly warnings: readonly string[];
  };

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** A note as a warning line's message, against the top domain `top`. */
export function describeNote(top: string, note: Note): string {
  const inDomain = note.domain === top ? "" : ` in ${note.domain}`;
  if (note.kind === "unexpandable") {
    const forTop = note.domain === top ? "" : ` (for ${top})`;
    return `unable to expand ${note.term}${inDomain}${forTop}: ${note.why}; nothing listed for it`;
  }
  const family = note.families.length === 1 ? ` for IPv${note.families[0]}` : "";
  return `unable to expand ${top} past ${note.term}${inDomain}${family}: ${note.why}; ` +
    "the ranges before it are kept";
}

/** Printable ASCII only: what comes from the DNS never makes a second line of the file. */
const printable = (text: string) => text.replace(/[^ -~]/g, "?");

/** What a domain's comment line says of its ranges that a domain before it listed. */
const aboveNote = (listed: number, others: boolean) =>
  !others ? "" : listed === 0 ? " (all listed above)" : " (its others listed above)";

/** A domain's comment line: its count of ranges, its lookups, what was not expanded, where it stopped. */
export function commentLine(
  expansion: Expansion & { kind: "expanded" },
  listed: number,
  others: boolean,
): string {
  const parts = [
    `# ${expansion.domain}: ${plural(listed, "range")}${aboveNote(listed, others)}, ` +
    plural(expansion.lookups, "DNS lookup"),
  ];
  const unexpanded = [
    ...new Set(expansion.notes.filter((n) => n.kind === "unexpandable").map((n) => n.term)),
  ];
  if (unexpanded.length > 0) parts.push(`not expanded: ${unexpanded.join(" ")}`);
  for (const note of expansion.notes) {
    if (note.kind !== "stopped") continue;
    const family = note.families.length === 1 ? ` for IPv${note.families[0]}` : "";
    const inDomain = note.domain === expansion.domain ? "" : ` in ${note.domain}`;
    parts.push(`stopped at ${note.term}${inDomain}${family}: ${note.why}`);
  }
  return printable(parts.join("; "));
}

/**
 * The allowlist of `domains`, expanded over `resolver`: the file, or why
 * there is none (exit 100 once every domain was tried, 111 at the first
 * DNS failure). Never throws for the DNS.
 */
export async function buildAllowlist(
  domains: readonly string[],
  resolver: Resolver,
): Promise<Outcome> {
  const warnings: string[] = [];
  const fatal: string[] = [];
  const lines = [`# smtp-delay allowlist spf ${domains.join(" ")}`];
  let listed: Range[] = [];
  for (const domain of domains) {
    let expansion: Expansion;
    try {
      expansion = await expand(domain, resolver);
    } catch (e) {
      if (!(e instanceof DnsFailure)) throw e;
      return { code: 111, fatal: [...fatal, `${e.message} (expanding ${domain})`], warnings };
    }
    warnings.push(...new Set(expansion.notes.map((n) => describeNote(domain, n))));
    if (expansion.kind === "failed") {
      fatal.push(`unable to expand ${domain}: ${expansion.reason}`);
      continue;
    }
    const fresh = subtract(expansion.ranges, listed);
    listed = union([...listed, ...expansion.ranges]);
    const cidrs = toCidrs(fresh);
    const others = size(fresh) !== size(expansion.ranges);
    lines.push(commentLine(expansion, cidrs.length, others), ...cidrs.map(formatCidr));
  }
  if (fatal.length > 0) return { code: 100, fatal, warnings };
  return { code: 0, text: lines.join("\n") + "\n", warnings };
}

/** Writes all of `text` on stdout. */
function print(text: string): void {
  let bytes = new TextEncoder().encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(Deno.stdout.writeSync(bytes));
}

/** `smtp-delay allowlist ARGS`, with the environment: returns the exit code. */
export async function allowlist(
  args: readonly string[],
  env: Readonly<Record<string, string>>,
): Promise<number> {
  const asked = parseAllowlistArgs(args);
  if (asked === "help") {
    print(ALLOWLIST_USAGE + "\n");
    return 0;
  }
  const servers = env.SMTPDELAY_DNS ? [parseNameServer(env.SMTPDELAY_DNS)] : systemServers();
  const outcome = await buildAllowlist(
    asked.domains,
    new DnsResolver({ servers, ...DEFAULT_TIMING }),
  );
  for (const warning of outcome.warnings) log.warning(warning);
  if (outcome.code !== 0) {
    for (const line of outcome.fatal) log.fatal(line);
    return outcome.code;
  }
  try {
    print(outcome.text);
  } catch (e) {
    log.fatal(`unable to write the allowlist: ${log.reason(e)}`);
    return 111;
  }
  return 0;
}
