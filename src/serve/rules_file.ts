/**
 * The -x rules file, as tcpserver reads it: looked up for every connection,
 * so a file that tcprules replaces takes effect at the next client. The cdb
 * is kept in memory and read again when the file changes (or at SIGHUP).
 */
import { reason } from "../log.ts";
import { type Cdb, CdbError, openCdb } from "./cdb.ts";
import { lookupRuleInCdb, type RuleMatch } from "./rules.ts";

/**
 * A rule, or why there is none to trust (the client is then refused);
 * `fds`: the system was out of descriptors (EMFILE, ENFILE), not the file at fault.
 */
export type RulesAnswer = RuleMatch | { kind: "unreadable"; reason: string; fds?: true };

/** Whether a failure was the want of a descriptor. */
const outOfFds = (e: unknown) => {
  const code = (e as { code?: unknown })?.code;
  return code === "EMFILE" || code === "ENFILE";
};

export class Rules {
  private cdb: Cdb | undefined;
  private stamp = "";

  /** `missingOk` (-X): a file that does not exist means no rules. */
  constructor(private readonly path: string, private readonly missingOk: boolean) {}

  /** Drops the cached file: the next lookup reads it again. */
  forget(): void {
    this.cdb = undefined;
    this.stamp = "";
  }

  /** The rule for a client; tcpserver's lookup order (src/rules.ts). */
  lookup(ip: string, host: string | undefined): RulesAnswer {
    let stat: Deno.FileInfo;
    try {
      stat = Deno.statSync(this.path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound && this.missingOk) {
        return { kind: "allow", env: {}, key: undefined };
      }
      return { kind: "unreadable", reason: reason(e) };
    }
    const stamp = `${stat.ino}:${stat.size}:${stat.mtime?.getTime()}`;
    try {
      if (this.cdb === undefined || stamp !== this.stamp) {
        this.cdb = openCdb(Deno.readFileSync(this.path));
        this.stamp = stamp;
      }
      return lookupRuleInCdb(this.cdb, { ip, ...(host === undefined ? {} : { host }) });
    } catch (e) {
      this.forget();
      if (e instanceof CdbError || e instanceof Deno.errors.NotFound) {
        return { kind: "unreadable", reason: e.message };
      }
      return { kind: "unreadable", reason: reason(e), ...(outOfFds(e) ? { fds: true } : {}) };
    }
  }
}
