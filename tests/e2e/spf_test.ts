/**
 * `smtp-delay allowlist spf` for real: dnsmasq serves the test domains'
 * TXT, A, AAAA and MX records on a loopback port (an SPF record of 1,400
 * bytes among them, which takes TCP), the command runs as a process with
 * SMTPDELAY_DNS pointing at it, and its file is the `--allow` of a filter
 * under tcpserver: a client in an expanded range gets the banner at once
 * (`memory=exempt`), one in a range the expansion never reached waits.
 * Then the failures (nothing printed, exit 100 or 111), and README's cron
 * line run by sh: a good run replaces the file, a failed one leaves it.
 */
import assert from "node:assert/strict";
import { parseAllowlist } from "../../src/allow.ts";
import { DnsResolver } from "../../src/spf/dns.ts";
import { ROOT, runFileEnv } from "../fixtures/source.ts";
import { banner, type Dns, E2E, FILTER, run, Server, startDns, TIMEOUT_MS } from "./harness.ts";

/** _spf.example.org's record: 64 addresses in a row and 16 IPv6 ones, 1,415 bytes. */
const BIG = [
  "v=spf1",
  ...Array.from({ length: 64 }, (_, i) => `ip4:203.0.113.${64 + i}`),
  ...Array.from({ length: 16 }, (_, i) => `ip6:2001:DB8:1::${i.toString(16)}`),
  "~all",
].join(" ");

/** The test domains' TXT records (each cut into strings of 255 as the DNS carries them). */
const TXT: Record<string, string> = {
  "example.org": "v=spf1 a/30 mx//64 include:_spf.example.org exists:%{i}._spf.example.org -all",
  "_spf.example.org": BIG,
  "example.net": "v=spf1 include:_spf.example.org ip4:198.51.100.128/25 " +
    "include:_loop.example.net ip4:198.51.100.0/25 -all",
  "_loop.example.net": "v=spf1 ip4:192.0.2.128/26 include:example.net",
};

/** What the command prints for example.org and example.net. */
const FILE = [
  "# smtp-delay allowlist spf example.org example.net",
  "# example.org: 6 ranges, 4 DNS lookups; not expanded: exists:%{i}._spf.example.org",
  "192.0.2.8/30", // a/30 of 192.0.2.9
  "192.0.2.25/32", // the MX host
  "203.0.113.64/26", // _spf.example.org's 64 addresses
  "2001:db8::9/128",
  "2001:db8:1::/124", // its 16 IPv6 addresses
  "2001:db8:25::/64", // the MX host's //64
  "# example.net: 2 ranges (its others listed above), 3 DNS lookups; stopped at " +
  "include:example.net in _loop.example.net: a loop: example.net is already being expanded",
  "192.0.2.128/26",
  "198.51.100.128/25",
  "",
].join("\n");

const WARNINGS = [
  "smtp-delay: warning: unable to expand exists:%{i}._spf.example.org: exists depends on the " +
  "client; nothing listed for it",
  "smtp-delay: warning: unable to expand example.net past include:example.net in " +
  "_loop.example.net: a loop: example.net is already being expanded; the ranges before it are kept",
];

/** A TXT record as dnsmasq's option: strings of at most 255 characters, commas between them. */
function txtRecord(name: string, text: string): string {
  return `--txt-record=${name},${text.match(/.{1,255}/g)!.join(",")}`;
}

/**
 * The harness's dnsmasq with the test domains' records: NXDOMAIN under them,
 * REFUSED elsewhere; checked to answer the big record.
 */
async function startSpfDns(): Promise<Dns> {
  const dns = await startDns([
    "--local=/example.org/",
    "--local=/example.net/",
    ...Object.entries(TXT).map(([name, text]) => txtRecord(name, text)),
    "--txt-record=nospf.example.org,v=spf2.0/pra -all",
    "--host-record=example.org,192.0.2.9,2001:db8::9",
    "--host-record=mx.example.org,192.0.2.25,2001:db8:25::25",
    "--mx-host=example.org,mx.example.org,10",
  ]);
  try {
    const [ipAddr, port] = dns.address.split(":");
    const resolver = new DnsResolver({
      servers: [{ ipAddr: ipAddr!, port: Number(port) }],
      timeoutMs: TIMEOUT_MS,
      tries: 1,
    });
    assert.deepEqual(await resolver.txt("_spf.example.org"), [BIG]);
  } catch (e) {
    await dns.stop();
    throw e;
  }
  return dns;
}

/** `smtp-delay allowlist ARGS` as a process, the run file's environment and SMTPDELAY_DNS. */
function allowlist(dns: Dns, ...args: string[]) {
  return run([...FILTER, "allowlist", ...args], runFileEnv({ SMTPDELAY_DNS: dns.address }));
}

Deno.test(
  "allowlist spf expands SPF records from the DNS into a file --allow takes",
  E2E,
  async (t) => {
    const dns = await startSpfDns();
    const dir = await Deno.makeTempDir({ prefix: "smtp-delay-spf-" });
    try {
      const got = await allowlist(dns, "spf", "example.org", "example.net");
      await t.step("includes, a/30, mx//64, the loop stopped, the big record read", () => {
        assert.equal(got.stdout, FILE);
        assert.deepEqual(got.stderr.split("\n").filter((l) => l !== ""), WARNINGS);
        assert.equal(got.code, 0);
      });
      await t.step("src/allow.ts reads the file", () => {
        assert.equal(parseAllowlist(got.stdout, "the file").nets.length, 8);
      });

      const allow = `${dir}/allow`;
      await Deno.writeTextFile(allow, got.stdout);
      const server = await Server.start({
        chain: [...FILTER, "-S", "-d", "1", "--allow", allow],
        rules: [
          {
            from: "127.0.0.2",
            env: { TCPREMOTEIP: "203.0.113.77", TCPREMOTEHOST: "o.example.org" },
          },
          {
            from: "127.0.0.3",
            env: { TCPREMOTEIP: "2001:db8:25::7", TCPREMOTEHOST: "x.example.org" },
          },
          {
            from: "127.0.0.4",
            env: { TCPREMOTEIP: "198.51.100.7", TCPREMOTEHOST: "m.example.com" },
          },
        ],
      });
      try {
        const exempt: Array<[string, string, string]> = [
          ["an address of an included record", "127.0.0.2", "203.0.113.77"],
          ["an address in the MX host's //64", "127.0.0.3", "2001:db8:25:0:0:0:0:7"],
        ];
        for (const [name, from, ip] of exempt) {
          await t.step(`${name} passes at once, exempt`, async () => {
            const { seconds, pid } = await banner(server, from);
            // waited=, the screening's own time: the wall clock would count a Deno start too.
            const waited = Number(/ waited=([0-9.]+) /.exec(server.linesOf(pid)[0]!)?.[1]);
            assert.ok(
              waited < 0.3,
              `waited ${waited} s, want no delay (banner after ${seconds} s)`,
            );
            assert.equal(
              server.linesOf(pid)[0]!.replace(/ waited=0\.[0-9]{3} /, " waited=W "),
              `smtp-delay: info: PASS pid=${pid} ip=${ip} tier=- ptr=- lookup=unneeded ` +
                "delay=0.000 waited=W action=exec memory=exempt",
            );
          });
        }
        await t.step(
          "an address after the loop was never reached: it waits its delay",
          async () => {
            const { seconds, pid } = await banner(server, "127.0.0.4");
            assert.ok(seconds >= 1, `banner after ${seconds} s, want the 1 s delay`);
            assert.match(
              server.linesOf(pid)[0]!,
              /^smtp-delay: info: PASS pid=\d+ ip=198\.51\.100\.7 tier=ptr .* memory=off$/,
            );
          },
        );
      } finally {
        await server.stop();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
      await dns.stop();
    }
  },
);

Deno.test("allowlist spf prints nothing when it cannot expand every domain", E2E, async (t) => {
  const dns = await startSpfDns();
  try {
    await t.step("a domain the name server refuses: exit 111, at once", async () => {
      const got = await allowlist(dns, "spf", "other.test", "example.org");
      assert.deepEqual(
        { code: got.code, stdout: got.stdout, stderr: got.stderr },
        {
          code: 111,
          stdout: "",
          stderr: `smtp-delay: fatal: unable to look up TXT other.test: ${dns.address} answered ` +
            "REFUSED (expanding other.test)\n",
        },
      );
    });
    await t.step("a domain without SPF, one that does not exist: exit 100", async () => {
      const got = await allowlist(
        dns,
        "spf",
        "nospf.example.org",
        "example.net",
        "gone.example.org",
      );
      assert.deepEqual({ code: got.code, stdout: got.stdout }, { code: 100, stdout: "" });
      assert.deepEqual(got.stderr.split("\n").filter((l) => l.includes("fatal")), [
        "smtp-delay: fatal: unable to expand nospf.example.org: no SPF record at nospf.example.org",
        "smtp-delay: fatal: unable to expand gone.example.org: no SPF record at gone.example.org",
      ]);
    });
    await t.step("usage: exit 100", async () => {
      const got = await allowlist(dns, "spf");
      assert.deepEqual(got, {
        code: 100,
        stdout: "",
        stderr: "smtp-delay: fatal: no DOMAIN (usage: smtp-delay allowlist spf DOMAIN ...)\n",
      });
    });
  } finally {
    await dns.stop();
  }
});

/** README's cron line: the command after the schedule and the user. */
async function cronLine(): Promise<string> {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const start = readme.indexOf("<!-- cron line: allowlist spf");
  const end = readme.indexOf("<!-- end of cron line -->", start);
  assert.ok(start >= 0 && end > start, "README.md has no cron line");
  const line = readme.slice(start, end).split("\n").find((l) => /^ {4}[0-9]/.test(l));
  assert.ok(line, "no cron line between the markers");
  return line.trim().split(/\s+/).slice(6).join(" ");
}

Deno.test("README's cron line replaces the file on success only", E2E, async (t) => {
  const dns = await startSpfDns();
  const dir = await Deno.makeTempDir({ prefix: "smtp-delay-cron-" });
  try {
    const shim = `${dir}/smtp-delay`;
    await Deno.writeTextFile(shim, `#!/bin/sh\nexec ${FILTER.join(" ")} "$@"\n`);
    await Deno.chmod(shim, 0o755);
    const line = await cronLine();
    assert.match(line, /\/usr\/local\/sbin\/smtp-delay allowlist spf [a-z. ]+;/);
    const command = (domains: string) =>
      line.replaceAll("/etc/smtp-delay", dir)
        .replace("/usr/local/sbin/smtp-delay", shim)
        .replace(/allowlist spf [a-z. ]+;/, `allowlist spf ${domains};`);
    const sh = (domains: string) =>
      run(["sh", "-c", command(domains)], runFileEnv({ SMTPDELAY_DNS: dns.address }));
    await Deno.writeTextFile(`${dir}/local`, "192.0.2.50 # the monitoring host\n");

    await t.step("a good run: the local file, then the expansion", async () => {
      const got = await sh("example.org example.net");
      assert.equal(got.code, 0, got.stderr);
      assert.equal(
        await Deno.readTextFile(`${dir}/allow`),
        "192.0.2.50 # the monitoring host\n" + FILE,
      );
    });
    await t.step("a failed run leaves the file as it was", async () => {
      const before = await Deno.stat(`${dir}/allow`);
      const got = await sh("example.org other.test");
      assert.equal(got.code, 111, got.stderr);
      assert.equal(
        await Deno.readTextFile(`${dir}/allow`),
        "192.0.2.50 # the monitoring host\n" + FILE,
      );
      assert.equal((await Deno.stat(`${dir}/allow`)).ino, before.ino);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
    await dns.stop();
  }
});
