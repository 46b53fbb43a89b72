/** Reader of D. J. Bernstein's constant database (cdb) format. Pure: the whole file in memory. */

/** The file is not a readable cdb: too short, or a position or length points past its end. */
export class CdbError extends Error {
  override name = "CdbError";
}

/** An open cdb. */
export interface Cdb {
  /**
   * The data of the first record whose key is `key` (a string is encoded as UTF-8), as a copy;
   * undefined if there is none. Throws CdbError if the lookup meets a corrupt or truncated part.
   */
  find(key: Uint8Array | string): Uint8Array | undefined;
}

const HEADER_BYTES = 2048;
const encoder = new TextEncoder();

/** The cdb hash: h = 5381, then h = ((h << 5) + h) ^ byte for each byte, as a u32. */
export function cdbHash(key: Uint8Array): number {
  let h = 5381;
  for (const byte of key) h = (Math.imul(h, 33) ^ byte) >>> 0;
  return h;
}

/**
 * Opens a cdb held in `bytes` (not copied: do not change it while the Cdb is in use).
 * Throws CdbError if it is shorter than the 2048-byte header; other damage is found by find().
 */
export function openCdb(bytes: Uint8Array): Cdb {
  if (bytes.length < HEADER_BYTES) {
    throw new CdbError(`Not a cdb: "${bytes.length}" bytes, shorter than the 2048-byte header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = (at: number, what: string): number => {
    if (at + 4 > bytes.length) {
      throw new CdbError(
        `Corrupt cdb: ${what} at byte "${at}" is past the end ("${bytes.length}")`,
      );
    }
    return view.getUint32(at, true);
  };
  const find = (key: Uint8Array): Uint8Array | undefined => {
    const hash = cdbHash(key);
    const tableAt = u32((hash & 255) * 8, "header");
    const slots = u32((hash & 255) * 8 + 4, "header");
    let slot = slots === 0 ? 0 : (hash >>> 8) % slots;
    for (let i = 0; i < slots; i++) {
      const slotHash = u32(tableAt + slot * 8, "hash slot");
      const recordAt = u32(tableAt + slot * 8 + 4, "hash slot");
      if (recordAt === 0) return undefined;
      if (slotHash === hash) {
        const keyBytes = u32(recordAt, "record key length");
        const dataBytes = u32(recordAt + 4, "record data length");
        const dataAt = recordAt + 8 + keyBytes;
        if (dataAt + dataBytes > bytes.length) {
          throw new CdbError(
            `Corrupt cdb: record at byte "${recordAt}" runs past the end ("${bytes.length}")`,
          );
        }
        if (keyBytes === key.length && key.every((b, j) => b === bytes[recordAt + 8 + j])) {
          return bytes.slice(dataAt, dataAt + dataBytes);
        }
      }
      slot = slot + 1 === slots ? 0 : slot + 1;
    }
    return undefined;
  };
  return { find: (key) => find(typeof key === "string" ? encoder.encode(key) : key) };
}
