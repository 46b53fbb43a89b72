/**
 * floor: the least a Deno process per connection costs, the benchmark's floor
 * for the product. Sleeps $SMTPDELAYP seconds, then execve()s the next program
 * (argv) through FFI with SIGPIPE back at its default. It watches nothing:
 * early talkers and quitters all reach the next program.
 *
 * It sleeps with Atomics.wait, not setTimeout: the first timer of a Deno
 * process costs about 15 ms of CPU (measured here: 86 against 71 ms per
 * process at a 50 ms delay), which is not part of the floor.
 *
 *     deno run $(cat permissions) bench/floor.ts prog [arg ...]
 */
const SIGPIPE = 13;

const seconds = Number(Deno.env.get("SMTPDELAYP") ?? "0");
if (seconds > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, seconds * 1000);

const libc = Deno.dlopen(
  "libc.so.6",
  {
    execvp: { parameters: ["buffer", "buffer"], result: "i32" },
    signal: { parameters: ["i32", "pointer"], result: "pointer" },
  } as const,
).symbols;

const strings = Deno.args.map((arg) => new TextEncoder().encode(arg + "\0"));
const argv = new BigUint64Array(strings.length + 1); // NULL-terminated
strings.forEach((s, i) => {
  argv[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s)));
});
libc.signal(SIGPIPE, null); // SIG_DFL
if (strings[0]) libc.execvp(strings[0], new Uint8Array(argv.buffer));
console.error(`floor: fatal: unable to run ${Deno.args[0] ?? "(nothing)"}`);
Deno.exit(111);
