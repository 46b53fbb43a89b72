/**
 * The only foreign code: the few libc calls Deno lacks, behind a plain
 * interface. Deno cannot exec(), cannot wait on fd 0 without reading it, and
 * cannot tell "bytes waiting" from "peer closed"; libc can.
 *
 * The library is opened once per process, on first use.
 */

/** poll(2) event bits (Linux). */
export const POLLIN = 0x1;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;

const FIONREAD = 0x541bn;
const MSG_PEEK = 0x2;
const MSG_DONTWAIT = 0x40;
const SHUT_WR = 1;
const O_RDONLY_CLOEXEC = 0o2000000;
const SIGPIPE = 13;

/** What the rest of the program may ask of libc. */
export interface Libc {
  /**
   * Waits, on a helper thread, until `fd` is readable or hung up, without
   * reading a byte. Resolves with poll's revents (0 after `timeoutMs`, or when
   * a signal interrupted the wait). The event loop keeps running meanwhile.
   */
  waitReadable(fd: number, timeoutMs: number): Promise<number>;
  /**
   * poll(2) on `fd` on this thread: blocks the whole process until `fd` is
   * readable or hung up, or `timeoutMs` pass (0: returns at once). Resolves
   * nothing, reads nothing: returns revents, 0 after the timeout.
   */
  readable(fd: number, timeoutMs: number): number;
  /**
   * Resolves after `ms`, waiting on a helper thread (poll(2) on no fd). A
   * timer without setTimeout(), whose first use costs a Deno process about
   * 15 ms of CPU.
   */
  sleep(ms: number): Promise<void>;
  /** How many bytes wait unread on `fd` (FIONREAD); -1 when the fd cannot say. */
  bytesWaiting(fd: number): number;
  /** Up to `max` waiting bytes of a socket, left unread; undefined for a non-socket. */
  peek(fd: number, max: number): Uint8Array | undefined;
  /** Reads up to `max` bytes that are already waiting (never blocks the caller's intent). */
  readWaiting(fd: number, max: number): Uint8Array;
  /** Writes all of `bytes`; false when the peer is gone. */
  writeAll(fd: number, bytes: Uint8Array): boolean;
  /**
   * The first 4 KB of a file, for /proc and /sys, which Deno's own file API
   * opens only under --allow-all; undefined when it cannot be read.
   */
  readProcFile(path: string): string | undefined;
  /** Sends FIN on a socket; a no-op on a pipe. */
  shutdownWrite(fd: number): void;
  /** alarm(2): SIGALRM in `seconds` (0 cancels); exec keeps it. */
  alarm(seconds: number): void;
  /**
   * Replaces this process with `argv[0]` (searched in PATH), keeping the pid,
   * fds 0/1/2 and the environment as Deno.env left it, with SIGPIPE back at its
   * default. Returns only on failure, with the reason.
   */
  exec(argv: readonly string[]): string;
}

const SYMBOLS = {
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  pollSync: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  signal: { parameters: ["i32", "pointer"], result: "pointer" },
  execvp: { parameters: ["buffer", "buffer"], result: "i32" },
  alarm: { parameters: ["u32"], result: "u32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let opened: Libc | undefined;

/** Opens libc (once) and returns the interface. */
export function libc(): Libc {
  opened ??= wrap(Deno.dlopen("libc.so.6", SYMBOLS).symbols);
  return opened;
}

function pollFd(fd: number): Uint8Array {
  const buf = new Uint8Array(8); // struct pollfd { int fd; short events; short revents; }
  const view = new DataView(buf.buffer);
  view.setInt32(0, fd, true);
  view.setInt16(4, POLLIN, true);
  return buf;
}

function revents(buf: Uint8Array): number {
  return new DataView(buf.buffer).getInt16(6, true);
}

function cString(text: string): Uint8Array {
  return new TextEncoder().encode(text + "\0");
}

function wrap(sym: Symbols): Libc {
  const reason = (): string => {
    const errno = new Deno.UnsafePointerView(sym.__errno_location()!).getInt32();
    const text = sym.strerror(errno);
    return text === null ? `errno ${errno}` : Deno.UnsafePointerView.getCString(text);
  };
  return {
    async waitReadable(fd, timeoutMs) {
      const buf = pollFd(fd);
      const n = await sym.poll(buf, 1n, timeoutMs);
      return n > 0 ? revents(buf) : 0;
    },
    async sleep(ms) {
      await sym.poll(new Uint8Array(8), 0n, Math.max(0, Math.ceil(ms)));
    },
    readable(fd, timeoutMs) {
      const buf = pollFd(fd);
      return sym.pollSync(buf, 1n, timeoutMs) > 0 ? revents(buf) : 0;
    },
    bytesWaiting(fd) {
      const n = new Int32Array(1);
      return sym.ioctl(fd, FIONREAD, new Uint8Array(n.buffer)) === 0 ? n[0]! : -1;
    },
    peek(fd, max) {
      const buf = new Uint8Array(max);
      const n = Number(sym.recv(fd, buf, BigInt(max), MSG_PEEK | MSG_DONTWAIT));
      return n < 0 ? undefined : buf.subarray(0, n);
    },
    readWaiting(fd, max) {
      const buf = new Uint8Array(max);
      const n = Number(sym.read(fd, buf, BigInt(max)));
      return buf.subarray(0, Math.max(n, 0));
    },
    writeAll(fd, bytes) {
      let rest = bytes;
      while (rest.length > 0) {
        const n = Number(sym.write(fd, rest, BigInt(rest.length)));
        if (n <= 0) return false;
        rest = rest.subarray(n);
      }
      return true;
    },
    readProcFile(path) {
      const fd = sym.open(cString(path), O_RDONLY_CLOEXEC);
      if (fd < 0) return undefined;
      const buf = new Uint8Array(4096);
      const n = Number(sym.read(fd, buf, BigInt(buf.length)));
      sym.close(fd);
      return n < 0 ? undefined : new TextDecoder().decode(buf.subarray(0, n));
    },
    shutdownWrite(fd) {
      sym.shutdown(fd, SHUT_WR);
    },
    alarm(seconds) {
      sym.alarm(seconds);
    },
    exec(argv) {
      const strings = argv.map(cString);
      const pointers = new BigUint64Array(strings.length + 1); // NULL-terminated
      strings.forEach((s, i) => {
        pointers[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s)));
      });
      sym.signal(SIGPIPE, null); // SIG_DFL: Deno ignores SIGPIPE, and exec keeps "ignored"
      sym.execvp(strings[0]!, new Uint8Array(pointers.buffer));
      const why = reason();
      sym.signal(SIGPIPE, Deno.UnsafePointer.create(1n)); // back to SIG_IGN, as Deno had it
      return why;
    },
  };
}
