/**
 * The documentation against the program and the terminal: smtp-delay.8
 * renders without a warning and fits 80 columns; README.md reads in a
 * terminal (no prose line over 100 columns, no table row over 80); both name
 * every option that `smtp-delay --help` lists, so that an option added
 * without its documentation fails here; README's figures are figures that a
 * benchmark printed into bench/results/.
 */
import assert from "node:assert/strict";
import { PERMISSIONS, ROOT } from "./fixtures/source.ts";

const README = Deno.readTextFileSync(`${ROOT}README.md`);
const MAN_SOURCE = Deno.readTextFileSync(`${ROOT}smtp-delay.8`);

/** Whether groff runs here (Debian's groff-base, in scripts/deps.sh). */
function haveGroff(): boolean {
  try {
    return new Deno.Command("groff", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}
const GROFF = haveGroff();
if (!GROFF) {
  console.warn("doc_test: no groff, the man page is not rendered (scripts/deps.sh installs it)");
}

/** The man page as man shows it at 80 columns (line length 78), plain text, and groff's stderr. */
function render(): { text: string; warnings: string } {
  const out = new Deno.Command("groff", {
    // -P-cbou: plain text, no overstrikes for bold and underline.
    args: ["-man", "-Tutf8", "-ww", "-rLL=78n", "-rLT=78n", "-P-cbou", `${ROOT}smtp-delay.8`],
    env: { LC_ALL: "C.UTF-8" },
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  assert.ok(out.success, `groff exit ${out.code}`);
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { text: decode(out.stdout), warnings: decode(out.stderr) };
}

/** What `smtp-delay --help` prints, run as the tests run the program. */
async function help(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMISSIONS, `${ROOT}main.ts`, "--help"],
    cwd: ROOT,
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return text;
}

/** Every option word in a text: `-d`, `--store`, `-1`; not `smtp-delay` or `built-ins`. */
function optionsIn(text: string): Set<string> {
  return new Set(text.match(/(?<![\w-])--?[A-Za-z0-9][\w-]*/g) ?? []);
}

/** The man page's source as plain words: `\-` as `-`, font changes and `\&` gone. */
function manWords(source: string): string {
  return source.replace(/\\-/g, "-").replace(/\\f[BIRP]|\\&|\\e/g, "");
}

/**
 * README's lines outside code: fenced blocks and indented blocks (4 spaces
 * after a blank line) left out; a list item's indented lines are prose.
 */
function proseLines(markdown: string): Array<{ n: number; line: string }> {
  const out: Array<{ n: number; line: string }> = [];
  let fenced = false;
  let code = false;
  let blank = true;
  markdown.split("\n").forEach((line, i) => {
    if (line.startsWith("```")) fenced = !fenced;
    code = !fenced && line.startsWith("    ") && (blank || code);
    blank = line.trim() === "";
    if (!fenced && !code && !line.startsWith("```")) out.push({ n: i + 1, line });
  });
  return out;
}

Deno.test({
  name: "smtp-delay.8 renders with no groff warning and fits 80 columns",
  ignore: !GROFF,
  fn() {
    const { text, warnings } = render();
    assert.equal(warnings, "", "groff -ww warnings");
    const wide = text.split("\n").filter((l) => [...l].length > 80);
    assert.deepEqual(wide, [], "rendered lines over 80 columns");
  },
});

Deno.test({
  name: "smtp-delay.8 has the sections of a ucspi-tcp page, in order",
  fn() {
    const sections = [...MAN_SOURCE.matchAll(/^\.SH "?([^"\n]+)"?$/gm)].map((m) => m[1]);
    assert.deepEqual(sections, [
      "NAME",
      "SYNOPSIS",
      "DESCRIPTION",
      "OPTIONS",
      "ENVIRONMENT",
      "SIGNALS",
      "EXIT CODES",
      "LOG LINES",
      "FILES",
      "NOTES",
      "SEE ALSO",
    ]);
  },
});

Deno.test("every option --help lists has an entry in smtp-delay.8 and is named in README.md", async (t) => {
  const listed = [...optionsIn(await help())];
  // The filter's, the memory's, the caps', serve's: --help names them all.
  for (const must of ["-d", "-S", "--store", "--pass-ttl", "--max-idle", "-x", "--waiting"]) {
    assert.ok(listed.includes(must), `--help lists ${must}: ${listed.join(" ")}`);
  }
  // An entry: the line after .TP or .TQ starts with the option (.B, .BI, .BR).
  const entries = new Set(
    [...manWords(MAN_SOURCE).matchAll(/^\.T[PQ]\n\.B[IR]? (--?[A-Za-z0-9][\w-]*)/gm)]
      .map((m) => m[1]),
  );
  const readme = optionsIn(README);
  for (const option of listed) {
    await t.step(option, () => {
      assert.ok(entries.has(option), `smtp-delay.8 has no .TP entry for ${option}`);
      assert.ok(readme.has(option), `README.md never names ${option}`);
    });
  }
});

Deno.test("README.md fits a terminal: prose lines within 100 columns, table rows within 80", () => {
  const long = proseLines(README).filter(({ line }) =>
    [...line].length > (line.startsWith("|") ? 80 : 100)
  );
  assert.deepEqual(long.map(({ n, line }) => `${n}: ${line.length}`), []);
});

Deno.test("README.md names no issue number, and its Performance figures are in bench/results", () => {
  assert.doesNotMatch(README, /\bissues? #?\d+/i);
  const start = README.indexOf("\n## Performance\n");
  assert.ok(start >= 0, "README.md has a Performance section");
  const section = README.slice(start, README.indexOf("\n## ", start + 1));
  const results = [...Deno.readDirSync(`${ROOT}bench/results`)]
    .filter((e) => e.name.endsWith(".md"))
    .map((e) => Deno.readTextFileSync(`${ROOT}bench/results/${e.name}`))
    .join("\n");
  // Each number of the section's tables and text, file names and the like aside.
  const text = section.replace(/bench\/results\/\S+|bench\/RESULTS\.md|p(50|99)|[\w-]*-core/g, "");
  const figures = new Set(text.match(/(?<![\w.,])\d[\d,]*(\.\d+)?(?![\w])/g) ?? []);
  assert.ok(figures.size >= 20, [...figures].join(" "));
  const missing = [...figures].filter((figure) => {
    const escaped = figure.replace(/[.,]/g, (c) => `\\${c}`);
    return !new RegExp(`(?<![\\d.,])${escaped}(?![\\d]|\\.\\d)`).test(results);
  });
  assert.deepEqual(missing, [], "figures of README's Performance found in no bench/results file");
});

Deno.test("README's run file with lists: the shell's words are options the filter takes, silently", async () => {
  const { parseConfig } = await import("../src/config.ts");
  const start = README.indexOf("<!-- lists run file");
  const end = README.indexOf("<!-- end of lists run file -->", start);
  assert.ok(start >= 0 && end > start, "README.md has no lists run file");
  const script = README.slice(start, end).split("\n").filter((l) => l.startsWith("    "))
    .map((l) => l.slice(4)).join("\n").replaceAll("\\\n", " ");
  const command = script.split("\n").find((l) => l.startsWith("exec envuidgid"));
  assert.ok(command, script);
  const words = command.slice(command.indexOf(" smtp-delay ") + 12, command.indexOf(" softlimit "));
  // The shell splits and unquotes them, as it will in /service/qmail-smtpd/run.
  const out = new Deno.Command("sh", {
    args: ["-c", `set -- ${words}; printf '%s\\n' "$@"`],
    stdout: "piped",
  }).outputSync();
  assert.ok(out.success);
  const args = new TextDecoder().decode(out.stdout).trimEnd().split("\n");
  assert.ok(args.includes("zen.spamhaus.org=127.0.0.[2..11]*3"), args.join(" "));
  const request = parseConfig([...args, "qmail-smtpd"], {});
  if (request.kind !== "run") return assert.fail(request.kind);
  assert.deepEqual(request.warnings, []);
  assert.deepEqual(request.config.lists?.zones, [
    "zen.spamhaus.org",
    "bl.spamcop.net",
    "b.barracudacentral.org",
    "list.dnswl.org",
  ]);
  assert.equal(request.config.lists?.blockThreshold, 3);
});
