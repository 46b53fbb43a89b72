/**
 * What the DNS sends is never trusted: a PTR name with control bytes reaches
 * the log and SMTPDELAY_PTR with `?` for each byte outside 33..126 (not
 * Deno's escapes), and an answer Deno's resolver cannot parse (a name longer
 * than RFC 1035 allows) is a failed lookup that puts no line of Deno's own
 * into the log. Both modes.
 */
import assert from "node:assert/strict";
import { type Answer, reverse4, startFakeDns } from "../fixtures/fake_dns.ts";
import { banner, E2E, MODES, type Rule, startServer } from "./harness.ts";

const RULES: Rule[] = [
  { from: "127.0.0.17", env: { TCPREMOTEIP: "192.0.2.17" } },
  { from: "127.0.0.19", env: { TCPREMOTEIP: "192.0.2.19" } },
];

const ANSWERS = new Map<string, Answer>([
  [reverse4("192.0.2.17"), { names: [["Mail\nX", "ex\\ample", "net"]] }],
  // Five labels of 63 bytes: 320 bytes, over the 255 of a name.
  [reverse4("192.0.2.19"), { names: [["a", "b", "c", "d", "e"].map((c) => c.repeat(63))] }],
]);

for (const mode of MODES) {
  Deno.test(
    `${mode}: hostile PTR names are cleaned, and only our lines reach the log`,
    E2E,
    async (t) => {
      const dns = await startFakeDns(ANSWERS);
      const server = await startServer(mode, {
        args: ["-S", "-d", "0.05", "-P", "0.4", "-t", "0.2"],
        rules: RULES,
        env: { SMTPDELAY_DNS: dns.address },
      });
      try {
        await t.step("control bytes: ? in the log line and in SMTPDELAY_PTR", async () => {
          const { pid } = await banner(server, "127.0.0.17");
          const env = (await server.record(pid))!.env;
          assert.equal(env.SMTPDELAY_PTR, "mail?x.ex\\ample.net");
          assert.equal(env.SMTPDELAY_TIER, "ptr");
          const line = await server.waitLog(/ PASS .* ip=192\.0\.2\.17 /);
          assert.match(line, / tier=ptr ptr=mail\?x\.ex\\ample\.net lookup=found /);
        });

        await t.step("a name too long to parse: a failed lookup, noptr", async () => {
          const { seconds } = await banner(server, "127.0.0.19");
          assert.ok(seconds >= 0.39, `banner after ${seconds} s, want the noptr delay`);
          const line = await server.waitLog(/ PASS .* ip=192\.0\.2\.19 /);
          assert.match(line, / tier=noptr ptr=- lookup=timeout delay=0\.400 /);
        });

        await t.step("every line of the log is ours or tcpserver's", () => {
          const foreign = server.lines.filter((l) =>
            !l.startsWith("smtp-delay: ") && !l.startsWith("tcpserver: ")
          );
          assert.deepEqual(foreign, [], server.lines.join("\n"));
        });
      } finally {
        await server.stop();
        await dns.stop();
      }
    },
  );
}
