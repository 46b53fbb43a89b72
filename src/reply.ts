/** SMTP reply lines and the texts the filter answers with. Pure. */

/** The answer to an early talker (with -S), and RBLSMTPD's text without -S. */
export const EARLY_TEXT = "You talked before my greeting; try again later (#4.5.0)";

/** The answer to a `noptr` client that -N turns away. */
export const REFUSED_TEXT = "No reverse DNS for your address; try again later (#4.7.1)";

/** The answer to a client in the penalty box (too many early talks). */
export const BOXED_TEXT = "You talked before my greeting too often; try again later (#4.7.1)";

/** The answer to a client over --max-conns or --max-rate. */
export const BUSY_TEXT = "Too many connections from your address; try again later (#4.7.0)";

/** Longest reply text kept, as rblsmtpd does. */
export const MAX_TEXT = 200;

/** Printable ASCII (32..126) only, anything else becomes `?`; cut at `max`. */
export function printable(text: string, max: number): string {
  return text.slice(0, max).replace(/[^\x20-\x7e]/g, "?");
}

/** One SMTP reply line: three-digit code, space, cleaned text, CRLF. */
export function reply(code: number, text: string): string {
  return `${code} ${printable(text, MAX_TEXT)}\r\n`;
}
