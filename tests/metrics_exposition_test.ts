import assert from "node:assert/strict";
import {
  CONTENT_TYPE,
  escapeHelp,
  escapeLabel,
  type Family,
  formatValue,
  render,
} from "../src/metrics/exposition.ts";

Deno.test("escapeLabel() escapes backslash, double quote and newline, nothing else", async (t) => {
  const rows: [string, string, string][] = [
    ["plain", "PASS", "PASS"],
    ["a dash", "-", "-"],
    ["backslash", "a\\b", "a\\\\b"],
    ["double quote", 'say "hi"', 'say \\"hi\\"'],
    ["newline", "a\nb", "a\\nb"],
    ["all three, in order", '\\"\n', '\\\\\\"\\n'],
    ["a CR and a tab stay as they are", "a\r\tb", "a\r\tb"],
    ["UTF-8 stays", "caf\u00e9", "caf\u00e9"],
  ];
  for (const [name, value, want] of rows) {
    await t.step(name, () => assert.equal(escapeLabel(value), want));
  }
});

Deno.test("escapeHelp() escapes backslash and newline, not a double quote", async (t) => {
  const rows: [string, string, string][] = [
    ["plain", "Clients in the screening now.", "Clients in the screening now."],
    ["backslash", "a\\b", "a\\\\b"],
    ["newline", "one\ntwo", "one\\ntwo"],
    ["double quote", 'the "ptr" tier', 'the "ptr" tier'],
  ];
  for (const [name, value, want] of rows) {
    await t.step(name, () => assert.equal(escapeHelp(value), want));
  }
});

Deno.test("formatValue() writes Go's floats, +Inf, -Inf and NaN", async (t) => {
  const rows: [number, string][] = [
    [0, "0"],
    [42, "42"],
    [0.262, "0.262"],
    [16.004, "16.004"],
    [Infinity, "+Inf"],
    [-Infinity, "-Inf"],
    [NaN, "NaN"],
    [1e21, "1e+21"],
  ];
  for (const [value, want] of rows) {
    await t.step(want, () => assert.equal(formatValue(value), want));
  }
});

Deno.test("render() writes HELP and TYPE before each family's samples, labels quoted", () => {
  const families: Family[] = [
    {
      name: "smtp_delay_connections_total",
      help: "Connections.\nBy outcome.",
      type: "counter",
      samples: [
        { labels: [["event", "PASS"], ["tier", "ptr"]], value: 3 },
        { labels: [["event", "EARLY"], ["tier", 'x"\\\n']], value: 0 },
      ],
    },
    {
      name: "smtp_delay_waiting",
      help: "Now.",
      type: "gauge",
      samples: [{ labels: [], value: 7 }],
    },
  ];
  assert.equal(
    render(families),
    [
      "# HELP smtp_delay_connections_total Connections.\\nBy outcome.",
      "# TYPE smtp_delay_connections_total counter",
      'smtp_delay_connections_total{event="PASS",tier="ptr"} 3',
      'smtp_delay_connections_total{event="EARLY",tier="x\\"\\\\\\n"} 0',
      "# HELP smtp_delay_waiting Now.",
      "# TYPE smtp_delay_waiting gauge",
      "smtp_delay_waiting 7",
      "",
    ].join("\n"),
  );
});

Deno.test("render() writes a histogram's buckets cumulative, +Inf last, then _sum and _count", () => {
  const text = render([{
    name: "smtp_delay_wait_seconds",
    help: "Waits.",
    type: "histogram",
    samples: [{
      labels: [["tier", "ptr"]],
      bounds: [0.3, 17, 300],
      // 2 at or under 0.3, 0 in (0.3, 17], 5 in (17, 300], 1 above 300
      counts: [2, 0, 5, 1],
      sum: 1234.5,
    }],
  }]);
  assert.equal(
    text,
    [
      "# HELP smtp_delay_wait_seconds Waits.",
      "# TYPE smtp_delay_wait_seconds histogram",
      'smtp_delay_wait_seconds_bucket{tier="ptr",le="0.3"} 2',
      'smtp_delay_wait_seconds_bucket{tier="ptr",le="17"} 2',
      'smtp_delay_wait_seconds_bucket{tier="ptr",le="300"} 7',
      'smtp_delay_wait_seconds_bucket{tier="ptr",le="+Inf"} 8',
      'smtp_delay_wait_seconds_sum{tier="ptr"} 1234.5',
      'smtp_delay_wait_seconds_count{tier="ptr"} 8',
      "",
    ].join("\n"),
  );
});

Deno.test("render() refuses a histogram whose counts do not match its bounds", () => {
  assert.throws(
    () =>
      render([{
        name: "h",
        help: "x",
        type: "histogram",
        samples: [{ labels: [], bounds: [1, 2], counts: [0, 0], sum: 0 }],
      }]),
    /histogram h has 2 counts for 2 bounds/,
  );
});

Deno.test("render() refuses names the format cannot carry", async (t) => {
  const rows: [string, Family][] = [
    ["a metric name with a dash", {
      name: "smtp-delay",
      help: "x",
      type: "gauge",
      samples: [],
    }],
    ["a label name with a dot", {
      name: "ok",
      help: "x",
      type: "gauge",
      samples: [{ labels: [["a.b", "v"]], value: 1 }],
    }],
  ];
  for (const [name, family] of rows) {
    await t.step(name, () => assert.throws(() => render([family]), /not a (metric|label) name/));
  }
});

Deno.test("the Content-Type is the text format's, version 0.0.4", () => {
  assert.equal(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
});
