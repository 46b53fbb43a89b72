/**
 * What sets one client's screening in serve: the Config its environment
 * makes (the server's, tcpserver's variables and the rules'), shared by
 * every client whose SMTPDELAY* variables are the same, so that a waiting
 * client holds no Config of its own; the pattern files and allowlists,
 * read once and again after SIGHUP; and TCPLOCALHOST, looked up once per
 * local address.
 */
import { type Config, parseConfig } from "../config.ts";
import { parseIp } from "../ip.ts";
import * as log from "../log.ts";
import { lookupPtr } from "../rdns.ts";
import { type Exemptions, loadExemptions, readPatterns } from "../screen.ts";
import { UsageError } from "../usage_error.ts";
import type { ServeConfig } from "./options.ts";

/** Most Configs kept; beyond, the cache starts over (only hostile rules make that many). */
const MAX_CONFIGS = 256;

/** Under stress every delay is at most `capMs`. */
function underStress(config: Config, capMs: number): Config {
  const cap = (ms: number) => Math.min(ms, capMs);
  return Object.freeze({
    ...config,
    delayMs: Object.freeze({
      ptr: cap(config.delayMs.ptr),
      dynamic: cap(config.delayMs.dynamic),
      noptr: cap(config.delayMs.noptr),
    }),
  });
}

export class Settings {
  private readonly configs = new Map<string, Config>();
  private readonly patterns = new Map<string, RegExp[]>();
  /** Each allowlist's load, shared by the clients that arrive while it is read. */
  private readonly allows = new Map<string, Promise<Exemptions | undefined>>();
  private readonly localNames = new Map<string, Promise<string | undefined>>();

  /** `base`: the run file's Config, for the lookups serve makes itself. */
  constructor(private readonly options: ServeConfig, private readonly base: Config) {}

  /**
   * The Config of a client whose environment is `env`, of which `own` are
   * the variables of this connection (tcpserver's and the rules'); checked
   * as the filter checks its own (a UsageError for a bad value). A set of
   * variables that would do nothing is said once, when its Config is made.
   */
  configOf(env: Record<string, string>, own: Record<string, string>, stressed: boolean): Config {
    const key = JSON.stringify(Object.entries(own).filter(([k]) => k.startsWith("SMTPDELAY"))) +
      (stressed ? " stressed" : "");
    let config = this.configs.get(key);
    if (!config) {
      const request = parseConfig([...this.options.screening, "--", ...this.options.program], env);
      if (request.kind !== "run") throw new UsageError("-v is not a screening option");
      for (const warning of request.warnings) log.warning(warning);
      config = stressed ? underStress(request.config, this.options.stressDelayMs) : request.config;
      if (this.configs.size >= MAX_CONFIGS) this.configs.clear();
      this.configs.set(key, config);
    }
    return config;
  }

  /** The dynamic-name patterns of `config` (-f), read once; undefined: the built-in list. */
  patternsOf(config: Config): RegExp[] | undefined {
    const path = config.patternFile;
    if (path === undefined) return undefined;
    let list = this.patterns.get(path);
    if (!list) this.patterns.set(path, list = readPatterns(path));
    return list;
  }

  /** The allowlist of `config`, read once; one that cannot be read is tried again next time. */
  allowOf(config: Config): Promise<Exemptions | undefined> {
    const path = config.allowFile;
    if (path === undefined) return Promise.resolve(undefined);
    let loaded = this.allows.get(path);
    if (!loaded) {
      const loading = loadExemptions(path);
      this.allows.set(path, loaded = loading);
      loading.catch(() => {
        if (this.allows.get(path) === loading) this.allows.delete(path);
      });
    }
    return loaded;
  }

  /** TCPLOCALHOST for a local address: -l, or its PTR, looked up once. */
  localName(ip: string): Promise<string | undefined> {
    if (this.options.localName !== undefined) return Promise.resolve(this.options.localName);
    let name = this.localNames.get(ip);
    if (!name) {
      name = lookupPtr(
        parseIp(ip)!,
        this.base.nameServer,
        AbortSignal.timeout(this.base.lookupTimeoutMs),
      ).then((found) => found.kind === "found" ? found.name : undefined);
      this.localNames.set(ip, name);
    }
    return name;
  }

  /** SIGHUP: pattern files and allowlists are read again at their next use. */
  reload(): void {
    this.patterns.clear();
    this.allows.clear();
  }
}
