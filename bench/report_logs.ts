/**
 * Made-up logs of a busy mail host, for `make bench-report` and `make
 * report-demo`: smtp-delay's outcome lines (and, with `tcpserver`,
 * tcpserver -v's lines around each one) with multilog's TAI64N stamps, in a
 * multilog directory: rotated `@....s` files of `fileBytes`, then
 * `current`. Seeded: the same options give the same bytes.
 *
 * The mix: tiers ptr 45%, dynamic 20%, noptr 35%; mail servers (ptr) pass,
 * bots talk early (most at once, some after a few seconds) or hang up
 * (after 5, 10, 15 or 20 s mostly); a few hundred bots do most of it; more
 * traffic by day than by night; a few BUSY lines.
 *
 *     deno run --allow-write bench/report_logs.ts DIR LINES DAYS [tcpserver]
 */
import { encodeTai64n } from "../src/report/parse.ts";

export interface LogOptions {
  readonly dir: string;
  /** Lines in all, tcpserver's included. */
  readonly lines: number;
  readonly days: number;
  /** The last line's time, ms (the default: 2026-12-05 00:00 UTC). */
  readonly endMs?: number;
  /** tcpserver -v's pid, ok and end lines around each outcome line. */
  readonly tcpserver?: boolean;
  readonly fileBytes?: number;
  readonly seed?: number;
}

/** mulberry32: a small seeded generator, uniform in [0, 1). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A number in [0, 1) for a text, the same each time (FNV-1a). */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0) / 4294967296;
}

const DELAY = { ptr: 0.25, dynamic: 16, noptr: 26 } as const;
type Tier = keyof typeof DELAY;

/** Writes the directory; returns the number of smtp-delay lines among the lines. */
export async function generateLogs(o: LogOptions): Promise<{ ours: number; files: number }> {
  const rnd = random(o.seed ?? 11);
  const endMs = o.endMs ?? Date.UTC(2026, 11, 5);
  const startMs = endMs - o.days * 86_400_000;
  const fileBytes = o.fileBytes ?? 16 * 1024 * 1024;
  const perConnection = o.tcpserver ? 4 : 1;
  const connections = Math.floor(o.lines / perConnection);
  await Deno.mkdir(o.dir, { recursive: true });

  // Connection times: more by day (UTC 06-20) than by night, in order.
  const weights = Array.from({ length: 24 }, (_, h) => h >= 6 && h < 20 ? 3 : 1);
  const daySum = weights.reduce((a, b) => a + b, 0);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const zipf = (n: number) => Math.floor(n * rnd() ** 3); // a few addresses most often
  const ip = (pool: number, base: number) => {
    const k = base + zipf(pool);
    return `198.${18 + ((k >> 16) & 1)}.${(k >> 8) & 255}.${k & 255}`; // RFC 2544's range
  };
  const enc = new TextEncoder();
  let chunk: string[] = [];
  let chunkBytes = 0;
  let fileText: string[] = [];
  let fileSize = 0;
  let files = 0;
  let lastMs = startMs;
  const flushFile = async (name: string) => {
    await Deno.writeFile(`${o.dir}/${name}`, enc.encode(fileText.join("")));
    fileText = [];
    fileSize = 0;
    files++;
  };
  const emit = async (ms: number, text: string) => {
    const line = `${encodeTai64n(ms)} ${text}\n`;
    chunk.push(line);
    chunkBytes += line.length;
    if (chunkBytes > 1 << 20) {
      fileText.push(chunk.join(""));
      fileSize += chunkBytes;
      chunk = [];
      chunkBytes = 0;
      if (fileSize >= fileBytes) await flushFile(`${encodeTai64n(lastMs)}.s`);
    }
  };

  let pid = 1000;
  let ours = 0;
  for (let i = 0; i < connections; i++) {
    // The i-th connection's time: spread over the days, weighted by hour.
    const dayPart = (i / connections) * o.days;
    const day = Math.floor(dayPart);
    let within = (dayPart - day) * daySum;
    let hour = 0;
    while (within >= weights[hour]!) within -= weights[hour++]!;
    const ms = Math.max(
      lastMs,
      startMs + day * 86_400_000 + hour * 3_600_000 + (within / weights[hour]!) * 3_600_000,
    );
    lastMs = ms;
    // Each address keeps its tier: mail servers mostly ptr, bots mostly dynamic or noptr.
    const bot = rnd() < 0.5;
    const address = bot ? ip(60_000, 0) : ip(3_000, 70_000);
    const h = hash(address);
    const tier: Tier = bot
      ? (h < 0.05 ? "ptr" : h < 0.45 ? "dynamic" : "noptr")
      : (h < 0.85 ? "ptr" : h < 0.92 ? "dynamic" : "noptr");
    const ptr = tier === "ptr"
      ? (bot
        ? `host${address.replaceAll(".", "-")}.example.com`
        : `mx${zipf(3000)}.mail.example.net`)
      : tier === "dynamic"
      ? `dsl-${address.replaceAll(".", "-")}.pool.example.net`
      : "-";
    const p = pid++ % 32768 || 1;
    const head =
      `pid=${p} ip=${address} tier=${tier} ptr=${ptr} lookup=${
        tier === "noptr" ? "none" : "found"
      } ` +
      `delay=${DELAY[tier].toFixed(3)}`;
    let text: string;
    if (rnd() < 0.004) {
      text = `smtp-delay: info: BUSY ip=${address} why=waiting waiting=1000 action=421`;
    } else if (!bot) {
      const waited = DELAY[tier] + 0.005 + rnd() * 0.05;
      text = `smtp-delay: info: PASS ${head} waited=${waited.toFixed(3)} action=exec memory=${
        rnd() < 0.7 ? "passed" : "-"
      }`;
    } else {
      const what = rnd();
      if (tier === "ptr") { // a bot with a proper name: it talks at once, or waits and passes
        text = what < 0.7
          ? `smtp-delay: info: EARLY ${head} waited=${(0.005 + rnd() * 0.2).toFixed(3)} ` +
            `action=451 memory=- bytes=${14 + zipf(40)} data=EHLO?localhost??`
          : `smtp-delay: info: PASS ${head} waited=${(0.255 + rnd() * 0.05).toFixed(3)} ` +
            `action=exec memory=-`;
      } else if (tier === "noptr" && what < 0.1) {
        text = `smtp-delay: info: REFUSED ${head} waited=${(0.01 + rnd() * 0.05).toFixed(3)} ` +
          `action=421 memory=${pick(["penalty,box", "maxrate", "conns"])}`;
      } else if (what < 0.62) {
        const shape = rnd();
        const at = shape < 0.6 ? 0.005 + rnd() * 0.3 : shape < 0.9 ? 1 + rnd() * 4 : 8 + rnd() * 4;
        const waited = Math.min(at, DELAY[tier]);
        text = `smtp-delay: info: EARLY ${head} waited=${waited.toFixed(3)} action=451 ` +
          `memory=${rnd() < 0.5 ? "penalty" : "-"} bytes=${14 + zipf(40)} ` +
          `data=${pick(["EHLO?localhost??", "HELO?User??", "EHLO?[10.0.0.1]??", "QUIT??"])}`;
      } else if (what < 0.92) {
        const after = pick([5, 5, 10, 10, 10, 15, 20, 30]) + rnd() * 0.5;
        const waited = Math.min(after, DELAY[tier] - 0.1);
        text = `smtp-delay: info: CLOSED ${head} waited=${waited.toFixed(3)} action=exit memory=-`;
      } else {
        const waited = DELAY[tier] + 0.005 + rnd() * 0.05;
        text = `smtp-delay: info: PASS ${head} waited=${waited.toFixed(3)} action=exec memory=-`;
      }
    }
    if (o.tcpserver) {
      await emit(ms, `tcpserver: pid ${p} from ${address}`);
      await emit(
        ms,
        `tcpserver: ok ${p} mx.example.org:192.0.2.1:25 :${address}::${40000 + (i % 20000)}`,
      );
    }
    await emit(ms + 1, text);
    ours++;
    if (o.tcpserver) await emit(ms + 2, `tcpserver: end ${p} status 0`);
  }
  fileText.push(chunk.join(""));
  fileSize += chunkBytes;
  await flushFile("current");
  return { ours, files };
}

if (import.meta.main) {
  const [dir, lines, days, tcpserver] = Deno.args;
  if (!dir || !lines || !days) {
    console.error("usage: report_logs.ts DIR LINES DAYS [tcpserver]");
    Deno.exit(100);
  }
  const out = await generateLogs({
    dir,
    lines: Number(lines),
    days: Number(days),
    tcpserver: tcpserver === "tcpserver",
  });
  console.log(`${dir}: ${out.ours} smtp-delay lines in ${out.files} files`);
}
