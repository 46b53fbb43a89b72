/**
 * src/store/url.ts: the one grammar of --store and SMTPDELAY_STORE. Each row
 * says what the store does with the URL: config refuses at start (exit 100)
 * exactly what this refuses, and the stores open what it gives.
 */
import assert from "node:assert/strict";
import { parseStoreUrl, type RedisTarget, type StoreUrl } from "../src/store/url.ts";
import { assertUsageError } from "./fixtures/assert.ts";

/** The target of a Redis URL on 6379, database 0, without credentials, but for `changes`. */
const redis = (host: string, changes: Partial<RedisTarget> = {}): StoreUrl => {
  const port = changes.port ?? 6379;
  const name = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  return { kind: "redis", target: { host, port, db: 0, name, ...changes } };
};

Deno.test("parseStoreUrl() takes none, an absolute SQLite file and a Redis URL", async (t) => {
  const rows: Array<[string, string, StoreUrl]> = [
    ["none", "no memory", { kind: "none" }],
    ["sqlite:/var/x.db", "opens /var/x.db", { kind: "sqlite", path: "/var/x.db" }],
    ["sqlite:/x", "a file at the root", { kind: "sqlite", path: "/x" }],
    ["sqlite:/dir with space/x.db", "a space in a path", {
      kind: "sqlite",
      path: "/dir with space/x.db",
    }],
    ["sqlite:///var/x.db", "the path as written: ///var/x.db is /var/x.db", {
      kind: "sqlite",
      path: "///var/x.db",
    }],
    ["redis://localhost", "connects to localhost:6379, no AUTH, no SELECT", redis("localhost")],
    ["redis://127.0.0.1:6379/2", "SELECT 2", redis("127.0.0.1", { db: 2 })],
    ["redis://host/", "an empty path is database 0", redis("host")],
    ["redis://host/0", "database 0: no SELECT", redis("host")],
    [
      "redis://host/123456",
      "SELECT 123456 (the server says if it has it)",
      redis("host", {
        db: 123456,
      }),
    ],
    ["redis://host/999999999", "the largest database number", redis("host", { db: 999999999 })],
    ["redis://host/007", "leading zeros", redis("host", { db: 7 })],
    ["redis://host:1", "the lowest port", redis("host", { port: 1 })],
    ["redis://host:65535", "the highest port", redis("host", { port: 65535 })],
    ["redis://host:06380", "a port with a leading zero", redis("host", { port: 6380 })],
    ["redis://redis.example.net.", "a name with its final dot", redis("redis.example.net.")],
    ["redis://redis_1", "an underscore (a container's name)", redis("redis_1")],
    ["redis://:pw@host", "AUTH pw, as Redis's default user", redis("host", { password: "pw" })],
    [
      "redis://mx:pw@host",
      "AUTH mx pw (an ACL user)",
      redis("host", {
        username: "mx",
        password: "pw",
      }),
    ],
    ["redis://:@host", "an empty password: no AUTH", redis("host")],
    ["redis://@host", "nothing before the @: no AUTH", redis("host")],
    ["redis://mx:p%40ss%2F@10.0.0.1:7000/1", "percent-decoded: AUTH mx p@ss/", {
      kind: "redis",
      target: {
        host: "10.0.0.1",
        port: 7000,
        db: 1,
        username: "mx",
        password: "p@ss/",
        name: "10.0.0.1:7000",
      },
    }],
    [
      "redis://:p@ss@host",
      "the last @ ends the password: AUTH p@ss",
      redis("host", {
        password: "p@ss",
      }),
    ],
    [
      "redis://:a:b@host",
      "the first colon ends the user: AUTH a:b",
      redis("host", {
        password: "a:b",
      }),
    ],
    ["redis://:p%C3%A4ss@host", "UTF-8, percent-encoded", redis("host", { password: "päss" })],
    ["redis://:päss@host", "UTF-8 as it is", redis("host", { password: "päss" })],
    ["redis://[::1]:6380", "IPv6 in brackets", redis("::1", { port: 6380 })],
    ["redis://[2001:db8::1]/3", "IPv6 without a port", redis("2001:db8::1", { db: 3 })],
    ["redis://[::ffff:192.0.2.1]", "IPv4-mapped IPv6", redis("::ffff:192.0.2.1")],
  ];
  for (const [text, what, want] of rows) {
    await t.step(`${text}: ${what}`, () => {
      assert.deepEqual(parseStoreUrl(text, "--store"), want);
    });
  }
});

Deno.test("parseStoreUrl() refuses what no store takes, naming the option and saying why", async (t) => {
  const rows: Array<[string, string]> = [
    // the forms
    ["", "wants none, sqlite:/PATH or redis://"],
    ["NONE", "wants none, sqlite:/PATH or redis://"],
    ["/var/x.db", "wants none, sqlite:/PATH or redis://"],
    ["mysql://x", "wants none, sqlite:/PATH or redis://"],
    ["REDIS://host", "wants none, sqlite:/PATH or redis://"],
    ["redis:host", "wants none, sqlite:/PATH or redis://"],
    ["rediss://host", "over TLS (rediss://) is not supported"],
    // SQLite: an absolute path to a file
    ["sqlite:", "an absolute path to a file"],
    ["sqlite:relative", "an absolute path to a file"],
    ["sqlite:relative/x.db", "an absolute path to a file"],
    ["sqlite:/", "an absolute path to a file"],
    ["sqlite:/dir/", "an absolute path to a file"],
    ["sqlite:/x\0y", "an absolute path to a file"],
    // Redis: the host
    ["redis://", "no host"],
    ["redis://:6379", "no host"],
    ["redis://:pw@", "no host"],
    ["redis://ho st", "a space or control character"],
    ["redis://host\n", "a space or control character"],
    ["redis://h%41st", '"h%41st" is not a host name'],
    ["redis://a..b", '"a..b" is not a host name'],
    ["redis://256.1.1.1", '"256.1.1.1" is not an IPv4 address'],
    ["redis://1.2.3", '"1.2.3" is not an IPv4 address'],
    ["redis://::1", "an IPv6 address goes in brackets"],
    ["redis://2001:db8::1:6379", "an IPv6 address goes in brackets"],
    ["redis://[::1", '"[::1" is not [IPV6] or [IPV6]:PORT'],
    ["redis://[::1]x", '"[::1]x" is not [IPV6] or [IPV6]:PORT'],
    ["redis://[]", "no host"],
    ["redis://[1.2.3.4]", '"[1.2.3.4]" is not an IPv6 address'],
    ["redis://[fe80::1%25eth0]", "is not an IPv6 address"],
    ["redis://[::g]", '"[::g]" is not an IPv6 address'],
    // the port
    ["redis://host:", 'the port "" is not from 1 to 65535'],
    ["redis://host:0", 'the port "0" is not from 1 to 65535'],
    ["redis://host:65536", 'the port "65536"'],
    ["redis://host:99999999", 'the port "99999999"'],
    ["redis://host:abc", 'the port "abc"'],
    ["redis://host:-1", 'the port "-1"'],
    ["redis://host:+1", 'the port "+1"'],
    ["redis://[::1]:0", 'the port "0"'],
    // the database
    ["redis://host/db", 'the path "/db" is not a database number'],
    ["redis://host/1/2", 'the path "/1/2" is not a database number'],
    ["redis://host:6379/2/3", 'the path "/2/3"'],
    ["redis://host/1234567890", 'the path "/1234567890"'],
    ["redis://host/-1", 'the path "/-1"'],
    // no query, no fragment
    ["redis://host?db=1", "no ?query or #fragment"],
    ["redis://host?", "no ?query or #fragment"],
    ["redis://host#x", "no ?query or #fragment"],
    ["redis://host#", "no ?query or #fragment"],
    // the credentials
    ["redis://mx@host", "a user without a password"],
    ["redis://mx:@host", "a user without a password"],
    ["redis://:p%zz@host", "bad percent-encoding"],
    ["redis://mx%@host", "a user without a password"],
    ["redis://:%E0%A4%A@host", "bad percent-encoding"],
    ["redis://:p w@host", "a space or control character"],
    ["redis://:a/b@host", "a / before the @"],
  ];
  for (const [text, why] of rows) {
    await t.step(`${JSON.stringify(text)}: ${why}`, () => {
      assertUsageError(() => parseStoreUrl(text, "SMTPDELAY_STORE"), "SMTPDELAY_STORE", why);
    });
  }
});

Deno.test("parseStoreUrl() quotes a refused URL, but never its password", async (t) => {
  const rows: Array<[string, string]> = [
    ["redis://host:0", '"redis://host:0"'],
    ["sqlite:relative", '"sqlite:relative"'],
    ["redis://:s3cret@host/x", '"redis://:***@host/x"'],
    ["redis://mx:s3cret@host:0", '"redis://mx:***@host:0"'],
    // a password that lost its colon is most often what the admin typed
    ["redis://s3cret@host", '"redis://***@host"'],
    ["redis://:s3cret?x@host", '"redis://:***@host"'],
    ["redis://:s3/cret@host", '"redis://:***@host"'],
    ["redis://:s3cr@t@host:0", '"redis://:***@host:0"'],
    ["mysql://mx:s3cret@host", '"mysql://mx:***@host"'],
  ];
  for (const [text, quoted] of rows) {
    await t.step(text, () => {
      const e = assertUsageError(() => parseStoreUrl(text, "--store"), "--store", quoted);
      assert.ok(!/s3cr/.test(e.message), `the password in ${JSON.stringify(e.message)}`);
    });
  }
});
