/** What /proc says of a process the e2e tests started. */

/** The files under `dir` that process `pid` has open (one entry per fd), relative to `dir`, sorted. */
export async function openFilesUnder(pid: number, dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const e of Deno.readDir(`/proc/${pid}/fd`)) {
    const link = await Deno.readLink(`/proc/${pid}/fd/${e.name}`).catch(() => "");
    if (link.startsWith(`${dir}/`)) found.push(link.slice(dir.length + 1));
  }
  return found.sort();
}
