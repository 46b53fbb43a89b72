import assert from "node:assert/strict";
import { formatIp, formatIpShort, type Ip, parseIp, reverseName } from "../src/ip.ts";

const v4 = (...bytes: number[]): Ip => ({ family: 4, bytes: Uint8Array.from(bytes) });
const v6 = (...bytes: number[]): Ip => {
  const all = new Uint8Array(16);
  all.set(bytes, 16 - bytes.length); // right-aligned: v6(1) is ::1
  return { family: 6, bytes: all };
};
const v6Bytes = (groups: number[]): Ip => {
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return { family: 6, bytes };
};

/** Ip as plain data, so that deepEqual compares the bytes and reports them readably. */
const plain = (ip: Ip | undefined) => ip && { family: ip.family, bytes: [...ip.bytes] };

Deno.test("parseIp() reads IPv4 dotted quads", async (t) => {
  const rows: [string, Ip][] = [
    ["192.0.2.10", v4(192, 0, 2, 10)],
    ["0.0.0.0", v4(0, 0, 0, 0)],
    ["255.255.255.255", v4(255, 255, 255, 255)],
    ["127.0.0.1", v4(127, 0, 0, 1)],
    ["10.0.100.249", v4(10, 0, 100, 249)],
  ];
  for (const [text, want] of rows) {
    await t.step(text, () => {
      assert.deepEqual(plain(parseIp(text)), plain(want));
    });
  }
});

Deno.test("parseIp() reads IPv6 in full, compressed and embedded-IPv4 forms", async (t) => {
  const rows: [string, Ip][] = [
    ["::1", v6(1)],
    ["::", v6()],
    ["2001:db8::1", v6Bytes([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1])],
    ["2001:DB8::A", v6Bytes([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xa])],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", v6Bytes([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1])],
    ["1:2:3:4:5:6:7:8", v6Bytes([1, 2, 3, 4, 5, 6, 7, 8])],
    ["fe80::", v6Bytes([0xfe80, 0, 0, 0, 0, 0, 0, 0])],
    ["1::8", v6Bytes([1, 0, 0, 0, 0, 0, 0, 8])],
    ["1:2:3:4:5:6:7::", v6Bytes([1, 2, 3, 4, 5, 6, 7, 0])],
    ["::2:3:4:5:6:7:8", v6Bytes([0, 2, 3, 4, 5, 6, 7, 8])],
    ["64:ff9b::192.0.2.10", v6Bytes([0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x020a])],
    ["1:2:3:4:5:6:192.0.2.10", v6Bytes([1, 2, 3, 4, 5, 6, 0xc000, 0x020a])],
    ["::192.0.2.10", v6Bytes([0, 0, 0, 0, 0, 0, 0xc000, 0x020a])],
  ];
  for (const [text, want] of rows) {
    await t.step(text, () => {
      assert.deepEqual(plain(parseIp(text)), plain(want));
    });
  }
});

Deno.test("parseIp() reads IPv4-mapped IPv6 as IPv4", async (t) => {
  const rows = [
    "::ffff:192.0.2.10",
    "::FFFF:192.0.2.10",
    "::ffff:c000:20a",
    "0:0:0:0:0:ffff:192.0.2.10",
  ];
  for (const text of rows) {
    await t.step(text, () => {
      assert.deepEqual(plain(parseIp(text)), plain(v4(192, 0, 2, 10)));
    });
  }
});

Deno.test("parseIp() drops an IPv6 zone", async (t) => {
  const rows: [string, Ip][] = [
    ["fe80::1%eth0", v6Bytes([0xfe80, 0, 0, 0, 0, 0, 0, 1])],
    ["fe80::1%2", v6Bytes([0xfe80, 0, 0, 0, 0, 0, 0, 1])],
    ["::1%lo", v6(1)],
  ];
  for (const [text, want] of rows) {
    await t.step(text, () => {
      assert.deepEqual(plain(parseIp(text)), plain(want));
    });
  }
});

Deno.test("parseIp() rejects malformed addresses", async (t) => {
  const rows = [
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "1.2.3.256",
    "01.2.3.4",
    "1.2.3.04",
    "1.2.3.-4",
    "1.2.3.4.",
    ".1.2.3.4",
    "1..2.3",
    " 1.2.3.4",
    "1.2.3.4 ",
    "1.2.3.4\n",
    "1.2.3.4:25",
    "0x7f.0.0.1",
    "2130706433",
    "localhost",
    "1::2::3",
    ":::",
    ":1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7:8::",
    "::1:2:3:4:5:6:7:8",
    "12345::1",
    "g::1",
    "::1.2.3",
    "::256.1.1.1",
    "::1.2.3.4:5",
    "1:2:3:4:5:6:7:1.2.3.4",
    "fe80::1%",
    "fe80::1%eth 0",
    "[::1]",
  ];
  for (const text of rows) {
    await t.step(JSON.stringify(text), () => {
      const got = parseIp(text);
      assert.equal(
        got,
        undefined,
        `parseIp(${JSON.stringify(text)}): got ${JSON.stringify(plain(got))}, want undefined`,
      );
    });
  }
});

// An embedded IPv4 is allowed only as the last 32 bits (RFC 4291 2.2), not before "::".
Deno.test("parseIp() rejects an embedded IPv4 that is not at the end", async (t) => {
  for (const text of ["1.2.3.4::", "1:2:1.2.3.4::3"]) {
    await t.step({
      name: JSON.stringify(text),
      fn() {
        const got = parseIp(text);
        assert.equal(got, undefined, `got ${JSON.stringify(plain(got))}, want undefined`);
      },
    });
  }
});

Deno.test("parseIp() rejects text longer than 64 characters, even a valid address with a zone", () => {
  const zoned = "fe80::1%" + "z".repeat(56); // 64 characters: accepted
  assert.equal(zoned.length, 64);
  assert.notEqual(parseIp(zoned), undefined);
  assert.equal(parseIp(zoned + "z"), undefined);
});

Deno.test("formatIp() writes a dotted quad or the full lowercase IPv6 form", async (t) => {
  const rows: [string, string][] = [
    ["192.0.2.10", "192.0.2.10"],
    ["::ffff:192.0.2.10", "192.0.2.10"],
    ["::1", "0:0:0:0:0:0:0:1"],
    ["::", "0:0:0:0:0:0:0:0"],
    ["2001:DB8::A", "2001:db8:0:0:0:0:0:a"],
    ["2001:0db8:0000::00ff", "2001:db8:0:0:0:0:0:ff"],
    ["fe80::1%eth0", "fe80:0:0:0:0:0:0:1"],
    ["64:ff9b::192.0.2.10", "64:ff9b:0:0:0:0:c000:20a"],
  ];
  for (const [text, want] of rows) {
    await t.step(text, () => {
      const ip = parseIp(text);
      assert.ok(ip, `parseIp(${JSON.stringify(text)}) failed`);
      assert.equal(formatIp(ip), want);
    });
  }
});

Deno.test("formatIp() output parses back to the same address", async (t) => {
  for (const text of ["203.0.113.7", "2001:db8:1:2:3:4:5:6", "::1", "ff02::1:ff00:1"]) {
    await t.step(text, () => {
      const ip = parseIp(text)!;
      assert.deepEqual(plain(parseIp(formatIp(ip))), plain(ip));
    });
  }
});

Deno.test("formatIpShort() writes RFC 5952's form: the longest zero run as ::, the first on a tie", async (t) => {
  const rows: [string, string][] = [
    ["192.0.2.10", "192.0.2.10"],
    ["::1", "::1"],
    ["::", "::"],
    ["2001:DB8::A", "2001:db8::a"],
    ["2001:db8:0:1::", "2001:db8:0:1::"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero group stays
    ["1:0:0:1:0:0:1:1", "1::1:0:0:1:1"], // a tie: the first run
    ["1:0:0:1:0:0:0:1", "1:0:0:1::1"], // the longest run
    ["0:0:1:2:3:4:5:6", "::1:2:3:4:5:6"],
    ["1:2:3:4:5:6:0:0", "1:2:3:4:5:6::"],
    ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
  ];
  for (const [text, want] of rows) {
    await t.step(text, () => {
      const ip = parseIp(text)!;
      assert.equal(formatIpShort(ip), want);
      assert.deepEqual(plain(parseIp(want)), plain(ip), "parses back to the same address");
    });
  }
});

Deno.test("reverseName() gives the in-addr.arpa and ip6.arpa names", async (t) => {
  const rows: [string, string][] = [
    ["192.0.2.10", "10.2.0.192.in-addr.arpa"],
    ["203.0.113.7", "7.113.0.203.in-addr.arpa"],
    ["::ffff:198.51.100.1", "1.100.51.198.in-addr.arpa"],
    ["::1", "1" + ".0".repeat(31) + ".ip6.arpa"],
    [
      "2001:db8::567:89ab",
      "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
    ],
  ];
  for (const [text, want] of rows) {
    await t.step(text, () => {
      assert.equal(reverseName(parseIp(text)!), want);
    });
  }
});
