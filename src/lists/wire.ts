/**
 * DNS messages for the lists' A queries (RFC 1035), both ways. Pure. An
 * answer is read with every length checked against the packet: a hostile or
 * broken one is "not our answer" or an error, never a throw or a loop.
 */

const TYPE_A = 1;
const TYPE_CNAME = 5;
const TYPE_SOA = 6;
const CLASS_IN = 1;
const HEADER_BYTES = 12;
const FLAG_QR = 0x8000;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const RCODE_NXDOMAIN = 3;
/** The answer codes a name server fails with, as RFC 1035 4.1.1 names them. */
const RCODES: Readonly<Record<number, string>> = {
  1: "FORMERR",
  2: "SERVFAIL",
  4: "NOTIMP",
  5: "REFUSED",
};
/** Longest name on the wire (RFC 1035 3.1). */
const MAX_NAME = 255;

/** The query for the A records of `name` (recursion desired), with `id`. */
export function encodeQuery(id: number, name: string): Uint8Array {
  const labels = name.split(".").map((label) => new TextEncoder().encode(label));
  const length = labels.reduce((sum, l) => sum + 1 + l.length, 1);
  const packet = new Uint8Array(HEADER_BYTES + length + 4);
  const view = new DataView(packet.buffer);
  view.setUint16(0, id);
  view.setUint16(2, FLAG_RD);
  view.setUint16(4, 1); // one question
  let at = HEADER_BYTES;
  for (const label of labels) {
    packet[at++] = label.length;
    packet.set(label, at);
    at += label.length;
  }
  packet[at++] = 0;
  view.setUint16(at, TYPE_A);
  view.setUint16(at + 2, CLASS_IN);
  return packet;
}

/**
 * What an answer says. `found`: the A records of the name (`[]`: the name
 * does not exist, or has no A record), and how long they may be kept
 * (undefined: no TTL was given, as for a negative answer without the zone's
 * SOA). `error`: the server could not answer (SERVFAIL, REFUSED, a
 * truncated or malformed answer).
 */
export type Answer =
  | { kind: "found"; addresses: string[]; ttlSeconds: number | undefined }
  | { kind: "error"; reason: string };

/** A name at `at`, following compression pointers; undefined when malformed. */
function readName(packet: Uint8Array, at: number): { name: string; next: number } | undefined {
  const labels: string[] = [];
  let length = 0;
  let next: number | undefined;
  let limit = at; // a pointer must point before the last one: no loop
  while (at < packet.length) {
    const size = packet[at]!;
    if (size === 0) return { name: labels.join("."), next: next ?? at + 1 };
    if ((size & 0xc0) === 0xc0) {
      if (at + 1 >= packet.length) return undefined;
      const target = ((size & 0x3f) << 8) | packet[at + 1]!;
      if (target >= limit) return undefined;
      next ??= at + 2;
      at = limit = target;
      continue;
    }
    if (size & 0xc0 || at + 1 + size > packet.length) return undefined;
    length += size + 1;
    if (length > MAX_NAME) return undefined;
    labels.push(String.fromCharCode(...packet.subarray(at + 1, at + 1 + size)).toLowerCase());
    at += 1 + size;
  }
  return undefined;
}

/** A TTL as received: one with the top bit set counts as 0 (RFC 2181 8). */
const ttlOf = (raw: number) => raw > 0x7fffffff ? 0 : raw;

interface ResourceRecord {
  readonly name: string;
  readonly type: number;
  readonly klass: number;
  readonly ttl: number;
  readonly data: Uint8Array;
  /** Where `data` starts in the packet (for names inside it). */
  readonly dataAt: number;
}

/** `count` resource records from `at`; undefined when they run past the packet. */
function readRecords(
  packet: Uint8Array,
  at: number,
  count: number,
): { records: ResourceRecord[]; next: number } | undefined {
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const records: ResourceRecord[] = [];
  for (let i = 0; i < count; i++) {
    const owner = readName(packet, at);
    if (!owner || owner.next + 10 > packet.length) return undefined;
    const size = view.getUint16(owner.next + 8);
    const dataAt = owner.next + 10;
    if (dataAt + size > packet.length) return undefined;
    records.push({
      name: owner.name,
      type: view.getUint16(owner.next),
      klass: view.getUint16(owner.next + 2),
      ttl: ttlOf(view.getUint32(owner.next + 4)),
      data: packet.subarray(dataAt, dataAt + size),
      dataAt,
    });
    at = dataAt + size;
  }
  return { records, next: at };
}

/** A negative answer's TTL (RFC 2308 5): the smaller of the SOA's own TTL and its MINIMUM. */
function negativeTtl(packet: Uint8Array, authority: readonly ResourceRecord[]): number | undefined {
  for (const record of authority) {
    if (record.type !== TYPE_SOA || record.klass !== CLASS_IN) continue;
    const mname = readName(packet, record.dataAt);
    const rname = mname && readName(packet, mname.next);
    if (!rname || rname.next + 20 > record.dataAt + record.data.length) return undefined;
    const minimum = new DataView(packet.buffer, packet.byteOffset).getUint32(rname.next + 16);
    return Math.min(record.ttl, ttlOf(minimum));
  }
  return undefined;
}

/**
 * Reads `packet` as the answer to the query `id` for `name`'s A records;
 * undefined when it is not that answer (another id or question, a query, a
 * runt), which the caller drops as if it had never come.
 */
export function decodeAnswer(packet: Uint8Array, id: number, name: string): Answer | undefined {
  if (packet.length < HEADER_BYTES) return undefined;
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const flags = view.getUint16(2);
  if (view.getUint16(0) !== id || !(flags & FLAG_QR) || view.getUint16(4) !== 1) return undefined;
  const question = readName(packet, HEADER_BYTES);
  if (!question || question.next + 4 > packet.length) return undefined;
  if (question.name !== name.toLowerCase()) return undefined;
  if (view.getUint16(question.next) !== TYPE_A || view.getUint16(question.next + 2) !== CLASS_IN) {
    return undefined;
  }
  if (flags & FLAG_TC) return { kind: "error", reason: "truncated answer" };
  const rcode = flags & 0xf;
  if (rcode !== 0 && rcode !== RCODE_NXDOMAIN) {
    return { kind: "error", reason: RCODES[rcode] ?? `rcode ${rcode}` };
  }
  const answers = readRecords(packet, question.next + 4, view.getUint16(6));
  const authority = answers && readRecords(packet, answers.next, view.getUint16(8));
  if (!answers || !authority) return { kind: "error", reason: "malformed answer" };
  // The A records of the name, or of the names its CNAMEs lead to within the answer.
  const names = new Set([name.toLowerCase()]);
  for (const record of answers.records) {
    if (record.type === TYPE_CNAME && record.klass === CLASS_IN && names.has(record.name)) {
      const target = readName(packet, record.dataAt);
      if (target) names.add(target.name);
    }
  }
  const found = answers.records.filter((r) =>
    r.type === TYPE_A && r.klass === CLASS_IN && r.data.length === 4 && names.has(r.name)
  );
  if (rcode === 0 && found.length > 0) {
    return {
      kind: "found",
      addresses: found.map((r) => r.data.join(".")),
      ttlSeconds: Math.min(...found.map((r) => r.ttl)),
    };
  }
  return { kind: "found", addresses: [], ttlSeconds: negativeTtl(packet, authority.records) };
}
