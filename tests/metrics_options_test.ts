import assert from "node:assert/strict";
import { METRICS_USAGE, parseMetricsArgs } from "../src/metrics/command.ts";
import { parseListenAddress, parseServe } from "../src/serve/options.ts";
import { UsageError } from "../src/usage_error.ts";
import { assertThrowsWith, assertUsageError } from "./fixtures/assert.ts";

Deno.test("parseListenAddress() takes an IP address and a port, both required", async (t) => {
  const rows: [string, string, number][] = [
    ["127.0.0.1:9465", "127.0.0.1", 9465],
    ["0.0.0.0:9465", "0.0.0.0", 9465],
    ["192.0.2.1:1", "192.0.2.1", 1],
    ["[::1]:9465", "::1", 9465],
    ["[2001:db8::25]:65535", "2001:db8::25", 65535],
  ];
  for (const [text, hostname, port] of rows) {
    await t.step(text, () => {
      assert.deepEqual(parseListenAddress(text, "--metrics"), { hostname, port });
    });
  }
});

Deno.test("parseListenAddress() refuses a default, a name, and a bad port", async (t) => {
  const rows: string[] = [
    "9465", // no host: no default address
    ":9465",
    "127.0.0.1", // no port
    "127.0.0.1:",
    "localhost:9465", // a name: say the address
    "::1:9465", // IPv6 without brackets
    "[127.0.0.1]:9465", // brackets around IPv4
    "127.0.0.1:0",
    "127.0.0.1:65536",
    "127.0.0.1:99999",
    "256.0.0.1:9465",
    "[::1]",
    "",
  ];
  for (const text of rows) {
    await t.step(JSON.stringify(text), () => {
      assertUsageError(
        () => parseListenAddress(text, "--metrics"),
        `--metrics wants an IP address and a port, as 127.0.0.1:9465 or [::1]:9465, got "${text}"`,
      );
    });
  }
});

Deno.test("parseServe() takes --metrics HOST:PORT, and has no endpoint without it", () => {
  const args = ["127.0.0.1", "25", "/bin/true"];
  assert.equal(parseServe(args, {}, "").metrics, undefined);
  assert.deepEqual(parseServe(["--metrics", "127.0.0.1:9465", ...args], {}, "").metrics, {
    hostname: "127.0.0.1",
    port: 9465,
  });
  assert.deepEqual(parseServe(["--metrics=[::1]:9465", ...args], {}, "").metrics, {
    hostname: "::1",
    port: 9465,
  });
  assert.deepEqual(
    parseServe(["--metrics", "127.0.0.1:1", "--metrics", "127.0.0.1:2", ...args], {}, "").metrics,
    { hostname: "127.0.0.1", port: 2 },
    "the last one wins",
  );
  // Not a screening option: nothing of it reaches parseConfig.
  assert.deepEqual(parseServe(["--metrics", "127.0.0.1:9465", ...args], {}, "").screening, []);
});

const NOW = Date.UTC(2026, 11, 5, 12, 0, 0);

Deno.test("parseMetricsArgs() takes HOST:PORT DIR and --since, in the report's TIME", async (t) => {
  await t.step("address and directory", () => {
    assert.deepEqual(parseMetricsArgs(["127.0.0.1:9465", "/var/log/qmail/smtpd"], NOW), {
      hostname: "127.0.0.1",
      port: 9465,
      dir: "/var/log/qmail/smtpd",
      sinceMs: undefined,
    });
  });
  await t.step("--since -2h", () => {
    const got = parseMetricsArgs(["--since", "-2h", "[::1]:9465", "/log"], NOW);
    assert.equal(got !== "help" && got.sinceMs, NOW - 2 * 3_600_000);
  });
  await t.step("--since=2026-12-05T08:00Z", () => {
    const got = parseMetricsArgs(["--since=2026-12-05T08:00Z", "127.0.0.1:9465", "/log"], NOW);
    assert.equal(got !== "help" && got.sinceMs, Date.UTC(2026, 11, 5, 8, 0));
  });
  await t.step("--help", () => assert.equal(parseMetricsArgs(["--help"], NOW), "help"));
});

Deno.test("parseMetricsArgs() refuses what it does not take", async (t) => {
  const rows: [string, string[], RegExp][] = [
    ["nothing", [], /^no HOST:PORT \(usage: smtp-delay metrics /],
    ["no directory", ["127.0.0.1:9465"], /^no DIR /],
    ["one word too many", ["127.0.0.1:9465", "/a", "/b"], /^too many words /],
    ["an unknown option", ["-x", "127.0.0.1:9465", "/a"], /^unknown option "-x"/],
    ["--since without a value", ["--since"], /^option --since needs a value/],
    ["a bad --since", ["--since", "soon", "127.0.0.1:9465", "/a"], /^--since wants /],
    ["a bad address", ["localhost:9465", "/a"], /^HOST:PORT wants an IP address and a port/],
  ];
  for (const [name, args, re] of rows) {
    await t.step(name, () => {
      assert.match(assertThrowsWith(() => parseMetricsArgs(args, NOW), UsageError).message, re);
    });
  }
  assert.equal(METRICS_USAGE, "usage: smtp-delay metrics [--since TIME] HOST:PORT DIR");
});
