/**
 * A reverse DNS name -> a tier. Pure.
 *
 * `noptr`: no name. `dynamic`: the host labels (the name without its
 * registered domain) look like an end-user address. `ptr`: anything else.
 */
import { UsageError } from "./usage_error.ts";
import type { Ip } from "./ip.ts";

export type Tier = "ptr" | "dynamic" | "noptr";

/** What may stand before and after a token in host labels: `.`, `-`, `_`, a digit, an end. */
const BEFORE = "(^|[-._0-9])";
const AFTER = "([-._0-9]|$)";

/**
 * The built-in patterns, in the syntax of a pattern file: one regular
 * expression per line (JavaScript syntax, matched case-insensitively against
 * the host labels), `#` starts a comment. Conservative on purpose: each one is
 * a word providers put in end-user names, or a shape made of IP digits.
 */
export const BUILTIN_PATTERNS = `\
# words of access networks, as whole tokens (dsl-1-2 and ppp0 match, dynamo does not)
${BEFORE}[asvx]?dsl${AFTER}
${BEFORE}dial(up|in)?${AFTER}
${BEFORE}dyn(amic|ip)?${AFTER}
${BEFORE}dhcp${AFTER}
${BEFORE}pool${AFTER}
${BEFORE}ppp(oe)?${AFTER}
${BEFORE}cable${AFTER}
${BEFORE}cpe${AFTER}
${BEFORE}broadband${AFTER}
${BEFORE}(cust|customer)${AFTER}
${BEFORE}residential${AFTER}
# three or more numbers in a row, such as 203-0-113-7 or 7.113.0.203
(^|[^0-9])[0-9]{1,3}[-._][0-9]{1,3}[-._][0-9]{1,3}([^0-9]|$)
# a whole address written as one decimal number
[0-9]{9,}
`;

/** Parses pattern-file text; a line that is not a valid regular expression is a UsageError. */
export function parsePatterns(text: string, source = "built-in patterns"): RegExp[] {
  const patterns: RegExp[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "").trim();
    if (line === "" || line.startsWith("#")) return;
    try {
      patterns.push(new RegExp(line, "i"));
    } catch {
      throw new UsageError(`${source} line ${i + 1} is not a regular expression: "${line}"`);
    }
  });
  return patterns;
}

/** Second-level labels under a two-letter TLD that are public, as in co.uk or com.au. */
const PUBLIC_SECOND_LEVEL = new Set([
  "ac",
  "co",
  "com",
  "edu",
  "gob",
  "gov",
  "go",
  "ltd",
  "mil",
  "ne",
  "net",
  "nom",
  "or",
  "org",
  "plc",
  "sch",
]);

/**
 * The labels left of the registered domain, joined by dots: "mail" for
 * mail.dyn.com, "1-2-3-4.dsl" for 1-2-3-4.dsl.example.co.uk, "" for
 * example.com. An approximation of the public suffix list: the registered
 * domain is the last two labels, or three under a two-letter TLD whose second
 * label is a common public one (co.uk, com.au, ne.jp, ...).
 */
export function hostLabels(name: string): string {
  const labels = name.toLowerCase().replace(/\.$/, "").split(".");
  const tld = labels[labels.length - 1] ?? "";
  const second = labels[labels.length - 2] ?? "";
  const domainLabels = tld.length === 2 && PUBLIC_SECOND_LEVEL.has(second) ? 3 : 2;
  return labels.slice(0, Math.max(labels.length - domainLabels, 0)).join(".");
}

/**
 * True when the host labels hold the client's IPv4 address: its last three
 * numbers next to each other, in order or reversed, joined by one of `-._x`
 * (`0-2-10` or `10.2.0` for 192.0.2.10); or all of it as 12 zero-padded
 * digits (`192000002010`) or 8 hex digits (`c000020a`). Two numbers are not
 * enough: large senders name hosts like a8-30.smtp-out.amazonses.com.
 */
export function hasIpDigits(labels: string, ip: Ip): boolean {
  if (ip.family !== 4) return false;
  const [, second, third, fourth] = ip.bytes;
  const inARow = (x: number, y: number, z: number) =>
    `(^|[^0-9])${x}[-._x]${y}[-._x]${z}([^0-9]|$)`;
  const padded = [...ip.bytes].map((byte) => String(byte).padStart(3, "0")).join("");
  const hex = [...ip.bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return new RegExp(
    `${inARow(second!, third!, fourth!)}|${inARow(fourth!, third!, second!)}|` +
      `(^|[^0-9])${padded}([^0-9]|$)|(^|[^0-9a-f])${hex}([^0-9a-f]|$)`,
  ).test(labels);
}

/** The tier of a client whose PTR name is `name` (undefined: none). */
export function classify(name: string | undefined, ip: Ip, patterns: readonly RegExp[]): Tier {
  if (name === undefined || name === "") return "noptr";
  const labels = hostLabels(name);
  if (labels === "") return "ptr";
  if (hasIpDigits(labels, ip) || patterns.some((p) => p.test(labels))) return "dynamic";
  return "ptr";
}
