/**
 * src/report/options.ts: `smtp-delay report`'s command line, and TIME as
 * ISO 8601 or relative to now.
 */
import assert from "node:assert/strict";
import { parseReportArgs, parseTime } from "../src/report/options.ts";
import { UsageError } from "../src/usage_error.ts";

const NOW = Date.UTC(2026, 11, 5, 12, 0, 0);
const H = 3_600_000;

Deno.test("parseTime() takes -N with s, m, h, d, w before now, and ISO 8601", async (t) => {
  const local = new Date(2026, 11, 1, 8, 30, 0).getTime();
  const rows: Array<[string, number]> = [
    ["-90s", NOW - 90_000],
    ["-30m", NOW - 30 * 60_000],
    ["-2h", NOW - 2 * H],
    ["-7d", NOW - 7 * 24 * H],
    ["-1w", NOW - 7 * 24 * H],
    ["-0h", NOW],
    ["2026-12-01", Date.UTC(2026, 11, 1)], // a date alone: midnight UTC
    ["2026-12-01T08:30Z", Date.UTC(2026, 11, 1, 8, 30)],
    ["2026-12-01T08:30:15.250Z", Date.UTC(2026, 11, 1, 8, 30, 15, 250)],
    ["2026-12-01T08:30:00+02:00", Date.UTC(2026, 11, 1, 6, 30)],
    ["2026-12-01T08:30:00+0200", Date.UTC(2026, 11, 1, 6, 30)],
    ["2026-12-01T08:30", local], // no zone: local time, as tai64nlocal shows it
    ["2026-12-01 08:30", local],
  ];
  for (const [text, want] of rows) {
    await t.step(text, () => assert.equal(parseTime(text, NOW, "--since"), want));
  }
});

Deno.test("parseTime() refuses anything else, naming the option and quoting the value", async (t) => {
  for (
    const text of [
      "",
      "2h",
      "-2",
      "-2y",
      "+2h",
      "-2 h",
      "yesterday",
      "2026-13-01",
      "12/01/2026",
      "2026-12-01T25:00Z",
    ]
  ) {
    await t.step(JSON.stringify(text), () =>
      assert.throws(
        () => parseTime(text, NOW, "--until"),
        (e: unknown) =>
          e instanceof UsageError && e.message.startsWith("--until wants an ISO 8601 time") &&
          e.message.endsWith(`got "${text}"`),
      ));
  }
});

Deno.test("parseReportArgs() reads options, then the inputs", async (t) => {
  const none = { sinceMs: undefined, untilMs: undefined };
  const rows: Array<[string[], object]> = [
    [[], { period: none, json: false, htmlFile: undefined, svgFile: undefined, inputs: [] }],
    [["--json", "/var/log/qmail/smtpd"], { json: true, inputs: ["/var/log/qmail/smtpd"] }],
    [["--since", "-2h", "a", "b"], {
      period: { sinceMs: NOW - 2 * H, untilMs: undefined },
      inputs: ["a", "b"],
    }],
    [["--since=-2h", "--until=-1h"], { period: { sinceMs: NOW - 2 * H, untilMs: NOW - H } }],
    [["--html", "r.html", "--svg=r.svg", "-"], {
      htmlFile: "r.html",
      svgFile: "r.svg",
      inputs: ["-"],
    }],
    [["--", "--json"], { json: false, inputs: ["--json"] }],
    [["x", "--json"], { json: false, inputs: ["x", "--json"] }],
    [["--help"], { help: true }],
  ];
  for (const [args, want] of rows) {
    await t.step(args.join(" ") || "(none)", () => {
      const got = parseReportArgs(args, NOW);
      for (const [k, v] of Object.entries(want)) {
        assert.deepEqual((got as unknown as Record<string, unknown>)[k], v, k);
      }
    });
  }
});

Deno.test("parseReportArgs() refuses what it does not take, with a UsageError", async (t) => {
  const rows: Array<[string[], RegExp]> = [
    [["-j"], /^unknown option "-j" \(usage: smtp-delay report /],
    [["--jsn"], /^unknown option "--jsn"/],
    [["--since"], /^option --since needs a value$/],
    [["--html"], /^option --html needs a value$/],
    [["--html="], /^--html wants a file name, got ""$/],
    [["--json=yes"], /^unknown option "--json"/],
    [
      ["--since", "-1h", "--until", "-2h"],
      /^--until must come after --since, got "-1h" and "-2h"$/,
    ],
    [["--since", "soon"], /^--since wants an ISO 8601 time/],
  ];
  for (const [args, want] of rows) {
    await t.step(args.join(" "), () =>
      assert.throws(
        () => parseReportArgs(args, NOW),
        (e: unknown) => e instanceof UsageError && want.test(e.message),
      ));
  }
});
