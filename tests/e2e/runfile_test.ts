/**
 * The run files of README.md, for real: their text, taken from between the
 * README's `<!-- run file: NAME -->` and `<!-- end of run file -->` markers,
 * with only what must differ on a test machine changed (the port, the rules
 * cdb, the installed smtp-delay's path, Debian's qpsmtpd in qmail-smtpd's
 * place, the log directory, nobody for qmaild and qmaill), run by svscan with
 * multilog as the logger, in front of a real SMTP server that is not ours.
 * swaks delivers one message; the test checks the 250, the message in
 * qpsmtpd's maildir, the PASS line with multilog's TAI64N stamp, and the
 * stop by `svc -dx`. The tcprules give the client 0.2 s delays and
 * RBLSMTPD="" (rblsmtpd then asks no DNSBL), and the filter's PTR lookup goes
 * to a local dnsmasq: nothing leaves the machine.
 */
import assert from "node:assert/strict";
import { ROOT } from "../fixtures/source.ts";
import { runFileEnv } from "../fixtures/source.ts";
import { E2E, freePort, poll, run, startDns, writeRules } from "./harness.ts";
import { giveToNobody, QPSMTPD, qpsmtpdConfig } from "./qpsmtpd.ts";

const README = await Deno.readTextFile(`${ROOT}README.md`);

/** The run file NAME of README.md: the indented block between its markers, unindented. */
function runFile(name: string): string {
  const opening = README.split("\n").find((l) =>
    l === `<!-- run file: ${name} -->` || l.startsWith(`<!-- run file: ${name} (`)
  );
  assert.ok(opening, `README.md has no run file ${name}`);
  const start = README.indexOf(opening) + opening.length;
  const end = README.indexOf("<!-- end of run file -->", start);
  const block = README.slice(start, end).replace(/^\n+|\n+$/g, "");
  const lines = block.split("\n");
  assert.ok(lines.every((l) => l.startsWith("    ")), `run file ${name} is one code block`);
  return lines.map((l) => l.slice(4)).join("\n") + "\n";
}

/** `text` with `from` replaced by `to`; fails when `from` is not in it (README changed). */
function change(text: string, from: string | RegExp, to: string): string {
  assert.ok(typeof from === "string" ? text.includes(from) : from.test(text), `no ${from}`);
  return text.replaceAll(from, to);
}

/** What a test machine must change in a run file of README.md, and nothing else. */
function forTest(
  text: string,
  p: { port: number; dir: string; smtpDelay: string; smtpd: string },
): string {
  let t = text;
  if (t.includes("envuidgid")) {
    t = change(t, "envuidgid qmaild", "envuidgid nobody");
    t = change(t, "/etc/tcp.smtp.cdb", `${p.dir}/tcp.smtp.cdb`);
    t = change(t, / 0 smtp \\\n/g, ` 127.0.0.1 ${p.port} \\\n`);
    t = change(t, /^( +)smtp-delay /gm, `$1${p.smtpDelay} `);
    t = change(t, "/var/qmail/bin/qmail-smtpd", p.smtpd);
  } else {
    t = change(t, "setuidgid qmaill", "setuidgid nobody");
    t = change(t, "/var/log/qmail/smtpd", `${p.dir}/log`);
  }
  return t;
}

/** A temporary directory that nobody may enter (makeTempDir's are 0700). */
async function openTempDir(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  await Deno.chmod(dir, 0o755);
  return dir;
}

/** multilog's `current` once it has a line matching `re`. */
function logged(dir: string, re: RegExp): Promise<string> {
  return poll(`${re} in ${dir}/log/current`, async () => {
    const text = await Deno.readTextFile(`${dir}/log/current`).catch(() => "");
    return re.test(text) ? text : undefined;
  });
}

/** Whether a supervise runs in `service` (svok exits 0). */
async function supervised(service: string): Promise<boolean> {
  return (await run(["svok", service])).code === 0;
}

/** `svc -dx` on each service in order, waiting until its supervise is gone. */
async function stopServices(...services: string[]): Promise<void> {
  for (const s of services) {
    await run(["svc", "-dx", s]);
    await poll(`supervise in ${s} to exit`, async () => (await supervised(s)) ? undefined : true);
  }
}

/** smtp-delay as `make install-launcher` installs it into DIR/usr: its path. */
async function installSmtpDelay(dir: string): Promise<string> {
  const out = await run(["make", "-s", "-C", ROOT, "install-launcher", `PREFIX=${dir}/usr`]);
  assert.equal(out.code, 0, out.stderr);
  return `${dir}/usr/sbin/smtp-delay`;
}

async function tryRunFile(runName: string, mode: "filter" | "serve"): Promise<void> {
  const dir = await openTempDir("smtp-delay-runfile-");
  const dns = await startDns();
  let svscan: Deno.ChildProcess | undefined;
  const service = `${dir}/service/smtpd`;
  try {
    const port = freePort();
    // The checkout may be where nobody cannot go (a clone in /root): a copy nobody can run.
    await Deno.copyFile(QPSMTPD, `${dir}/qpsmtpd-ucspi`);
    await Deno.chmod(`${dir}/qpsmtpd-ucspi`, 0o755);
    const p = { port, dir, smtpDelay: await installSmtpDelay(dir), smtpd: `${dir}/qpsmtpd-ucspi` };
    await Deno.mkdir(`${service}/log`, { recursive: true });
    await Deno.mkdir(`${dir}/log`);
    await Deno.mkdir(`${dir}/state`);
    await giveToNobody(`${dir}/log`, `${dir}/state`);
    await writeRules(`${dir}/tcp.smtp.cdb`, [
      `127.0.0.1:allow,RBLSMTPD="",SMTPDELAYd="0.2",SMTPDELAYD="0.2",SMTPDELAYP="0.2",` +
      `SMTPDELAY_DNS="${dns.address}",SMTPDELAY_STORE="sqlite:${dir}/state/state.db"`,
      ":allow",
    ]);
    const conf = await qpsmtpdConfig(dir, true);
    await Deno.writeTextFile(`${service}/run`, forTest(runFile(runName), p), { mode: 0o755 });
    await Deno.writeTextFile(`${service}/log/run`, forTest(runFile("qmail-smtpd/log/run"), p), {
      mode: 0o755,
    });

    svscan = new Deno.Command("svscan", {
      args: [`${dir}/service`],
      clearEnv: true,
      env: runFileEnv({ QPSMTPD_CONFIG: conf }),
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await logged(dir, /^@[0-9a-f]{24} tcpserver: status: 0\/100$/m);

    const marker = `runfile-${mode}-${crypto.randomUUID()}`;
    const swaks = await run([
      "swaks",
      ...["--server", `127.0.0.1:${port}`, "--helo", "client.example.org"],
      ...["--from", "a@example.org", "--to", "b@example.net"],
      ...["--header", `Subject: ${marker}`, "--body", `${marker}\n`],
    ]);
    const current = () => Deno.readTextFile(`${dir}/log/current`).catch(() => "");
    assert.equal(swaks.code, 0, `${swaks.stdout}${swaks.stderr}\nlog:\n${await current()}`);
    assert.match(swaks.stdout, /^<- {2}220 mx\.example\.net ESMTP qpsmtpd/m, "qpsmtpd's banner");
    assert.match(swaks.stdout, /^<- {2}250 Queued!/m, "qpsmtpd took the message");

    const delivered = await poll("the message in the maildir", async () => {
      for await (const e of Deno.readDir(`${dir}/maildir/new`)) {
        const text = await Deno.readTextFile(`${dir}/maildir/new/${e.name}`);
        if (text.includes(marker)) return text;
      }
      return undefined;
    });
    assert.match(delivered, new RegExp(`^Subject: ${marker}$`, "m"));

    const log = await logged(
      dir,
      /^@[0-9a-f]{24} smtp-delay: info: PASS pid=\d+ ip=127\.0\.0\.1 .*action=exec memory=/m,
    );
    const pass = log.split("\n").find((l) => l.includes("smtp-delay: info: PASS "))!;
    assert.match(pass, / delay=0\.200 /, pass);
    assert.doesNotMatch(log, /error while loading|failed to map/, log);
    // The session's process ended well: exec'd qpsmtpd under softlimit exited 0.
    const pid = /PASS pid=(\d+) /.exec(pass)![1];
    await logged(dir, new RegExp(`^@[0-9a-f]{24} tcpserver: end ${pid} status 0$`, "m"));

    svscan.kill("SIGTERM"); // first, or it starts the services again
    await svscan.status;
    svscan = undefined;
    await stopServices(service, `${service}/log`);
    const after = await Deno.readTextFile(`${dir}/log/current`);
    assert.ok(after.endsWith("\n"), "multilog ended on a whole line");
    await assert.rejects(
      Deno.connect({ hostname: "127.0.0.1", port }),
      Deno.errors.ConnectionRefused,
      "nothing listens once stopped",
    );
  } finally {
    if (svscan) {
      svscan.kill("SIGTERM");
      await svscan.status;
      await stopServices(service, `${service}/log`).catch(() => {});
    }
    await dns.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test(
  "README's run file and logger, under svscan in front of qpsmtpd: mail gets in, PASS is logged",
  E2E,
  async () => {
    await tryRunFile("qmail-smtpd/run", "filter");
  },
);

Deno.test(
  "README's serve run file and logger, under svscan in front of qpsmtpd: mail gets in, PASS is logged",
  E2E,
  async () => {
    await tryRunFile("serve qmail-smtpd/run", "serve");
  },
);

Deno.test(
  "the run files of README.md keep their softlimit after smtp-delay, with 64000000",
  E2E,
  () => {
    for (const name of ["qmail-smtpd/run", "serve qmail-smtpd/run"]) {
      const text = runFile(name);
      assert.ok(text.indexOf("smtp-delay") < text.indexOf("softlimit"), text);
      assert.match(text, / softlimit -m 64000000 \/var\/qmail\/bin\/qmail-smtpd\n$/, text);
    }
  },
);
