/**
 * src/serve/lines.ts: pure tables, then the same values checked against what
 * the real ucspi-tcp tcpserver logs and hands its child, on a free loopback
 * port, with a python3 client (bounded waits, no sleeps).
 */
import assert from "node:assert/strict";
import {
  baseVars,
  childEnv,
  type Connection,
  connectionVars,
  denyLine,
  endLine,
  okLine,
  pidLine,
  safe,
} from "../src/serve/lines.ts";
import { tcprules } from "./fixtures/tcprules.ts";

/** A connection from 192.0.2.9:40001 to 198.51.100.1:25; rows change what they test. */
function connection(changes: {
  localHost?: string | undefined;
  remoteHost?: string | undefined;
  v6?: boolean;
} = {}): Connection {
  return {
    local: { ip: "198.51.100.1", port: 25, host: changes.localHost },
    remote: { ip: "192.0.2.9", port: 40001, host: changes.remoteHost },
    v6: changes.v6 ?? false,
  };
}

const V6: Connection = {
  local: { ip: "2001:db8:0:0:0:0:0:25", port: 25, host: "mx.example" },
  remote: { ip: "2001:db8:0:0:0:0:0:9", port: 40001, host: undefined },
  v6: true,
};

Deno.test("safe() writes outside text as tcpserver logs it", async (t) => {
  const rows: { name: string; text: string | undefined; want: string }[] = [
    { name: "undefined is empty", text: undefined, want: "" },
    { name: "empty stays empty", text: "", want: "" },
    { name: "a host name is kept", text: "mail.example.com", want: "mail.example.com" },
    { name: "! and ~ (33 and 126) are kept", text: "!a~", want: "!a~" },
    { name: "a space (32) is ?", text: "a b", want: "a?b" },
    { name: "DEL (127) is ?", text: "a\x7fb", want: "a?b" },
    { name: "control bytes are ?", text: "\r\n\t\0x", want: "????x" },
    { name: "% is ? (syslog)", text: "100%", want: "100?" },
    { name: ": is ? (the field separator)", text: "a:b::c", want: "a?b??c" },
    {
      name: "a non-ASCII letter is ? per UTF-8 byte, as tcpserver writes it",
      text: "m\u00e9l",
      want: "m??l",
    },
    { name: "99 bytes are kept whole", text: "a".repeat(99), want: "a".repeat(99) },
    {
      name: "101 bytes are cut at 100 and marked ...",
      text: "b".repeat(101),
      want: `${"b".repeat(100)}...`,
    },
    {
      name: "odd bytes past 100 are cut, not cleaned",
      text: `${"c".repeat(100)}:%\n`,
      want: `${"c".repeat(100)}...`,
    },
    {
      name: "odd bytes before the cut are cleaned",
      text: `:${"d".repeat(150)}`,
      want: `?${"d".repeat(99)}...`,
    },
    {
      name: "exactly 100 bytes get ... too, as tcpserver's safecats does",
      text: "e".repeat(100),
      want: `${"e".repeat(100)}...`,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.equal(safe(row.text), row.want);
    });
  }
});

/** The environment childEnv() makes for a connection with these rules, as a Record. */
function envOf(
  base: Readonly<Record<string, string>>,
  conn: Connection,
  rules: Readonly<Record<string, string>>,
  verdict: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const vars = childEnv(baseVars(base), connectionVars(conn, rules), verdict);
  return Object.fromEntries(
    vars.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
}

Deno.test("childEnv() sets tcpserver's variables over the server's", async (t) => {
  const rows: {
    name: string;
    base: Record<string, string>;
    conn: Connection;
    rules: Record<string, string>;
    want: Record<string, string>;
  }[] = [
    {
      name: "both names known",
      base: {},
      conn: connection({ localHost: "mx.example", remoteHost: "client.example" }),
      rules: {},
      want: {
        PROTO: "TCP",
        TCPLOCALHOST: "mx.example",
        TCPLOCALIP: "198.51.100.1",
        TCPLOCALPORT: "25",
        TCPREMOTEHOST: "client.example",
        TCPREMOTEIP: "192.0.2.9",
        TCPREMOTEPORT: "40001",
      },
    },
    {
      name: "no names: TCPLOCALHOST and TCPREMOTEHOST are not set",
      base: {},
      conn: connection(),
      rules: {},
      want: {
        PROTO: "TCP",
        TCPLOCALIP: "198.51.100.1",
        TCPLOCALPORT: "25",
        TCPREMOTEIP: "192.0.2.9",
        TCPREMOTEPORT: "40001",
      },
    },
    {
      name: "the server's other variables are kept",
      base: { PATH: "/bin:/usr/bin", UID: "89", SMTPDELAY: "JUSTDELAY" },
      conn: connection(),
      rules: {},
      want: {
        PATH: "/bin:/usr/bin",
        UID: "89",
        SMTPDELAY: "JUSTDELAY",
        PROTO: "TCP",
        TCPLOCALIP: "198.51.100.1",
        TCPLOCALPORT: "25",
        TCPREMOTEIP: "192.0.2.9",
        TCPREMOTEPORT: "40001",
      },
    },
    {
      name: "the server's own TCP* variables are dropped when unknown, replaced when known",
      base: {
        PROTO: "TCP6",
        TCPLOCALHOST: "stale-local",
        TCPLOCALIP: "10.0.0.1",
        TCPLOCALPORT: "1",
        TCPREMOTEHOST: "stale-remote",
        TCPREMOTEINFO: "stale-ident",
        TCPREMOTEIP: "10.0.0.2",
        TCPREMOTEPORT: "2",
      },
      conn: connection(),
      rules: {},
      want: {
        PROTO: "TCP",
        TCPLOCALIP: "198.51.100.1",
        TCPLOCALPORT: "25",
        TCPREMOTEIP: "192.0.2.9",
        TCPREMOTEPORT: "40001",
      },
    },
    {
      name: "TCPREMOTEINFO is never set: no ident",
      base: { TCPREMOTEINFO: "root" },
      conn: connection({ localHost: "mx", remoteHost: "c" }),
      rules: {},
      want: {
        PROTO: "TCP",
        TCPLOCALHOST: "mx",
        TCPLOCALIP: "198.51.100.1",
        TCPLOCALPORT: "25",
        TCPREMOTEHOST: "c",
        TCPREMOTEIP: "192.0.2.9",
        TCPREMOTEPORT: "40001",
      },
    },
    {
      name: "an empty name is a known name, set empty",
      base: {},
      conn: connection({ localHost: "", remoteHost: "" }),
      rules: {},
      want: {
        PROTO: "TCP",
        TCPLOCALHOST: "",
        TCPLOCALIP: "198.51.100.1",
        TCPLOCALPORT: "25",
        TCPREMOTEHOST: "",
        TCPREMOTEIP: "192.0.2.9",
        TCPREMOTEPORT: "40001",
      },
    },
    {
      name: "names go in as they are, not cleaned as the logs are",
      base: {},
      conn: connection({ localHost: "a:b%c", remoteHost: "x y" }),
      rules: {},
      want: {
        PROTO: "TCP",
        TCPLOCALHOST: "a:b%c",
        TCPLOCALIP: "198.51.100.1",
        TCPLOCALPORT: "25",
        TCPREMOTEHOST: "x y",
        TCPREMOTEIP: "192.0.2.9",
        TCPREMOTEPORT: "40001",
      },
    },
    {
      name: "IPv6: PROTO is TCP6",
      base: {},
      conn: V6,
      rules: {},
      want: {
        PROTO: "TCP6",
        TCPLOCALHOST: "mx.example",
        TCPLOCALIP: "2001:db8:0:0:0:0:0:25",
        TCPLOCALPORT: "25",
        TCPREMOTEIP: "2001:db8:0:0:0:0:0:9",
        TCPREMOTEPORT: "40001",
      },
    },
    {
      name: "the rules' variables are added, an empty one too",
      base: {},
      conn: connection(),
      rules: { RELAYCLIENT: "", SMTPDELAY: "JUSTDELAY" },
      want: {
        PROTO: "TCP",
        TCPLOCALIP: "198.51.100.1",
        TCPLOCALPORT: "25",
        TCPREMOTEIP: "192.0.2.9",
        TCPREMOTEPORT: "40001",
        RELAYCLIENT: "",
        SMTPDELAY: "JUSTDELAY",
      },
    },
    {
      name: "the rules' variables override tcpserver's and the server's",
      base: { SMTPDELAY: "" },
      conn: connection({ remoteHost: "looked.up" }),
      rules: {
        TCPREMOTEHOST: "from.rule",
        TCPREMOTEINFO: "from-rule",
        PROTO: "X",
        TCPLOCALPORT: "2525",
        SMTPDELAY: "JUSTDELAY",
      },
      want: {
        SMTPDELAY: "JUSTDELAY",
        PROTO: "X",
        TCPLOCALIP: "198.51.100.1",
        TCPLOCALPORT: "2525",
        TCPREMOTEHOST: "from.rule",
        TCPREMOTEINFO: "from-rule",
        TCPREMOTEIP: "192.0.2.9",
        TCPREMOTEPORT: "40001",
      },
    },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.deepEqual(envOf(row.base, row.conn, row.rules), row.want);
    });
  }
});

Deno.test("childEnv(): the verdict's variables over the rules', over tcpserver's, over the server's", () => {
  const base = { TCPREMOTEHOST: "stale", KEEP: "1", RBLSMTPD: "from the run file" };
  const rules = { RELAYCLIENT: "", SMTPDELAY_TIER: "from a rule" };
  const got = envOf(base, connection({ remoteHost: "new" }), rules, {
    SMTPDELAY_TIER: "ptr",
    RBLSMTPD: "",
  });
  assert.equal(got.KEEP, "1");
  assert.equal(got.TCPREMOTEHOST, "new");
  assert.equal(got.RELAYCLIENT, "");
  assert.equal(got.SMTPDELAY_TIER, "ptr");
  assert.equal(got.RBLSMTPD, "");
  assert.equal(
    childEnv(baseVars(base), {}, {}).filter((kv) => kv.startsWith("TCPREMOTEHOST=")).length,
    0,
    "a name the server inherited is not a client's",
  );
});

Deno.test("the tcpserver lines have tcpserver's words and fields", async (t) => {
  const rows: { name: string; got: string; want: string }[] = [
    {
      name: "pid line",
      got: pidLine(4608, connection()),
      want: "pid 4608 from 192.0.2.9",
    },
    {
      name: "ok line, no names",
      got: okLine(4608, connection()),
      want: "ok 4608 :198.51.100.1:25 :192.0.2.9::40001",
    },
    {
      name: "ok line, both names",
      got: okLine(17, connection({ localHost: "mx.example", remoteHost: "client.example" })),
      want: "ok 17 mx.example:198.51.100.1:25 client.example:192.0.2.9::40001",
    },
    {
      name: "ok line, names cleaned",
      got: okLine(17, connection({ localHost: "a:b", remoteHost: "x%y\r\n" })),
      want: "ok 17 a?b:198.51.100.1:25 x?y??:192.0.2.9::40001",
    },
    {
      name: "ok line, an empty name as no name",
      got: okLine(17, connection({ localHost: "" })),
      want: "ok 17 :198.51.100.1:25 :192.0.2.9::40001",
    },
    {
      name: "ok line, a long name cut",
      got: okLine(1, connection({ remoteHost: "h".repeat(120) })),
      want: `ok 1 :198.51.100.1:25 ${"h".repeat(100)}...:192.0.2.9::40001`,
    },
    {
      name: "ok line, IPv6",
      got: okLine(9, V6),
      want: "ok 9 mx.example:2001:db8:0:0:0:0:0:25:25 :2001:db8:0:0:0:0:0:9::40001",
    },
    {
      name: "deny line, PID 0",
      got: denyLine(0, connection({ remoteHost: "client.example" })),
      want: "deny 0 :198.51.100.1:25 client.example:192.0.2.9::40001",
    },
    { name: "end line, exit 0", got: endLine(4608, 0), want: "end 4608 status 0" },
    {
      name: "end line, exit 3 is status 768",
      got: endLine(4608, 768),
      want: "end 4608 status 768",
    },
    { name: "end line, killed by SIGKILL", got: endLine(5, 9), want: "end 5 status 9" },
  ];
  for (const row of rows) {
    await t.step(row.name, () => {
      assert.equal(row.got, row.want);
    });
  }
});

// --- the real tcpserver ---

/** The longest any wait on tcpserver or the client may take. */
const DEADLINE_MS = 10_000;

function withDeadline<T>(promise: Promise<T>, what: string, ms = DEADLINE_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing in ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** What one client of a real tcpserver saw, and what tcpserver logged (without "tcpserver: "). */
interface Served {
  /** tcpserver's port (-1). */
  port: number;
  /** The client's port. */
  clientPort: number;
  /** What the client read until the server closed. */
  text: string;
  /** tcpserver's lines for the connection: pid, ok or deny, end. */
  lines: string[];
  /** The child's pid as tcpserver logged it. */
  pid: number;
}

/**
 * Starts the real tcpserver with `args` (then 127.0.0.1 0 ...program) under exactly `env`,
 * connects once from 127.0.0.1, reads until the server closes, waits for the end line, stops it.
 */
async function serveOnce(
  args: string[],
  program: string[],
  env: Record<string, string>,
): Promise<Served> {
  const child = new Deno.Command("/usr/bin/tcpserver", {
    args: ["-1", ...args, "127.0.0.1", "0", ...program],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  let changed = () => {};
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      log += chunk;
      changed();
    }
  })();
  /** The lines of the log once one matches `pattern`. */
  const logged = async (pattern: RegExp): Promise<string[]> => {
    const deadline = Date.now() + DEADLINE_MS;
    for (;;) {
      const lines = log.split("\n").map((l) => l.replace(/^tcpserver: /, ""));
      if (lines.some((l) => pattern.test(l))) return lines;
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`no line matching ${pattern} from tcpserver:\n${log}`);
      await withDeadline(
        new Promise<void>((resolve) => changed = resolve),
        "tcpserver's log",
        left,
      );
    }
  };
  try {
    let out = "";
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    try {
      while (!out.includes("\n")) {
        const { value, done } = await withDeadline(reader.read(), "tcpserver's port");
        if (done) assert.fail(`tcpserver ended before listening: ${log}`);
        out += value;
      }
    } finally {
      await reader.cancel();
    }
    const port = Number(out.trim());
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const clientPort = conn.localAddr.port;
    const text = await withDeadline(new Response(conn.readable).text(), "the client's read");
    const first = (await logged(/^(ok|deny) /)).find((l) => /^(ok|deny) /.test(l))!;
    const pid = Number(first.split(" ")[1]);
    const lines = (await logged(new RegExp(`^end ${pid} `)))
      .filter((l) => new RegExp(`^[a-z]+ ${pid} `).test(l));
    return { port, clientPort, text, lines, pid };
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await reading;
  }
}

/** The environment /usr/bin/env printed, as a record. */
function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const eq = line.indexOf("=");
    env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

/** What tcpserver starts with: stale connection variables it must drop or replace. */
const SERVER_ENV = {
  KEEP: "1",
  PROTO: "TCP6",
  TCPLOCALHOST: "stale-local",
  TCPREMOTEHOST: "stale-remote",
  TCPREMOTEINFO: "stale-ident",
  TCPREMOTEIP: "10.0.0.2",
};

/** The connection a real run served, with tcpserver's -l name. */
function served(run: Served, localName: string): Connection {
  return {
    local: { ip: "127.0.0.1", port: run.port, host: localName },
    remote: { ip: "127.0.0.1", port: run.clientPort, host: undefined },
    v6: false,
  };
}

Deno.test("the lines and the environment are what the real tcpserver gives a client it allows", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "serve_lines_test" });
  try {
    const rulesFile = `${dir}/rules.cdb`;
    await tcprules(rulesFile, '127.0.0.1:allow,RELAYCLIENT="",TCPREMOTEHOST="from.rule"\n');
    const run = await serveOnce(
      ["-v", "-R", "-H", "-l", "mx.test", "-x", rulesFile],
      ["/usr/bin/env"],
      SERVER_ENV,
    );
    const conn = served(run, "mx.test");
    await t.step("pid, ok and end lines", () => {
      assert.deepEqual(
        [pidLine(run.pid, conn), okLine(run.pid, conn), endLine(run.pid, 0)],
        run.lines,
      );
    });
    await t.step("the child's environment, the rule's variables last", () => {
      const got = envOf(SERVER_ENV, conn, { RELAYCLIENT: "", TCPREMOTEHOST: "from.rule" });
      assert.deepEqual(got, parseEnv(run.text));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("endLine() writes the raw wait status as the real tcpserver does", async () => {
  const run = await serveOnce(["-v", "-R", "-H", "-l", "0"], ["/bin/sh", "-c", "exit 3"], {});
  assert.equal(endLine(run.pid, 768), run.lines.at(-1));
});

Deno.test("denyLine() has the shape of the real tcpserver's deny line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "serve_lines_test" });
  try {
    const rulesFile = `${dir}/rules.cdb`;
    await tcprules(rulesFile, "127.0.0.1:deny\n");
    const run = await serveOnce(
      ["-v", "-R", "-H", "-l", "mx.test", "-x", rulesFile],
      ["/bin/true"],
      {},
    );
    assert.equal(run.text, "", "a denied client got bytes");
    assert.equal(denyLine(run.pid, served(run, "mx.test")), run.lines[1]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("okLine() cleans a local name as the real tcpserver does", async (t) => {
  const rows: { name: string; localName: string }[] = [
    { name: "':', '%' and a space", localName: "mx:1%x y" },
    { name: "99 bytes", localName: "a".repeat(99) },
    { name: "101 bytes", localName: "b".repeat(101) },
    { name: "exactly 100 bytes", localName: "c".repeat(100) },
    { name: "a non-ASCII letter", localName: "m\u00e9l.example" },
  ];
  for (const row of rows) {
    await t.step(row.name, async () => {
      const run = await serveOnce(["-v", "-R", "-H", "-l", row.localName], ["/bin/true"], {});
      assert.equal(okLine(run.pid, served(run, row.localName)), run.lines[1]);
    });
  }
});
