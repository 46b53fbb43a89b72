import assert from "node:assert/strict";
import { readClient } from "../src/client.ts";
import { assertUsageError } from "./fixtures/assert.ts";

type Env = Record<string, string | undefined>;

Deno.test("readClient() reads TCPREMOTEIP and TCPREMOTEHOST", async (t) => {
  const rows: {
    name: string;
    env: Env;
    family: 4 | 6;
    ipText: string;
    host: string | undefined;
  }[] = [
    {
      name: "IPv4 with a host name",
      env: { TCPREMOTEIP: "192.0.2.10", TCPREMOTEHOST: "mail.example.com" },
      family: 4,
      ipText: "192.0.2.10",
      host: "mail.example.com",
    },
    {
      name: "TCPREMOTEHOST unset: no host",
      env: { TCPREMOTEIP: "192.0.2.10" },
      family: 4,
      ipText: "192.0.2.10",
      host: undefined,
    },
    {
      name: "TCPREMOTEHOST empty: no host",
      env: { TCPREMOTEIP: "192.0.2.10", TCPREMOTEHOST: "" },
      family: 4,
      ipText: "192.0.2.10",
      host: undefined,
    },
    {
      name: "IPv6, written in full",
      env: { TCPREMOTEIP: "2001:db8::25" },
      family: 6,
      ipText: "2001:db8:0:0:0:0:0:25",
      host: undefined,
    },
    {
      name: "IPv4-mapped IPv6 is IPv4",
      env: { TCPREMOTEIP: "::ffff:198.51.100.7" },
      family: 4,
      ipText: "198.51.100.7",
      host: undefined,
    },
    {
      name: "the host is lowercased and loses its trailing dot",
      env: { TCPREMOTEIP: "203.0.113.1", TCPREMOTEHOST: "MX.Example.NET." },
      family: 4,
      ipText: "203.0.113.1",
      host: "mx.example.net",
    },
    {
      name: "a host of only a dot is no host",
      env: { TCPREMOTEIP: "203.0.113.1", TCPREMOTEHOST: "." },
      family: 4,
      ipText: "203.0.113.1",
      host: undefined,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const client = readClient(row.env);
      assert.deepEqual(
        { family: client.ip.family, ipText: client.ipText, host: client.host },
        { family: row.family, ipText: row.ipText, host: row.host },
      );
    });
  }
});

Deno.test("readClient() rejects a missing, empty or malformed TCPREMOTEIP", async (t) => {
  const rows: { name: string; env: Env; parts: string[] }[] = [
    { name: "unset", env: {}, parts: ["TCPREMOTEIP is not set"] },
    { name: "unset, host set", env: { TCPREMOTEHOST: "x.example" }, parts: ["TCPREMOTEIP"] },
    { name: "empty", env: { TCPREMOTEIP: "" }, parts: ["TCPREMOTEIP is not set"] },
    { name: "a name", env: { TCPREMOTEIP: "localhost" }, parts: ["TCPREMOTEIP", '"localhost"'] },
    { name: "three octets", env: { TCPREMOTEIP: "1.2.3" }, parts: ['"1.2.3"'] },
    { name: "with a port", env: { TCPREMOTEIP: "1.2.3.4:25" }, parts: ['"1.2.3.4:25"'] },
    {
      name: "a long value is quoted cut at 100 characters",
      env: { TCPREMOTEIP: "x".repeat(150) },
      parts: [`"${"x".repeat(100)}"`],
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      const thrown = assertUsageError(() => readClient(row.env), ...row.parts);
      assert.ok(!thrown.message.includes("x".repeat(101)), "the quoted value is not cut at 100");
    });
  }
});

Deno.test("readClient() returns a frozen Client", () => {
  const client = readClient({ TCPREMOTEIP: "192.0.2.1" });
  assert.ok(Object.isFrozen(client));
});
