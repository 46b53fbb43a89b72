/**
 * Hostile text in log lines (HTML, script, control bytes in a PTR name or
 * the early talker's data) never reaches the page, the SVG or the terminal
 * unescaped: printable markup comes out escaped, control bytes make a line
 * damaged (counted, skipped), other programs' lines are skipped.
 */
import assert from "node:assert/strict";
import { escapeHtml } from "../src/report/html.ts";
import { encodeTai64n } from "../src/report/parse.ts";
import { runReport } from "./fixtures/report.ts";
import {
  CONTROL_BYTES,
  HOSTILE_DAMAGED,
  HOSTILE_KEPT,
  HOSTILE_LOG,
  HOSTILE_OTHER,
  RAW_MARKUP,
} from "./fixtures/report_hostile.ts";
import { withTempDir } from "./fixtures/temp_dir.ts";

Deno.test("escapeHtml() escapes & < > \" and '", () => {
  assert.equal(
    escapeHtml(`<a href="x" title='y'>&amp;</a>`),
    "&#60;a href=&#34;x&#34; title=&#39;y&#39;&#62;&#38;amp;&#60;/a&#62;",
  );
});

Deno.test("report on hostile lines: counted right, and every output escapes them", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/log`, HOSTILE_LOG);
    const json = await runReport(["--json", `${dir}/log`]);
    assert.equal(json.code, 0, json.stderr);
    const r = JSON.parse(json.stdout);
    assert.deepEqual(r.input, {
      read: HOSTILE_KEPT.length + HOSTILE_DAMAGED.length + HOSTILE_OTHER.length,
      other: HOSTILE_OTHER.length,
      damaged: HOSTILE_DAMAGED.length,
      outside: 0,
    });
    assert.deepEqual(r.events, { EARLY: 3, REFUSED: 1 });
    // JSON keeps the text as logged: JSON.stringify escapes what JSON needs.
    assert.equal(r.top_early[0].ptr, "<script>alert(1)</script>");

    const out = await runReport(["--html", `${dir}/r.html`, "--svg", `${dir}/r.svg`, `${dir}/log`]);
    assert.equal(out.code, 0, out.stderr);
    const html = await Deno.readTextFile(`${dir}/r.html`);
    const svg = await Deno.readTextFile(`${dir}/r.svg`);
    for (const [name, text] of [["page", html], ["svg", svg], ["text", out.stdout]] as const) {
      assert.doesNotMatch(text, CONTROL_BYTES, `${name}: control bytes`);
      if (name === "text") continue;
      for (const raw of RAW_MARKUP) assert.doesNotMatch(text, raw, `${name}: ${raw}`);
    }
    // The names are there, escaped: in the page's tables and in the charts' labels.
    assert.match(html, /<td class="text">&#60;script&#62;alert\(1\)&#60;\/script&#62;<\/td>/);
    assert.match(html, /<td class="text">&#60;img\/src=x\/onerror=alert\(2\)&#62;<\/td>/);
    assert.match(
      html,
      /<td class="text">&#34;&#62;&#60;svg\/onload=alert\(3\)&#62;&#38;amp;&#39;<\/td>/,
    );
    assert.match(svg, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    assert.match(
      html,
      /Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'"/,
    );
    // The page has only the elements it writes itself.
    const tags = new Set([...html.matchAll(/<([a-zA-Z][\w-]*)/g)].map((m) => m[1]!.toLowerCase()));
    for (const tag of ["script", "img", "iframe", "object", "embed", "link", "a"]) {
      assert.ok(!tags.has(tag), `a <${tag}> element in the page`);
    }
  });
});

/** Zones in `lists=` that try to get into the outputs: printable, kept, and escaped. */
const HOSTILE_ZONES = [
  "<script>alert(6)</script>",
  `"><svg/onload=alert(7)>&amp;'`,
  "</td></tr></table><b>zone</b>." + "x".repeat(150),
];

Deno.test("report on hostile zones in lists=: kept as logged, escaped in the page, cut in the text", async () => {
  await withTempDir(async (dir) => {
    const at = (i: number) => encodeTai64n(Date.UTC(2026, 11, 1, 8, i));
    const lines = [
      `${at(0)} smtp-delay: info: LISTED pid=1 ip=192.0.2.9 tier=noptr ptr=- lookup=none ` +
      `delay=26.000 waited=0.050 action=421 memory=- score=3 lists=${HOSTILE_ZONES.join(",")}`,
      // A control byte in a zone: damaged, counted, skipped.
      `${at(1)} smtp-delay: info: LISTED pid=2 ip=192.0.2.9 tier=noptr ptr=- lookup=none ` +
      "delay=26.000 waited=0.050 action=421 memory=- score=3 lists=zen\x1b[31m.test",
    ];
    await Deno.writeTextFile(`${dir}/log`, lines.join("\n") + "\n");
    const json = await runReport(["--json", `${dir}/log`]);
    assert.equal(json.code, 0, json.stderr);
    const r = JSON.parse(json.stdout);
    assert.equal(r.input.damaged, 1);
    assert.deepEqual(r.events, { LISTED: 1 });
    assert.deepEqual(
      r.lists.zones.map((z: { zone: string }) => z.zone),
      [...HOSTILE_ZONES].sort(),
    );

    const out = await runReport(["--html", `${dir}/r.html`, "--svg", `${dir}/r.svg`, `${dir}/log`]);
    assert.equal(out.code, 0, out.stderr);
    const html = await Deno.readTextFile(`${dir}/r.html`);
    for (const [name, text] of [["page", html], ["text", out.stdout]] as const) {
      assert.doesNotMatch(text, CONTROL_BYTES, `${name}: control bytes`);
      if (name === "text") continue;
      for (const raw of [/<script/i, /<svg\/onload/i, /<b>zone/, /<\/td><\/tr><\/table><b>/]) {
        assert.doesNotMatch(text, raw, `${name}: ${raw}`);
      }
    }
    assert.match(html, /<td class="text">&#60;script&#62;alert\(6\)&#60;\/script&#62;<\/td>/);
    assert.match(
      html,
      /<td class="text">&#34;&#62;&#60;svg\/onload=alert\(7\)&#62;&#38;amp;&#39;<\/td>/,
    );
    assert.ok(
      out.stdout.split("\n").every((l) => l.length <= 100 && /^[\x20-\x7e]*$/.test(l)),
      out.stdout,
    );
    assert.match(
      out.stdout,
      /^ {2}<\/td><\/tr><\/table><b>zone<\/b>\.x+ +1 +1$/m,
      "a long zone cut",
    );
  });
});
