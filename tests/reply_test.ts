import assert from "node:assert/strict";
import { EARLY_TEXT, MAX_TEXT, printable, REFUSED_TEXT, reply } from "../src/reply.ts";

Deno.test("reply() writes one SMTP reply line: code, space, text, CRLF", async (t) => {
  const rows: [421 | 451, string, string][] = [
    [451, "try again later", "451 try again later\r\n"],
    [421, "go away", "421 go away\r\n"],
    [451, "", "451 \r\n"],
    [451, EARLY_TEXT, "451 You talked before my greeting; try again later (#4.5.0)\r\n"],
    [421, REFUSED_TEXT, "421 No reverse DNS for your address; try again later (#4.7.1)\r\n"],
  ];
  for (const [code, text, want] of rows) {
    await t.step(`${code} ${JSON.stringify(text)}`, () => {
      assert.equal(reply(code, text), want);
    });
  }
});

Deno.test("reply() turns control characters and non-ASCII into ?", async (t) => {
  const rows: [string, string][] = [
    ["a\r\n250 ok", "451 a??250 ok\r\n"],
    ["a\nb", "451 a?b\r\n"],
    ["tab\there", "451 tab?here\r\n"],
    ["nul\0", "451 nul?\r\n"],
    ["del\x7f", "451 del?\r\n"],
    ["caf\u00e9", "451 caf?\r\n"],
    ["\u20ac5", "451 ?5\r\n"],
    ["spaces  kept ~!", "451 spaces  kept ~!\r\n"],
  ];
  for (const [text, want] of rows) {
    await t.step(JSON.stringify(text), () => {
      assert.equal(reply(451, text), want);
    });
  }
});

Deno.test("reply() keeps the line a single line whatever the text", () => {
  const line = reply(451, "x\r\n".repeat(50) + "\u0085\u2028\u2029");
  assert.ok(line.endsWith("\r\n"));
  assert.equal(line.indexOf("\r"), line.length - 2, `a CR inside ${JSON.stringify(line)}`);
  assert.equal(line.indexOf("\n"), line.length - 1, `a LF inside ${JSON.stringify(line)}`);
  assert.match(line.slice(0, -2), /^[\x20-\x7e]*$/);
});

Deno.test("reply() cuts the text at 200 characters", async (t) => {
  assert.equal(MAX_TEXT, 200);
  const rows: [string, number][] = [
    ["199 characters", 199],
    ["200 characters", 200],
    ["201 characters", 201],
    ["1000 characters", 1000],
  ];
  for (const [name, length] of rows) {
    await t.step(name, () => {
      const text = "y".repeat(length);
      const want = `421 ${"y".repeat(Math.min(length, 200))}\r\n`;
      assert.equal(reply(421, text), want);
    });
  }
});

Deno.test("printable() keeps 32..126, turns the rest into ?, and cuts at max", async (t) => {
  const rows: [string, number, string][] = [
    [" !~", 10, " !~"],
    ["\x1f\x20\x7e\x7f", 10, "? ~?"],
    ["abcdef", 3, "abc"],
    ["ab\ncd", 3, "ab?"],
    ["", 5, ""],
  ];
  for (const [text, max, want] of rows) {
    await t.step(`${JSON.stringify(text)} cut at ${max}`, () => {
      assert.equal(printable(text, max), want);
    });
  }
});

Deno.test("the reply texts are printable and carry an enhanced status code", () => {
  for (const text of [EARLY_TEXT, REFUSED_TEXT]) {
    assert.match(text, /^[\x20-\x7e]+ \(#4\.\d\.\d\)$/);
    assert.ok(text.length <= MAX_TEXT);
  }
});
