/**
 * scripts/relocate_cache.ts: the last step of preparing the launcher's
 * module cache (scripts/install.sh). Deno keys its cache by absolute path:
 * the emitted JavaScript of /X/main.ts is gen/file/X/main.ts.js, and the
 * module records of dep_analysis_cache_v2 are keyed by file:///X/main.ts.
 * The cache is prepared where the program is staged (DESTDIR, a temporary
 * directory) and must serve the program at its final path, so this moves
 * the emitted files and rewrites the keys from FROM to TO. The emitted files
 * themselves are not changed: their inline source maps keep naming FROM,
 * which only stack traces show (Deno checks an emitted file by the hashes of
 * its source and its own text, not by its path).
 *
 * Then it checkpoints each SQLite file into the database itself and leaves
 * beside it an empty -wal file and a -shm that is a directory. Deno opens
 * these files in WAL mode; the -shm is SQLite's index of the WAL, shared
 * through mmap, which every opener allowed to write rebuilds (root at every
 * start: new mtimes). SQLite opens a -shm it cannot open for writing
 * read-only, keeps the index in its own memory, and reads the database
 * without writing a byte. A directory can be opened read-only by anyone and
 * written by no one, not even root: so every start reads the cache and none
 * writes it, whoever runs it (checked by tests/e2e/install_test.ts). A
 * reader that may not write needs the -wal to exist.
 *
 * usage: deno run --allow-read --allow-write scripts/relocate_cache.ts CACHE FROM TO
 * (FROM and TO absolute directories). Exit 0, 100 for bad usage, 111 on failure.
 */
import { DatabaseSync } from "node:sqlite";

/** The SQLite files of a Deno 2.9 cache and their table keyed by specifier. */
const DATABASES: ReadonlyArray<readonly [string, string]> = [
  ["dep_analysis_cache_v2", "moduleinfocache"],
  ["node_analysis_cache_v2", "cjsanalysiscache"],
];

/** A path Deno and a file URL write alike: plain characters only. */
const PLAIN_PATH = /^\/[A-Za-z0-9._+\/-]*$/;

function fail(code: number, message: string): never {
  console.error(`relocate_cache: fatal: ${message}`);
  Deno.exit(code);
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Moves gen/file/FROM to gen/file/TO, and drops the directories FROM leaves empty. */
function moveEmitted(cache: string, from: string, to: string): void {
  const source = `${cache}/gen/file${from}`;
  if (!exists(source)) fail(111, `no emitted files under "${source}"`);
  const target = `${cache}/gen/file${to}`;
  Deno.mkdirSync(target.slice(0, target.lastIndexOf("/")), { recursive: true });
  Deno.renameSync(source, target);
  for (let dir = source.slice(0, source.lastIndexOf("/")); dir.length > cache.length + 9;) {
    try {
      Deno.removeSync(dir); // only when empty
    } catch {
      break;
    }
    dir = dir.slice(0, dir.lastIndexOf("/"));
  }
}

/** Rewrites the keys under FROM to TO, checkpoints, leaves an empty -wal and a -shm directory. */
function rewriteKeys(path: string, table: string, from: string, to: string): void {
  if (!exists(path)) return;
  const db = new DatabaseSync(path);
  const prefix = `file://${from}/`;
  db.prepare(
    `UPDATE ${table} SET specifier = ? || substr(specifier, ?) WHERE substr(specifier, 1, ?) = ?`,
  ).run(`file://${to}/`, prefix.length + 1, prefix.length, prefix);
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  db.close();
  Deno.writeFileSync(`${path}-wal`, new Uint8Array());
  if (exists(`${path}-shm`)) Deno.removeSync(`${path}-shm`, { recursive: true });
  Deno.mkdirSync(`${path}-shm`);
}

const [cache, from, to] = Deno.args;
if (Deno.args.length !== 3 || !cache || !from || !to) {
  fail(100, "usage: relocate_cache.ts CACHE FROM TO");
}
for (const dir of [from, to]) {
  if (!PLAIN_PATH.test(dir) || dir.endsWith("/")) {
    fail(100, `"${dir}" is not an absolute directory of plain characters (A-Z a-z 0-9 . _ + - /)`);
  }
}
try {
  if (from !== to) moveEmitted(cache, from, to);
  for (const [name, table] of DATABASES) rewriteKeys(`${cache}/${name}`, table, from, to);
} catch (e) {
  fail(111, `unable to relocate "${cache}": ${e instanceof Error ? e.message : String(e)}`);
}
