/**
 * Debian's qpsmtpd as a real SMTP server that is not ours, next in a chain:
 * tests/e2e/qpsmtpd-ucspi runs it for one session on fd 0 and 1, with a
 * configuration made here that accepts mail for example.net into a maildir.
 */
import { run } from "./harness.ts";
import { ROOT } from "../fixtures/source.ts";

/** The program to put next in the chain (perl; QPSMTPD_CONFIG names its configuration). */
export const QPSMTPD = `${ROOT}tests/e2e/qpsmtpd-ucspi`;

/** Makes `paths` nobody's (uid and gid 65534, as `id nobody` says on Debian). */
export async function giveToNobody(...paths: string[]): Promise<void> {
  const out = await run(["chown", "-R", "nobody:nogroup", ...paths]);
  if (out.code !== 0) throw new Error(`chown: ${out.stderr}`);
}

/**
 * qpsmtpd's configuration in DIR/qpsmtpd, accepting mail for example.net into
 * DIR/maildir as mx.example.net; `forNobody`: the maildir and spool are
 * nobody's (qpsmtpd run as nobody). Returns the configuration directory.
 */
export async function qpsmtpdConfig(dir: string, forNobody = false): Promise<string> {
  const conf = `${dir}/qpsmtpd`;
  for (const d of ["maildir/new", "maildir/cur", "maildir/tmp", "qpsmtpd/spool"]) {
    await Deno.mkdir(`${dir}/${d}`, { recursive: true });
  }
  await Deno.chmod(`${conf}/spool`, 0o700);
  const files: Record<string, string> = {
    plugin_dirs: "/usr/share/qpsmtpd/plugins",
    loglevel: "4", // warnings: qpsmtpd's own lines stay out of the way
    me: "mx.example.net",
    rcpthosts: "example.net",
    spool_dir: `${conf}/spool`,
    plugins: `rcpt_ok\nqueue/maildir ${dir}/maildir`,
  };
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${conf}/${name}`, text + "\n");
  }
  if (forNobody) await giveToNobody(`${dir}/maildir`, `${conf}/spool`);
  return conf;
}

/** The messages qpsmtpd delivered into DIR/maildir/new. */
export async function delivered(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${dir}/maildir/new`)) {
    out.push(await Deno.readTextFile(`${dir}/maildir/new/${e.name}`));
  }
  return out;
}
