/**
 * getopt(3) as djb's programs use it, for every command of smtp-delay (the
 * filter, `serve`, `state`): the caller names the option letters and long
 * options it takes, and gets the options in order and the words after them.
 */
import { UsageError } from "./usage_error.ts";

/** One parsed option: its name (a letter, or `--name` for a long one) and its value ("" for none). */
export interface Option {
  readonly name: string;
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

/** Long options without a value that every command takes. */
const LONG_FLAGS: ReadonlySet<string> = new Set(["help", "version"]);

/**
 * Options first, clustered flags (`-Sv`), values attached or separate
 * (`-d5`, `-d 5`), `--` ends the options, and the first word that is not an
 * option starts the program. Long options take a value, attached or
 * separate (`--store URL`, `--store=URL`), but for `--help` and
 * `--version`, which every command takes and which take none. Throws a
 * UsageError for an option `set` does not have, or one without its value.
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
      const equals = arg.indexOf("=");
      const name = arg.slice(2, equals < 0 ? undefined : equals);
      if (LONG_FLAGS.has(name) && equals < 0) {
        options.push({ name: `--${name}`, value: "" });
        continue;
      }
      if (!set.longs.has(name)) throw new UsageError(`unknown option "--${name}"`);
      const value = equals < 0 ? valueAfter(`--${name}`) : arg.slice(equals + 1);
      options.push({ name: `--${name}`, value });
      continue;
    }
    for (let j = 1; j < arg.length; j++) {
      const letter = arg[j]!;
      if (set.flags.has(letter)) {
        options.push({ name: letter, value: "" });
      } else if (set.values.has(letter)) {
        const value = arg.slice(j + 1) || valueAfter(`-${letter}`);
        options.push({ name: letter, value });
        break;
      } else {
        throw new UsageError(set.refused?.(letter) ?? `unknown option "-${letter}"`);
      }
    }
  }
  return { options, rest: args.slice(i) };
}
