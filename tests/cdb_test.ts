import assert from "node:assert/strict";
import { CdbError, cdbHash, openCdb } from "../src/serve/cdb.ts";
import { tcprules } from "./fixtures/tcprules.ts";
import { withTempDir } from "./fixtures/temp_dir.ts";

const encode = (s: string) => new TextEncoder().encode(s);
const show = (data: Uint8Array | undefined) =>
  data === undefined ? "undefined" : JSON.stringify(new TextDecoder().decode(data));

/** A cdb as cdb_make.c writes it: records from 2048, then 256 tables of twice as many slots. */
function writeCdb(records: [string, string][]): Uint8Array {
  const out: number[] = new Array<number>(2048).fill(0);
  const u32 = (n: number) => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24];
  const entries: { hash: number; at: number }[] = [];
  for (const [key, data] of records) {
    entries.push({ hash: cdbHash(encode(key)), at: out.length });
    out.push(
      ...u32(encode(key).length),
      ...u32(encode(data).length),
      ...encode(key),
      ...encode(data),
    );
  }
  const header: number[] = [];
  for (let table = 0; table < 256; table++) {
    const mine = entries.filter((e) => (e.hash & 255) === table);
    const slots = Array.from({ length: 2 * mine.length }, () => ({ hash: 0, at: 0 }));
    for (const e of mine) {
      let where = (e.hash >>> 8) % slots.length;
      while (slots[where]!.at !== 0) where = (where + 1) % slots.length;
      slots[where] = e;
    }
    header.push(...u32(out.length), ...u32(slots.length));
    for (const slot of slots) out.push(...u32(slot.hash), ...u32(slot.at));
  }
  out.splice(0, 2048, ...header);
  return Uint8Array.from(out);
}

/** find(), with a CdbError as the string "CdbError" and any other exception thrown on. */
function tryFind(bytes: Uint8Array, key: string): Uint8Array | undefined | "CdbError" {
  try {
    return openCdb(bytes).find(key);
  } catch (e) {
    if (e instanceof CdbError) return "CdbError";
    throw e;
  }
}

// The brief's example: deny, allow with two variables (one empty), a host suffix, a default.
const EXAMPLE = '1.2.3.4:deny\n1.2.:allow,A="x",B=""\n=.example.com:allow,C="y"\n:allow\n';
const EXAMPLE_RECORDS: [string, string][] = [
  ["1.2.3.4", "D\0"],
  ["1.2.", "+A=x\0+B=\0"],
  ["=.example.com", "+C=y\0"],
  ["", ""],
];

Deno.test("cdbHash() gives the hashes tcprules writes in its slots", async (t) => {
  // Read with xxd from the slots of EXAMPLE compiled by tcprules (ucspi-tcp 0.88).
  const rows: [string, number][] = [
    ["", 5381],
    ["1.2.3.4", 0x3c4cfacf],
    ["1.2.", 0x7c545866],
    ["=.example.com", 0xed72d6d1],
  ];
  for (const [key, want] of rows) {
    await t.step(JSON.stringify(key), () => {
      const got = cdbHash(encode(key));
      assert.equal(got, want, `got 0x${got.toString(16)}, want 0x${want.toString(16)}`);
    });
  }
});

Deno.test("writeCdb() in this test writes the same bytes as tcprules", async () => {
  await withTempDir(async (dir) => {
    assert.deepEqual(writeCdb(EXAMPLE_RECORDS), await tcprules(`${dir}/x.cdb`, EXAMPLE));
  });
});

Deno.test("find() reads every record of a file made by tcprules", async (t) => {
  await withTempDir(async (dir) => {
    const cdb = openCdb(await tcprules(`${dir}/x.cdb`, EXAMPLE));
    const rows: [string, string | undefined][] = [
      ...EXAMPLE_RECORDS,
      ["1.2.3.5", undefined],
      ["1.2", undefined],
      ["=example.com", undefined],
      ["=", undefined],
    ];
    for (const [key, want] of rows) {
      await t.step(JSON.stringify(key), () => {
        const got = cdb.find(key);
        assert.equal(show(got), show(want === undefined ? undefined : encode(want)));
        assert.equal(show(cdb.find(encode(key))), show(got), "a Uint8Array key reads the same");
      });
    }
  });
});

Deno.test("find() reads all of 2000 rules by tcprules, through shared tables and probing", async () => {
  await withTempDir(async (dir) => {
    const ips = Array.from({ length: 2000 }, (_, i) => `10.${i >> 8}.${i & 255}.1`);
    const rules = ips.map((ip, i) => `${ip}:${i % 7 ? "allow" : "deny"},N="${i}"\n`).join("");
    const cdb = openCdb(await tcprules(`${dir}/big.cdb`, rules));
    ips.forEach((ip, i) => {
      const want = (i % 7 ? "" : "D\0") + `+N=${i}\0`;
      assert.equal(show(cdb.find(ip)), show(encode(want)), `find(${JSON.stringify(ip)})`);
      const miss = `10.${i >> 8}.${i & 255}.2`;
      assert.equal(cdb.find(miss), undefined, `find(${JSON.stringify(miss)}): want undefined`);
    });
  });
});

Deno.test("find() gives the first of two records with the same key", () => {
  const cdb = openCdb(writeCdb([["k", "first"], ["k", "second"]]));
  assert.equal(show(cdb.find("k")), show(encode("first")));
});

Deno.test("openCdb() rejects a file shorter than the 2048-byte header", async (t) => {
  for (const length of [0, 1, 2040, 2047]) {
    await t.step(`${length} bytes`, () => {
      assert.throws(() => openCdb(new Uint8Array(length)), CdbError);
    });
  }
  await t.step("2048 zero bytes: an empty cdb", () => {
    assert.equal(openCdb(new Uint8Array(2048)).find("k"), undefined);
  });
});

Deno.test("find() reports CdbError for a position or length past the end", async (t) => {
  const good = writeCdb([["k", "v"]]); // record at 2048: 4 + 4 + "k" + "v", then the tables
  const hash = cdbHash(encode("k"));
  const view = (bytes: Uint8Array) => new DataView(bytes.buffer);
  const tableAt = view(good).getUint32((hash & 255) * 8, true);
  const slotAt = tableAt + ((hash >>> 8) % 2) * 8;
  const otherSlotAt = tableAt + (((hash >>> 8) + 1) % 2) * 8;
  // name, [position, u32 written there][], key looked up, want
  const rows: [string, [number, number][], string, string | undefined][] = [
    ["unchanged", [], "k", "v"],
    ["table position past the end", [[(hash & 255) * 8, 0xfffffff0]], "k", "CdbError"],
    ["table of 2^32-1 slots", [[(hash & 255) * 8 + 4, 0xffffffff]], "k", "CdbError"],
    ["slot's record position past the end", [[slotAt + 4, 0x7fffffff]], "k", "CdbError"],
    ["key length 2^32-1", [[2048, 0xffffffff]], "k", "CdbError"],
    ["data length 2^32-1", [[2052, 0xffffffff]], "k", "CdbError"],
    ["data length 100, past the end", [[2052, 100]], "k", "CdbError"],
    ["key length 0: the key differs", [[2048, 0]], "k", undefined],
    [
      "full table, no empty slot, other hashes",
      [[slotAt, hash ^ 1], [otherSlotAt + 4, 2048]],
      "k",
      undefined,
    ],
    [
      "full table, same hash, other key",
      [[otherSlotAt, hash], [otherSlotAt + 4, 2048], [2056, 0x6a]],
      "k",
      undefined,
    ],
  ];
  for (const [name, patches, key, want] of rows) {
    await t.step(name, () => {
      const bytes = good.slice();
      for (const [at, value] of patches) view(bytes).setUint32(at, value, true);
      const got = tryFind(bytes, key);
      const gotText = typeof got === "string" ? got : show(got);
      const wantText = want === "CdbError"
        ? want
        : show(want === undefined ? undefined : encode(want));
      assert.equal(gotText, wantText, `got ${gotText}, want ${wantText}`);
    });
  }
});

Deno.test("find() on every truncation of a tcprules file gives the right data or CdbError", async () => {
  await withTempDir(async (dir) => {
    const full = await tcprules(`${dir}/x.cdb`, EXAMPLE);
    const rows: [string, Uint8Array | undefined][] = [
      ...EXAMPLE_RECORDS.map(([key, data]): [string, Uint8Array] => [key, encode(data)]),
      ["1.2.3.5", undefined],
      ["=", undefined],
    ];
    let errors = 0;
    for (let length = 0; length <= full.length; length++) {
      for (const [key, want] of rows) {
        const got = tryFind(full.subarray(0, length), key);
        if (got === "CdbError") errors++;
        else assert.equal(show(got), show(want), `length ${length}, key ${JSON.stringify(key)}`);
      }
    }
    // Beyond the 2048 lengths without a header, some cuts fell inside slots or records.
    assert.ok(errors > 2048 * rows.length, `got ${errors} CdbErrors, want more than the header's`);
  });
});

Deno.test("find() on every one-byte corruption of a tcprules file ends, in data, undefined or CdbError", async () => {
  await withTempDir(async (dir) => {
    const full = await tcprules(`${dir}/x.cdb`, EXAMPLE);
    for (let at = 0; at < full.length; at++) {
      for (const value of [0x00, 0x01, 0x80, 0xff]) {
        const bytes = full.slice();
        bytes[at] = value;
        for (const key of ["1.2.3.4", "1.2.", "=.example.com", "", "1.2.3.5"]) {
          tryFind(bytes, key); // throws anything but CdbError
        }
      }
    }
  });
});
