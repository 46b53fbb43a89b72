/**
 * src/getopt.ts: getopt(3) as djb's programs use it, on the filter's own
 * options (FILTER_OPTIONS): the letters and long options every run file uses.
 */
import assert from "node:assert/strict";
import { FILTER_OPTIONS } from "../src/config.ts";
import { scanOptions } from "../src/getopt.ts";
import { assertUsageError } from "./fixtures/assert.ts";

/** The filter's getopt. */
const getopt = (args: string[]) => scanOptions(args, FILTER_OPTIONS);

Deno.test("scanOptions() splits options from the program as getopt(3) does", async (t) => {
  const rows: {
    name: string;
    args: string[];
    options: { name: string; value: string }[];
    rest: string[];
  }[] = [
    { name: "no arguments", args: [], options: [], rest: [] },
    { name: "only a program", args: ["qmail-smtpd"], options: [], rest: ["qmail-smtpd"] },
    {
      name: "clustered flags -Sv",
      args: ["-Sv", "prog"],
      options: [{ name: "S", value: "" }, { name: "v", value: "" }],
      rest: ["prog"],
    },
    {
      name: "attached value -d5",
      args: ["-d5", "prog"],
      options: [{ name: "d", value: "5" }],
      rest: ["prog"],
    },
    {
      name: "separate value -d 5",
      args: ["-d", "5", "prog"],
      options: [{ name: "d", value: "5" }],
      rest: ["prog"],
    },
    {
      name: "a flag then a value option in one word, -Sd5",
      args: ["-Sd5", "prog"],
      options: [{ name: "S", value: "" }, { name: "d", value: "5" }],
      rest: ["prog"],
    },
    {
      name: "a flag then a value option taking the next word, -Sd 5",
      args: ["-Sd", "5", "prog"],
      options: [{ name: "S", value: "" }, { name: "d", value: "5" }],
      rest: ["prog"],
    },
    {
      name: "the rest of the word is the value, flags included (-dS)",
      args: ["-dS", "prog"],
      options: [{ name: "d", value: "S" }],
      rest: ["prog"],
    },
    {
      name: "a separate value may start with a dash",
      args: ["-d", "-S", "prog"],
      options: [{ name: "d", value: "-S" }],
      rest: ["prog"],
    },
    {
      name: "every option letter",
      args: ["-d", "1", "-D2", "-P", "3", "-N4", "-t", "5", "-f", "/p", "-S", "-v", "prog"],
      options: [
        { name: "d", value: "1" },
        { name: "D", value: "2" },
        { name: "P", value: "3" },
        { name: "N", value: "4" },
        { name: "t", value: "5" },
        { name: "f", value: "/p" },
        { name: "S", value: "" },
        { name: "v", value: "" },
      ],
      rest: ["prog"],
    },
    {
      name: "-- ends the options and is dropped",
      args: ["-S", "--", "-d", "5"],
      options: [{ name: "S", value: "" }],
      rest: ["-d", "5"],
    },
    {
      name: "only the first -- is dropped",
      args: ["--", "--", "prog"],
      options: [],
      rest: ["--", "prog"],
    },
    {
      name: "the first non-option starts the program; its options are its own",
      args: ["-S", "rblsmtpd", "-r", "x", "-S"],
      options: [{ name: "S", value: "" }],
      rest: ["rblsmtpd", "-r", "x", "-S"],
    },
    {
      name: "a lone - is a program word",
      args: ["-S", "-", "-d", "5"],
      options: [{ name: "S", value: "" }],
      rest: ["-", "-d", "5"],
    },
    {
      name: "an empty word is a program word",
      args: ["", "-S"],
      options: [],
      rest: ["", "-S"],
    },
    {
      name: "a repeated option is kept twice, in order",
      args: ["-d1", "-d2", "prog"],
      options: [{ name: "d", value: "1" }, { name: "d", value: "2" }],
      rest: ["prog"],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const got = getopt(row.args);
      assert.deepEqual(got, { options: row.options, rest: row.rest });
    });
  }
});

Deno.test("scanOptions() rejects a missing value and an unknown option", async (t) => {
  const rows: { name: string; args: string[]; parts: string[] }[] = [
    { name: "-d at the end", args: ["-d"], parts: ["-d", "needs a value"] },
    { name: "-S then -N at the end", args: ["-SN"], parts: ["-N", "needs a value"] },
    { name: "-f at the end", args: ["-S", "-f"], parts: ["-f", "needs a value"] },
    { name: "unknown -x", args: ["-x", "prog"], parts: ['"-x"'] },
    { name: "unknown letter in a cluster", args: ["-Sq", "prog"], parts: ['"-q"'] },
    { name: "unknown long option", args: ["--delay=5", "prog"], parts: ['"--delay"'] },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assertUsageError(() => getopt(row.args), ...row.parts);
    });
  }
});

Deno.test("scanOptions() reads long options, with the value separate or after =", async (t) => {
  const rows: {
    name: string;
    args: string[];
    options: { name: string; value: string }[];
    rest: string[];
  }[] = [
    {
      name: "--pass-ttl 60",
      args: ["--pass-ttl", "60", "prog"],
      options: [{ name: "--pass-ttl", value: "60" }],
      rest: ["prog"],
    },
    {
      name: "--pass-ttl=60",
      args: ["--pass-ttl=60", "prog"],
      options: [{ name: "--pass-ttl", value: "60" }],
      rest: ["prog"],
    },
    {
      name: "--store=URL keeps everything after the first =",
      args: ["--store=redis://:a=b@host", "prog"],
      options: [{ name: "--store", value: "redis://:a=b@host" }],
      rest: ["prog"],
    },
    {
      name: "--allow= gives an empty value",
      args: ["--allow=", "prog"],
      options: [{ name: "--allow", value: "" }],
      rest: ["prog"],
    },
    {
      name: "a separate value may start with a dash",
      args: ["--store", "-S", "prog"],
      options: [{ name: "--store", value: "-S" }],
      rest: ["prog"],
    },
    {
      name: "long and short options mixed, in order",
      args: ["-S", "--strikes", "2", "-d1", "--store=none", "prog", "--strikes", "9"],
      options: [
        { name: "S", value: "" },
        { name: "--strikes", value: "2" },
        { name: "d", value: "1" },
        { name: "--store", value: "none" },
      ],
      rest: ["prog", "--strikes", "9"],
    },
    {
      name: "-- ends the options: a long option after it is the program",
      args: ["--", "--store", "none"],
      options: [],
      rest: ["--store", "none"],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.deepEqual(getopt(row.args), { options: row.options, rest: row.rest });
    });
  }
});

Deno.test("scanOptions() rejects an unknown long option and a missing value", async (t) => {
  const rows: { name: string; args: string[]; parts: string[] }[] = [
    { name: "--nope", args: ["--nope", "prog"], parts: ['unknown option "--nope"'] },
    { name: "--nope=1", args: ["--nope=1", "prog"], parts: ['"--nope"'] },
    { name: "wrong case", args: ["--Store", "none", "prog"], parts: ['"--Store"'] },
    { name: "underscore for dash", args: ["--pass_ttl", "1", "prog"], parts: ['"--pass_ttl"'] },
    { name: "a short option spelt long", args: ["--S", "prog"], parts: ['"--S"'] },
    { name: "--help=x", args: ["--help=x"], parts: ['"--help"'] },
    { name: "--=5", args: ["--=5", "prog"], parts: ['"--"'] },
    { name: "--pass-ttl at the end", args: ["--pass-ttl"], parts: ["--pass-ttl", "needs a value"] },
    { name: "--store at the end", args: ["-S", "--store"], parts: ["--store", "needs a value"] },
    { name: "--allow at the end", args: ["--allow"], parts: ["--allow", "needs a value"] },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assertUsageError(() => getopt(row.args), ...row.parts);
    });
  }
});

Deno.test("scanOptions() takes only the set's letters, and says why when the set has a reason", async (t) => {
  const set = {
    flags: new Set(["a"]),
    values: new Set(["b"]),
    longs: new Set(["long"]),
    refused: (letter: string) => letter === "p" ? "-p is not taken here" : undefined,
  };
  await t.step("its own letters and long option", () => {
    assert.deepEqual(scanOptions(["-ab1", "--long=x", "prog"], set), {
      options: [
        { name: "a", value: "" },
        { name: "b", value: "1" },
        { name: "--long", value: "x" },
      ],
      rest: ["prog"],
    });
  });
  await t.step("a letter with a reason of its own", () => {
    assertUsageError(() => scanOptions(["-p", "prog"], set), "-p is not taken here");
  });
  await t.step("a letter without one", () => {
    assertUsageError(() => scanOptions(["-S", "prog"], set), 'unknown option "-S"');
  });
  await t.step("--help and --version, whatever the set", () => {
    assert.deepEqual(scanOptions(["--help", "--version"], set).options, [
      { name: "--help", value: "" },
      { name: "--version", value: "" },
    ]);
  });
});
