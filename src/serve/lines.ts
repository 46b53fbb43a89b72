/**
 * What serve hands a child and writes in tcpserver's shape. Pure.
 *
 * The environment is tcpserver's: PROTO, TCPLOCALIP, TCPLOCALPORT,
 * TCPLOCALHOST, TCPREMOTEIP, TCPREMOTEPORT, TCPREMOTEHOST (the last three
 * kinds unset when unknown, TCPREMOTEINFO always unset: no ident), then the
 * rules' variables, which may override any of them.
 */

/** One end of a connection as tcpserver names it. */
export interface End {
  readonly ip: string;
  readonly port: number;
  host: string | undefined;
}

export interface Connection {
  readonly local: End;
  readonly remote: End;
  /** An IPv6 connection (PROTO=TCP6). */
  readonly v6: boolean;
}

const encoder = new TextEncoder();

/**
 * Host names and other outside text as tcpserver logs them: each byte (of
 * the UTF-8) outside 33..126, and `%` and `:`, becomes `?`; at 100 bytes
 * the text is cut and `...` added.
 */
export function safe(text: string | undefined): string {
  if (text === undefined) return "";
  const bytes = encoder.encode(text);
  let out = "";
  for (let i = 0; i < Math.min(bytes.length, 100); i++) {
    const c = bytes[i]!;
    out += c < 33 || c > 126 || c === 0x25 || c === 0x3a ? "?" : String.fromCharCode(c);
  }
  return bytes.length >= 100 ? out + "..." : out;
}

/** The server's environment without what tcpserver sets only when it knows it. */
export function baseEnv(base: Readonly<Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = { ...base };
  for (const name of ["TCPLOCALHOST", "TCPREMOTEHOST", "TCPREMOTEINFO"]) delete env[name];
  return env;
}

/** What one connection adds to the base environment: tcpserver's variables, then the rules'. */
export function connectionVars(
  conn: Connection,
  rules: Readonly<Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  env.PROTO = conn.v6 ? "TCP6" : "TCP";
  if (conn.local.host !== undefined) env.TCPLOCALHOST = conn.local.host;
  env.TCPLOCALIP = conn.local.ip;
  env.TCPLOCALPORT = String(conn.local.port);
  if (conn.remote.host !== undefined) env.TCPREMOTEHOST = conn.remote.host;
  env.TCPREMOTEIP = conn.remote.ip;
  env.TCPREMOTEPORT = String(conn.remote.port);
  return Object.assign(env, rules);
}

/** The server's environment (baseEnv) as the children get it: [NAME, NAME=VALUE] pairs. */
export function baseVars(base: Readonly<Record<string, string>>): Array<[string, string]> {
  return Object.entries(baseEnv(base)).map(([k, v]) => [k, `${k}=${v}`]);
}

/**
 * A child's environment, as NAME=VALUE strings: the server's (`base`, from
 * baseVars), then this connection's own variables (connectionVars: tcpserver's
 * and the rules'), then the verdict's, each overriding what came before.
 */
export function childEnv(
  base: ReadonlyArray<readonly [string, string]>,
  own: Readonly<Record<string, string>>,
  verdict: Readonly<Record<string, string>>,
): string[] {
  const given = { ...own, ...verdict };
  return [
    ...base.filter(([k]) => !Object.hasOwn(given, k)).map(([, kv]) => kv),
    ...Object.entries(given).map(([k, v]) => `${k}=${v}`),
  ];
}

/** `LOCALHOST:LOCALIP:LOCALPORT REMOTEHOST:REMOTEIP:INFO:REMOTEPORT`, tcpserver's pair (no ident). */
function ends(conn: Connection): string {
  const { local, remote } = conn;
  return `${safe(local.host)}:${local.ip}:${local.port} ` +
    `${safe(remote.host)}:${remote.ip}::${remote.port}`;
}

/** `pid PID from IP`. */
export function pidLine(pid: number, conn: Connection): string {
  return `pid ${pid} from ${conn.remote.ip}`;
}

/** `ok PID ...`: the child started. */
export function okLine(pid: number, conn: Connection): string {
  return `ok ${pid} ${ends(conn)}`;
}

/** `deny PID ...`: the rules said deny (PID 0: serve starts no process for it). */
export function denyLine(pid: number, conn: Connection): string {
  return `deny ${pid} ${ends(conn)}`;
}

/** `end PID status WSTAT`: the raw wait status, as tcpserver prints it. */
export function endLine(pid: number, status: number): string {
  return `end ${pid} status ${status}`;
}
