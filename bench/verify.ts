/**
 * The byte check: what each client sent against what the recorder read
 * (RECORD_DIR/PID.in, every byte in order, one file per run of the recorder).
 * A session is found by its first line, which is unique in a run
 * (`EHLO bench-N`, `EHLO early-N`).
 */
import type { ClientResult } from "./load.ts";

export interface Verify {
  /** Runs of the recorder (PID.in files). */
  readonly recorderRuns: number;
  /** Recorder runs that read nothing: the next program started for a client already gone. */
  readonly emptyRuns: number;
  /** Patients that sent something. */
  readonly patientsChecked: number;
  /** Patients whose bytes the recorder did not read exactly (lost, added or reordered). */
  readonly patientsDamaged: number;
  /** Bytes a patient sent that did not reach the recorder in order, summed. */
  readonly lostBytes: number;
  /** Early talkers whose bytes reached the recorder. */
  readonly earlyReached: number;
}

function firstLine(bytes: Uint8Array): string {
  const nl = bytes.indexOf(10);
  return new TextDecoder().decode(nl < 0 ? bytes : bytes.subarray(0, nl + 1));
}

/** How many leading bytes `a` and `b` have in common. */
function commonPrefix(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export async function verify(recordDir: string, results: readonly ClientResult[]): Promise<Verify> {
  const byFirstLine = new Map<string, Uint8Array>();
  let recorderRuns = 0;
  let emptyRuns = 0;
  for await (const e of Deno.readDir(recordDir)) {
    if (!e.name.endsWith(".in")) continue;
    const bytes = await Deno.readFile(`${recordDir}/${e.name}`);
    recorderRuns++;
    if (bytes.length === 0) emptyRuns++;
    else byFirstLine.set(firstLine(bytes), bytes);
  }
  let patientsChecked = 0;
  let patientsDamaged = 0;
  let lostBytes = 0;
  let earlyReached = 0;
  for (const r of results) {
    if (r.sent.length === 0) continue;
    const got = byFirstLine.get(firstLine(r.sent));
    if (r.kind === "early") {
      if (got) earlyReached++;
    } else if (r.kind === "patient") {
      patientsChecked++;
      const same = got ? commonPrefix(r.sent, got) : 0;
      lostBytes += r.sent.length - same;
      if (same !== r.sent.length || got!.length !== r.sent.length) patientsDamaged++;
    }
  }
  return { recorderRuns, emptyRuns, patientsChecked, patientsDamaged, lostBytes, earlyReached };
}
