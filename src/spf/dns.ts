/**
 * The allowlist command's DNS, and its only caller: a stub resolver of its
 * own that asks a recursive name server (SMTPDELAY_DNS, or resolv.conf's)
 * for TXT, A, AAAA and MX records, over UDP with EDNS0, and over TCP when
 * the answer is truncated (an SPF record of 1,000 bytes is common).
 *
 * Why not Deno.resolveDns: it reads SERVFAIL and REFUSED as NXDOMAIN
 * (tests/rdns_test.ts pins it), so a name server that fails would pass for
 * an `include:` with no record or an `a` with no address, and a cron job
 * would replace a good allowlist with a short one. Here a failure is a
 * DnsFailure (exit 111), told apart from a name that has no record.
 */
import dgram from "node:dgram";
import type { NameServer } from "../config.ts";
import { parseResolvConf, readResolvConf } from "../resolv_conf.ts";
import type { Family } from "./cidr.ts";
import type { Resolver } from "./expand.ts";

const TYPE = { A: 1, CNAME: 5, MX: 15, TXT: 16, AAAA: 28, OPT: 41 } as const;
type QueryType = "A" | "AAAA" | "MX" | "TXT";

/** The largest UDP answer asked for (EDNS0), the size DNS Flag Day 2020 settled on. */
const UDP_SIZE = 1232;
/** CNAMEs followed from one name, over all the answers. */
const MAX_CNAMES = 8;

/** RCODE words, for the reason a query failed. */
const RCODES: Readonly<Record<number, string>> = {
  1: "FORMERR",
  2: "SERVFAIL",
  4: "NOTIMP",
  5: "REFUSED",
};

/** The DNS failed for a query: a server's error, no answer in time, a malformed answer. */
export class DnsFailure extends Error {
  constructor(readonly query: string, readonly reason: string) {
    super(`unable to look up ${query}: ${reason}`);
  }
}

/** One record of an answer section: its owner (lowercase), type, and where its RDATA lies. */
interface Rr {
  readonly owner: string;
  readonly type: number;
  readonly start: number;
  readonly end: number;
}

/** A DNS message, as far as the resolver reads it. */
export interface Message {
  readonly id: number;
  readonly response: boolean;
  readonly truncated: boolean;
  readonly rcode: number;
  readonly question: { readonly name: string; readonly type: number } | undefined;
  readonly answers: readonly Rr[];
  readonly bytes: Uint8Array;
}

/** Thrown while reading a malformed message. */
class Malformed extends Error {}

/** A name's wire form: each character a byte; lowercase. Throws a DnsFailure for a bad name. */
function encodeName(name: string): number[] {
  const out: number[] = [];
  for (const label of name.replace(/\.$/, "").split(".")) {
    if (label.length === 0 || label.length > 63) throw new DnsFailure(name, "not a DNS name");
    out.push(label.length, ...[...label.toLowerCase()].map((c) => c.charCodeAt(0) & 0xff));
  }
  out.push(0);
  if (out.length > 255) throw new DnsFailure(name, "not a DNS name");
  return out;
}

/** A query: recursion desired, one question, an EDNS0 OPT record offering UDP_SIZE. */
export function encodeQuery(id: number, name: string, type: QueryType): Uint8Array {
  const t = TYPE[type];
  return Uint8Array.from([
    id >> 8,
    id & 0xff,
    0x01, // RD
    0x00,
    0,
    1, // QDCOUNT
    0,
    0,
    0,
    0,
    0,
    1, // ARCOUNT: the OPT record
    ...encodeName(name),
    t >> 8,
    t & 0xff,
    0,
    1, // IN
    0, // the root
    0,
    TYPE.OPT,
    UDP_SIZE >> 8,
    UDP_SIZE & 0xff,
    0,
    0,
    0,
    0, // extended RCODE, version, flags
    0,
    0, // RDLENGTH
  ]);
}

/** A name at `at`, compression pointers followed; its characters are its bytes, lowercased. */
function readName(bytes: Uint8Array, at: number): { name: string; next: number } {
  const labels: string[] = [];
  let next: number | undefined;
  for (let jumps = 0;; jumps++) {
    if (at >= bytes.length || jumps > 127) throw new Malformed();
    const n = bytes[at]!;
    if (n === 0) {
      next ??= at + 1;
      break;
    }
    if ((n & 0xc0) === 0xc0) {
      if (at + 1 >= bytes.length) throw new Malformed();
      next ??= at + 2;
      at = ((n & 0x3f) << 8) | bytes[at + 1]!;
      continue;
    }
    if (n > 63 || at + 1 + n > bytes.length) throw new Malformed();
    labels.push(String.fromCharCode(...bytes.subarray(at + 1, at + 1 + n)));
    at += 1 + n;
  }
  return { name: labels.join(".").replace(/[A-Z]/g, (c) => c.toLowerCase()), next };
}

/** Reads a message; throws Malformed when it cannot be read. */
export function decodeMessage(bytes: Uint8Array): Message {
  if (bytes.length < 12) throw new Malformed();
  const u16 = (at: number) => {
    if (at + 2 > bytes.length) throw new Malformed();
    return (bytes[at]! << 8) | bytes[at + 1]!;
  };
  const qdcount = u16(4);
  const ancount = u16(6);
  let at = 12;
  let question: Message["question"];
  for (let i = 0; i < qdcount; i++) {
    const { name, next } = readName(bytes, at);
    if (i === 0) question = { name, type: u16(next) };
    at = next + 4;
  }
  const answers: Rr[] = [];
  for (let i = 0; i < ancount; i++) {
    const { name, next } = readName(bytes, at);
    const length = u16(next + 8);
    const start = next + 10;
    if (start + length > bytes.length) throw new Malformed();
    answers.push({ owner: name, type: u16(next), start, end: start + length });
    at = start + length;
  }
  return {
    id: u16(0),
    response: (bytes[2]! & 0x80) !== 0,
    truncated: (bytes[2]! & 0x02) !== 0,
    rcode: bytes[3]! & 0x0f,
    question,
    answers,
    bytes,
  };
}

/** The RDATA of the records of `type` for `name`, after the CNAMEs in the answer. */
function recordsOf(
  message: Message,
  name: string,
  type: QueryType,
): { owner: string; rdata: Rr[] } {
  let owner = name.toLowerCase().replace(/\.$/, "");
  for (let hops = 0; hops < MAX_CNAMES; hops++) {
    const cname = message.answers.find((rr) => rr.type === TYPE.CNAME && rr.owner === owner);
    if (!cname) break;
    owner = readName(message.bytes, cname.start).name;
  }
  return {
    owner,
    rdata: message.answers.filter((rr) => rr.type === TYPE[type] && rr.owner === owner),
  };
}

/** The strings of a TXT record joined (RFC 7208 3.3), each byte a character. */
function txtOf(bytes: Uint8Array, rr: Rr): string {
  let text = "";
  for (let at = rr.start; at < rr.end;) {
    const n = bytes[at]!;
    if (at + 1 + n > rr.end) throw new Malformed();
    text += String.fromCharCode(...bytes.subarray(at + 1, at + 1 + n));
    at += 1 + n;
  }
  return text;
}

/** The system's name servers, from /etc/resolv.conf (127.0.0.1 when it names none, as libc). */
export function systemServers(): NameServer[] {
  return parseResolvConf(readResolvConf());
}

/** How the resolver asks. */
export interface DnsOptions {
  /** Asked in order: the next when one fails or stays silent. */
  readonly servers: readonly NameServer[];
  /** How long one server may take to answer one try, in milliseconds. */
  readonly timeoutMs: number;
  /** Rounds over the servers before a query fails. */
  readonly tries: number;
}

/** The command's defaults: 3 s a try, 2 rounds (libc's are 5 s and 2). */
export const DEFAULT_TIMING = { timeoutMs: 3000, tries: 2 } as const;

const where = (s: NameServer) =>
  s.ipAddr.includes(":") ? `[${s.ipAddr}]:${s.port}` : `${s.ipAddr}:${s.port}`;

/**
 * Resolves with the value `run` gives `done`, or undefined after `ms`;
 * either way once, the timer cleared and `run`'s clean-up called.
 */
function orTimeout<T>(
  ms: number,
  run: (done: (value: T | undefined) => void) => () => void,
): Promise<T | undefined> {
  return new Promise((resolve) => {
    let finished = false;
    let cleanUp = () => {};
    const done = (value: T | undefined) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      cleanUp();
      resolve(value);
    };
    const timer = setTimeout(() => done(undefined), ms);
    cleanUp = run(done);
    if (finished) cleanUp();
  });
}

/** One query to one server over UDP: its answer, or undefined after `ms` without one. */
function overUdp(server: NameServer, query: Uint8Array, ms: number): Promise<Message | undefined> {
  return orTimeout<Message>(ms, (done) => {
    const socket = dgram.createSocket(server.ipAddr.includes(":") ? "udp6" : "udp4");
    socket.on("error", () => {}); // an ICMP error: no answer, as from a silent server
    socket.on("message", (data: Uint8Array) => {
      try {
        const message = decodeMessage(new Uint8Array(data));
        if (matches(message, query)) done(message);
      } catch (e) {
        if (!(e instanceof Malformed)) throw e; // a stray or broken datagram: wait on
      }
    });
    socket.send(query, server.port, server.ipAddr, () => {});
    return () => socket.close();
  });
}

/** One query to one server over TCP (RFC 7766): its answer, or undefined after `ms` without one. */
function overTcp(server: NameServer, query: Uint8Array, ms: number): Promise<Message | undefined> {
  return orTimeout<Message>(ms, (done) => {
    let conn: Deno.TcpConn | undefined;
    let over = false;
    (async () => {
      try {
        conn = await Deno.connect({ hostname: server.ipAddr, port: server.port });
        if (over) return conn.close();
        const framed = new Uint8Array(2 + query.length);
        framed.set([query.length >> 8, query.length & 0xff]);
        framed.set(query, 2);
        for (let sent = 0; sent < framed.length;) sent += await conn.write(framed.subarray(sent));
        let buffer = new Uint8Array(0);
        const wanted = () => buffer.length < 2 ? Infinity : 2 + ((buffer[0]! << 8) | buffer[1]!);
        const chunk = new Uint8Array(65536);
        while (buffer.length < wanted()) {
          const n = await conn.read(chunk);
          if (n === null) return done(undefined);
          const grown = new Uint8Array(buffer.length + n);
          grown.set(buffer);
          grown.set(chunk.subarray(0, n), buffer.length);
          buffer = grown;
        }
        const message = decodeMessage(buffer.slice(2, wanted()));
        done(matches(message, query) ? message : undefined);
      } catch {
        done(undefined); // refused, reset, closed by the timeout, or malformed: no answer
      }
    })();
    return () => {
      over = true;
      try {
        conn?.close();
      } catch {
        // closed already
      }
    };
  });
}

/** An answer to `query`: its id, QR set, the same question. */
function matches(message: Message, query: Uint8Array): boolean {
  const asked = decodeMessage(query);
  return message.response && message.id === asked.id &&
    message.question?.name === asked.question?.name &&
    message.question?.type === asked.question?.type;
}

/**
 * Asks the servers for `name`'s records of `type` until one answers
 * NOERROR or NXDOMAIN, and reads each record's RDATA with `read`; a CNAME
 * whose target the answer left out is followed with a query of its own.
 * Throws a DnsFailure when no server answers so.
 */
async function lookup<T>(
  options: DnsOptions,
  name: string,
  type: QueryType,
  read: (bytes: Uint8Array, rr: Rr) => T,
  hops = 0,
): Promise<T[]> {
  const what = `${type} ${name}`;
  let reason = "no name server";
  for (let round = 0; round < options.tries; round++) {
    for (const server of options.servers) {
      const id = crypto.getRandomValues(new Uint16Array(1))[0]!;
      const query = encodeQuery(id, name, type);
      let message = await overUdp(server, query, options.timeoutMs);
      if (message?.truncated) message = await overTcp(server, query, options.timeoutMs);
      if (!message) {
        reason = `no answer from ${where(server)}`;
        continue;
      }
      if (message.rcode !== 0 && message.rcode !== 3) {
        reason = `${where(server)} answered ${RCODES[message.rcode] ?? `RCODE ${message.rcode}`}`;
        continue;
      }
      let found: { owner: string; values: T[] };
      try {
        const { owner, rdata } = recordsOf(message, name, type);
        found = { owner, values: rdata.map((rr) => read(message.bytes, rr)) };
      } catch (e) {
        if (!(e instanceof Malformed)) throw e;
        reason = `a malformed answer from ${where(server)}`;
        continue;
      }
      const cnamed = found.owner !== name.toLowerCase().replace(/\.$/, "");
      if (found.values.length > 0 || message.rcode !== 0 || !cnamed) return found.values;
      if (hops >= MAX_CNAMES) throw new DnsFailure(what, "too many CNAMEs");
      return await lookup(options, found.owner, type, read, hops + 1);
    }
  }
  throw new DnsFailure(what, reason);
}

/** The resolver of the expansion, over the name servers; each query asked once per run. */
export class DnsResolver implements Resolver {
  private readonly cache = new Map<string, Promise<unknown>>();

  constructor(private readonly options: DnsOptions) {}

  private once<T>(key: string, ask: () => Promise<T>): Promise<T> {
    let answer = this.cache.get(key) as Promise<T> | undefined;
    if (!answer) this.cache.set(key, answer = ask());
    return answer;
  }

  txt(name: string): Promise<string[]> {
    return this.once(`TXT ${name}`, () => lookup(this.options, name, "TXT", txtOf));
  }

  addresses(name: string, family: Family): Promise<Uint8Array[]> {
    const type = family === 4 ? "A" : "AAAA";
    const length = family === 4 ? 4 : 16;
    return this.once(`${type} ${name}`, async () => {
      const all = await lookup(
        this.options,
        name,
        type,
        (bytes, rr) => bytes.slice(rr.start, rr.end),
      );
      return all.filter((a) => a.length === length);
    });
  }

  mx(name: string): Promise<string[]> {
    return this.once(`MX ${name}`, async () => {
      const names = await lookup(this.options, name, "MX", (bytes, rr) => {
        if (rr.end - rr.start < 3) throw new Malformed();
        return readName(bytes, rr.start + 2).name;
      });
      return names.filter((n) => n !== ""); // a null MX (RFC 7505): no host
    });
  }
}
