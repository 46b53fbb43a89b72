/**
 * The report's page as a person sees it: drawn by headless Chromium (Debian's
 * chromium, in scripts/deps.sh), with no network. The screenshot is not
 * blank and shows the colours of the outcomes and tiers; the DOM Chromium
 * built holds the three charts with their bars; and hostile lines are text
 * on the page, never elements.
 */
import assert from "node:assert/strict";
import { EVENT_COLORS, TIER_COLORS } from "../src/report/chart.ts";
import { dumpDom, haveChromium, screenshot } from "./fixtures/chromium.ts";
import { pixelsNear, readPng } from "./fixtures/png.ts";
import { runReport, SAMPLE } from "./fixtures/report.ts";
import { HOSTILE_LOG } from "./fixtures/report_hostile.ts";
import { withTempDir } from "./fixtures/temp_dir.ts";

const CHROMIUM = haveChromium();
if (!CHROMIUM) {
  console.warn(
    "report_page_test: no chromium, the page is not drawn (scripts/deps.sh installs it)",
  );
}

async function page(dir: string, log: string): Promise<string> {
  const out = await runReport(["--html", `${dir}/report.html`, log]);
  assert.equal(out.code, 0, out.stderr);
  return `${dir}/report.html`;
}

Deno.test({
  name: "the page drawn by Chromium: not blank, the outcomes' and tiers' colours on it",
  ignore: !CHROMIUM,
  async fn() {
    await withTempDir(async (dir) => {
      await screenshot(await page(dir, SAMPLE), `${dir}/report.png`, 1100, 2400);
      const image = await readPng(await Deno.readFile(`${dir}/report.png`));
      assert.deepEqual([image.width, image.height], [1100, 2400]);
      const white = pixelsNear(image, "#ffffff", 2);
      const all = image.width * image.height;
      assert.ok(all - white > all * 0.05, `only ${all - white} of ${all} pixels are not white`);
      // Bars of every outcome of the sample (in the chart over time, and the cards' borders);
      // the tiers of its early talkers (the waiting times, the top clients) share two of them.
      assert.equal(TIER_COLORS.noptr, EVENT_COLORS.EARLY);
      // The sample has no lists: LISTED's colour is not on its page.
      const sampleEvents = ["PASS", "EARLY", "CLOSED", "REFUSED", "BUSY"];
      for (const [what, colour] of Object.entries(EVENT_COLORS)) {
        if (!sampleEvents.includes(what)) continue;
        const n = pixelsNear(image, colour);
        assert.ok(n > 400, `${n} pixels of ${what}'s ${colour}`);
      }
    });
  },
});

Deno.test({
  name: "the page's DOM in Chromium: three charts, their bars, their axes; no script",
  ignore: !CHROMIUM,
  async fn() {
    await withTempDir(async (dir) => {
      const dom = await dumpDom(await page(dir, SAMPLE));
      assert.equal((dom.match(/<svg /g) ?? []).length, 3, "three charts");
      const bars = (dom.match(/aria-roledescription="bar"/g) ?? []).length;
      // Over time: 4 hours x 5 outcomes; waits: 13 bins x tiers x 2; top: 2 + 1.
      assert.ok(bars >= 20 + 2 * 13 + 3, `${bars} bars`);
      assert.match(dom, /aria-label="X-axis titled 'seconds waited'/);
      assert.match(dom, /Outcomes per hour \(UTC\)/);
      assert.doesNotMatch(dom, /<script/i);
    });
  },
});

Deno.test({
  name: "hostile lines are text in Chromium's DOM, never elements",
  ignore: !CHROMIUM,
  async fn() {
    await withTempDir(async (dir) => {
      await Deno.writeTextFile(`${dir}/log`, HOSTILE_LOG);
      const dom = await dumpDom(await page(dir, `${dir}/log`));
      assert.doesNotMatch(dom, /<script|<img|<svg\/onload|<b>bold/i);
      // Chromium writes text back escaped: the names are on the page as text.
      assert.match(dom, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
      assert.match(dom, /&lt;img\/src=x\/onerror=alert\(2\)&gt;/);
      assert.match(dom, /&lt;\/title&gt;&lt;\/style&gt;&lt;b&gt;bold&lt;\/b&gt;/);
      assert.match(
        dom,
        /<title>smtp-delay report: 2026-12-01 08:00:00 to 2026-12-01 08:03:00 UTC<\/title>/,
      );
    });
  },
});
