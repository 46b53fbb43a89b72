/**
 * The server's system calls, through libc (serve mode only; the
 * per-connection filter never loads this module): a listening socket,
 * accept4, epoll, posix_spawn with the client on fd 0/1, pidfd and waitpid,
 * socket pairs and non-blocking reads and writes for relays, and the uid
 * switch of tcpserver's -U.
 *
 * Deno cannot hand a socket to a child process, nor watch a socket without
 * reading it; libc can. Every fd made here is close-on-exec: a child gets
 * the client on fd 0/1 and the server's fd 2, nothing else.
 */
import type { Ip } from "../ip.ts";

/** A socket's address. */
export interface Address {
  readonly ip: Ip;
  readonly port: number;
}

/** A system call that failed, with errno and its text. */
export class SysError extends Error {
  override name = "SysError";
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}

export const EAGAIN = 11;
export const EINTR = 4;
export const EMFILE = 24;
export const ENFILE = 23;
export const ENOBUFS = 105;
export const ENOMEM = 12;
export const EPIPE = 32;

export const EPOLLIN = 0x1;
export const EPOLLOUT = 0x4;
export const EPOLLERR = 0x8;
export const EPOLLHUP = 0x10;
export const EPOLLRDHUP = 0x2000;
export const EPOLLONESHOT = 0x40000000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;

const AF_INET = 2;
const AF_INET6 = 10;
const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const O_RDONLY_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;
const F_GETFL = 3;
const F_SETFL = 4;
const ENOTSOCK = 88;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;
const SHUT_WR = 1;
const WNOHANG = 1;
const SYS_PIDFD_OPEN = 434n;
const RLIMIT_NOFILE = 7;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
/** glibc's sizes on x86_64 and aarch64, rounded up. */
const SPAWN_ATTR_BYTES = 512;
const FILE_ACTIONS_BYTES = 128;
const SIGSET_BYTES = 128;
const EPOLL_EVENT_BYTES = 12; // packed on x86_64: u32 events, u64 data

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32", nonblocking: true },
  posix_spawnp: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_adddup2: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigdefault: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawnattr_setsigmask: { parameters: ["buffer", "buffer"], result: "i32" },
  sigemptyset: { parameters: ["buffer"], result: "i32" },
  sigfillset: { parameters: ["buffer"], result: "i32" },
  syscall: { parameters: ["i64", "i64", "i64"], result: "i64" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  setgid: { parameters: ["u32"], result: "i32" },
  setuid: { parameters: ["u32"], result: "i32" },
  setgroups: { parameters: ["usize", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** What the server asks of the system. */
export interface Sys {
  /** A listening TCP socket on `ip`:`port` (IPv6 `::` takes IPv4 too), non-blocking. */
  listen(ip: Ip, port: number, backlog: number): number;
  /** The next waiting connection (a blocking fd) and its peer, or the errno (EAGAIN: none). */
  accept(fd: number): { fd: number; remote: Address } | { errno: number };
  /** The local address of a socket. */
  localAddress(fd: number): Address;
  epollCreate(): number;
  /**
   * Adds `fd` to the epoll set (`events` EPOLL* bits), or changes it when
   * `modify`; `tag` comes back with its events (to tell a reused fd number
   * from the fd it was when the event was taken).
   */
  epollAdd(ep: number, fd: number, events: number, modify?: boolean, tag?: number): void;
  epollDelete(ep: number, fd: number): void;
  /**
   * Waits, on a helper thread, for up to `max` events or `timeoutMs`; the
   * event loop runs meanwhile. Resolves with [fd, events, tag] ([] on EINTR).
   */
  epollWait(
    ep: number,
    max: number,
    timeoutMs: number,
  ): Promise<Array<[number, number, number]>>;
  /**
   * Starts `argv[0]` (searched in PATH) with `input` as fd 0, `output` as
   * fd 1, the server's fd 2, `env` as its whole environment and every signal
   * at its default and unblocked. Returns the pid, or throws SysError.
   */
  spawn(argv: readonly string[], env: readonly string[], input: number, output: number): number;
  /** An fd that becomes readable when process `pid` ends. */
  pidfd(pid: number): number;
  /** The wait status of `pid` if it has ended (reaping it), else undefined. */
  reap(pid: number): number | undefined;
  /** A connected pair of stream sockets (for a relay), both close-on-exec and blocking. */
  socketPair(): [number, number];
  /** Makes `fd` non-blocking (for a relay, which owns it). */
  setNonBlocking(fd: number): void;
  /** read(2) on a non-blocking fd: bytes, 0 at the end, or -errno. */
  read(fd: number, buf: Uint8Array): number;
  /** write(2) on a non-blocking fd: bytes written, or -errno (EPIPE, not SIGPIPE: Deno ignores it). */
  write(fd: number, bytes: Uint8Array): number;
  /** Ends the writing side: FIN on a socket; a pipe is closed instead. */
  endWrite(fd: number): void;
  /** Sends signal `signal` to process `pid`. */
  kill(pid: number, signal: number): void;
  /** A non-blocking eventfd, to wake an epoll_wait up. */
  eventFd(): number;
  shutdownWrite(fd: number): void;
  close(fd: number): void;
  /** An fd on /dev/null, kept to be given back when the fd table is full. */
  spareFd(): number;
  /** The soft limit on open files. */
  fileLimit(): number;
  /** Raises the soft limit on open files to the hard limit; returns the new soft limit. */
  raiseFileLimit(): number;
  /** Drops root for `uid`:`gid` (groups: just `gid`); throws SysError. */
  becomeUser(uid: number, gid: number): void;
}

let opened: Sys | undefined;

/** Opens libc for the server (once). */
export function sys(): Sys {
  opened ??= wrap(Deno.dlopen("libc.so.6", SYMBOLS).symbols);
  return opened;
}

const encoder = new TextEncoder();

function cString(text: string): Uint8Array {
  return encoder.encode(text + "\0");
}

/** A NULL-terminated array of pointers to `strings` (which must outlive its use). */
function pointerArray(strings: readonly Uint8Array[]): Uint8Array {
  const pointers = new BigUint64Array(strings.length + 1);
  strings.forEach((s, i) => {
    pointers[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s)));
  });
  return new Uint8Array(pointers.buffer);
}

/** struct sockaddr_in / sockaddr_in6 for `ip`:`port`. */
export function sockaddr(ip: Ip, port: number): Uint8Array {
  const buf = new Uint8Array(ip.family === 4 ? 16 : 28);
  const view = new DataView(buf.buffer);
  view.setUint16(0, ip.family === 4 ? AF_INET : AF_INET6, true);
  view.setUint16(2, port, false);
  buf.set(ip.bytes, ip.family === 4 ? 4 : 8);
  return buf;
}

const V4_MAPPED = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/** The address in a struct sockaddr; an IPv4-mapped IPv6 address is IPv4. */
export function parseSockaddr(buf: Uint8Array): Address {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const port = view.getUint16(2, false);
  if (view.getUint16(0, true) === AF_INET) {
    return { ip: { family: 4, bytes: buf.slice(4, 8) }, port };
  }
  const bytes = buf.slice(8, 24);
  if (V4_MAPPED.every((b, i) => bytes[i] === b)) {
    return { ip: { family: 4, bytes: bytes.slice(12) }, port };
  }
  return { ip: { family: 6, bytes }, port };
}

function wrap(sym: Symbols): Sys {
  const errno = (): number => new Deno.UnsafePointerView(sym.__errno_location()!).getInt32();
  const fail = (doing: string): never => {
    const code = errno();
    const text = sym.strerror(code);
    const why = text === null ? `errno ${code}` : Deno.UnsafePointerView.getCString(text);
    throw new SysError(code, `unable to ${doing}: ${why}`);
  };
  const int32 = (value: number) => new Uint8Array(new Int32Array([value]).buffer);

  // One spawn attribute for every child: all signals default, none blocked.
  const attr = new Uint8Array(SPAWN_ATTR_BYTES);
  const all = new Uint8Array(SIGSET_BYTES);
  const none = new Uint8Array(SIGSET_BYTES);
  sym.posix_spawnattr_init(attr);
  sym.sigfillset(all);
  sym.sigemptyset(none);
  sym.posix_spawnattr_setsigdefault(attr, all);
  sym.posix_spawnattr_setsigmask(attr, none);
  sym.posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  const event = (events: number, fd: number, tag = 0) => {
    const buf = new Uint8Array(EPOLL_EVENT_BYTES);
    const view = new DataView(buf.buffer);
    view.setUint32(0, events, true);
    view.setUint32(4, fd, true); // data: the fd, then the tag
    view.setUint32(8, tag, true);
    return buf;
  };
  let eventsBuf = new Uint8Array(0);

  return {
    listen(ip, port, backlog) {
      const fd = sym.socket(
        ip.family === 4 ? AF_INET : AF_INET6,
        SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
        0,
      );
      if (fd < 0) fail("create a socket");
      sym.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, int32(1), 4);
      if (ip.family === 6) sym.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, int32(0), 4);
      const addr = sockaddr(ip, port);
      if (sym.bind(fd, addr, addr.length) < 0) {
        const e = errno();
        sym.close(fd);
        throw new SysError(e, `unable to bind: ${describe(sym, e)}`);
      }
      if (sym.listen(fd, backlog) < 0) fail("listen");
      return fd;
    },
    accept(fd) {
      const addr = new Uint8Array(128);
      const len = int32(128);
      const client = sym.accept4(fd, addr, len, SOCK_CLOEXEC);
      if (client < 0) return { errno: errno() };
      return { fd: client, remote: parseSockaddr(addr) };
    },
    localAddress(fd) {
      const addr = new Uint8Array(128);
      if (sym.getsockname(fd, addr, int32(128)) < 0) fail("read the local address");
      return parseSockaddr(addr);
    },
    epollCreate() {
      const ep = sym.epoll_create1(O_RDONLY_CLOEXEC);
      if (ep < 0) fail("create an epoll set");
      return ep;
    },
    epollAdd(ep, fd, events, modify = false, tag = 0) {
      const op = modify ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
      if (sym.epoll_ctl(ep, op, fd, event(events, fd, tag)) < 0) {
        fail(`watch fd ${fd}`);
      }
    },
    epollDelete(ep, fd) {
      sym.epoll_ctl(ep, EPOLL_CTL_DEL, fd, event(0, fd));
    },
    async epollWait(ep, max, timeoutMs) {
      if (eventsBuf.length < max * EPOLL_EVENT_BYTES) {
        eventsBuf = new Uint8Array(max * EPOLL_EVENT_BYTES);
      }
      const buf = eventsBuf;
      const n = await sym.epoll_wait(ep, buf, max, timeoutMs);
      const view = new DataView(buf.buffer);
      const out: Array<[number, number, number]> = [];
      for (let i = 0; i < n; i++) {
        const at = i * EPOLL_EVENT_BYTES;
        out.push([
          view.getUint32(at + 4, true),
          view.getUint32(at, true),
          view.getUint32(at + 8, true),
        ]);
      }
      return out;
    },
    spawn(argv, env, input, output) {
      const actions = new Uint8Array(FILE_ACTIONS_BYTES);
      sym.posix_spawn_file_actions_init(actions);
      try {
        sym.posix_spawn_file_actions_adddup2(actions, input, 0);
        sym.posix_spawn_file_actions_adddup2(actions, output, 1);
        const args = argv.map(cString);
        const vars = env.map(cString);
        const pid = new Int32Array(1);
        const code = sym.posix_spawnp(
          new Uint8Array(pid.buffer),
          args[0]!,
          actions,
          attr,
          pointerArray(args),
          pointerArray(vars),
        );
        if (code !== 0) throw new SysError(code, describe(sym, code));
        return pid[0]!;
      } finally {
        sym.posix_spawn_file_actions_destroy(actions);
      }
    },
    pidfd(pid) {
      const fd = Number(sym.syscall(SYS_PIDFD_OPEN, BigInt(pid), 0n));
      if (fd < 0) fail(`watch process ${pid}`);
      return fd;
    },
    reap(pid) {
      const status = new Int32Array(1);
      const n = sym.waitpid(pid, new Uint8Array(status.buffer), WNOHANG);
      return n === pid ? status[0]! : undefined;
    },
    socketPair() {
      const fds = new Int32Array(2);
      if (sym.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, new Uint8Array(fds.buffer)) < 0) {
        fail("create a socket pair");
      }
      return [fds[0]!, fds[1]!];
    },
    setNonBlocking(fd) {
      const flags = sym.fcntl(fd, F_GETFL, 0);
      if (flags < 0 || sym.fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        fail(`make fd ${fd} non-blocking`);
      }
    },
    read(fd, buf) {
      const n = Number(sym.read(fd, buf, BigInt(buf.length)));
      return n < 0 ? -errno() : n;
    },
    write(fd, bytes) {
      const n = Number(sym.write(fd, bytes, BigInt(bytes.length)));
      return n < 0 ? -errno() : n;
    },
    endWrite(fd) {
      if (sym.shutdown(fd, SHUT_WR) < 0 && errno() === ENOTSOCK) sym.close(fd);
    },
    kill(pid, signal) {
      sym.kill(pid, signal);
    },
    eventFd() {
      const fd = sym.eventfd(0, O_NONBLOCK | O_RDONLY_CLOEXEC);
      if (fd < 0) fail("create an eventfd");
      return fd;
    },
    shutdownWrite(fd) {
      sym.shutdown(fd, SHUT_WR);
    },
    close(fd) {
      sym.close(fd);
    },
    spareFd() {
      return sym.open(cString("/dev/null"), O_RDONLY_CLOEXEC);
    },
    fileLimit() {
      const limit = new BigUint64Array(2);
      if (sym.getrlimit(RLIMIT_NOFILE, new Uint8Array(limit.buffer)) < 0) return 1024;
      return Number(limit[0]! > 1_000_000n ? 1_000_000n : limit[0]!);
    },
    raiseFileLimit() {
      const limit = new BigUint64Array(2);
      if (sym.getrlimit(RLIMIT_NOFILE, new Uint8Array(limit.buffer)) === 0) {
        limit[0] = limit[1]!;
        sym.setrlimit(RLIMIT_NOFILE, new Uint8Array(limit.buffer));
      }
      return this.fileLimit();
    },
    becomeUser(uid, gid) {
      if (sym.setgroups(1n, new Uint8Array(new Uint32Array([gid]).buffer)) < 0) {
        fail(`set groups to ${gid}`);
      }
      if (sym.setgid(gid) < 0) fail(`set gid ${gid}`);
      if (sym.setuid(uid) < 0) fail(`set uid ${uid}`);
    },
  };
}

function describe(sym: Symbols, code: number): string {
  const text = sym.strerror(code);
  return text === null ? `errno ${code}` : Deno.UnsafePointerView.getCString(text);
}
