/**
 * The one door to libc: the calls Deno lacks, behind one plain interface.
 * Deno cannot exec(), cannot wait on fd 0 without reading it, cannot tell
 * "bytes waiting" from "peer closed", cannot hand a socket to a child or
 * watch a socket without reading it; libc can.
 *
 * The symbols come in three groups, each bound on its first use, once per
 * process: the screening's (poll, FIONREAD, peek, read, write, exec, alarm,
 * /proc), which every connection of the per-connection filter pays for, the
 * lists' (a UDP socket for their queries), and the server's (sockets, epoll,
 * posix_spawn, pidfd, limits, uid), which only serve and a relaying filter
 * bind. Every fd made here is close-on-exec: a
 * child gets the client on fd 0/1 and fd 2, nothing else.
 */
import { type Ip, ipFromBytes } from "./ip.ts";

/** poll(2) event bits (Linux); epoll's IN, ERR and HUP are the same bits. */
export const POLLIN = 0x1;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;

export const EPOLLIN = 0x1;
export const EPOLLOUT = 0x4;
export const EPOLLRDHUP = 0x2000;
export const EPOLLONESHOT = 0x40000000;

export const EAGAIN = 11;
export const EINTR = 4;
export const EMFILE = 24;
export const ENFILE = 23;
export const ENOBUFS = 105;
export const ENOMEM = 12;

const FIONREAD = 0x541bn;
const MSG_PEEK = 0x2;
const MSG_DONTWAIT = 0x40;
const SHUT_WR = 1;
const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;
const SIGPIPE = 13;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const MSG_NOSIGNAL = 0x4000;
const SOCK_NONBLOCK = 0o4000;
const F_GETFL = 3;
const F_SETFL = 4;
const ENOTSOCK = 88;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;
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

/** What the rest of the program may ask of libc. */
export interface Libc {
  // The screening's.

  /**
   * Waits, on a helper thread, until `fd` is readable or hung up, without
   * reading a byte. Resolves with poll's revents (0 after `timeoutMs`, or when
   * a signal interrupted the wait). The event loop keeps running meanwhile.
   */
  waitReadable(fd: number, timeoutMs: number): Promise<number>;
  /**
   * poll(2) on `fd` on this thread: blocks the whole process until `fd` is
   * readable or hung up, or `timeoutMs` pass (0: returns at once). Reads
   * nothing: returns revents, 0 after the timeout.
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
  /** Reads up to `max` bytes that are already waiting. */
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

  // The lists' (a group of its own: only a client asked about bound it).

  /**
   * A UDP socket connected to `ip`:`port` (so that only its answers come
   * in), non-blocking, on a port the kernel picks; throws SysError.
   */
  datagramSocket(ip: Ip, port: number): number;
  /** Sends one datagram; the bytes sent, or -errno. */
  sendDatagram(fd: number, bytes: Uint8Array): number;
  /** The next datagram waiting into `buf` (its length), or -errno (EAGAIN: none). */
  receiveDatagram(fd: number, buf: Uint8Array): number;
  /** An errno in the system's words (strerror(3)). */
  errorText(code: number): string;

  // The server's (and a relaying filter's).

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
  epollWait(ep: number, max: number, timeoutMs: number): Promise<Array<[number, number, number]>>;
  /**
   * Starts `argv[0]` (searched in PATH) with `input` as fd 0, `output` as
   * fd 1, this process's fd 2, `env` as its whole environment and every
   * signal at its default and unblocked. Returns the pid, or throws SysError.
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
  close(fd: number): void;
  /** An fd on /dev/null, kept to be given back when the fd table is full. */
  spareFd(): number;
  /** Raises the soft limit on open files to the hard limit; returns the new soft limit. */
  raiseFileLimit(): number;
  /**
   * Drops root, as tcpserver's -u and -g do: to group `gid` (the only
   * supplementary group too) when given, then to user `uid` when given;
   * what is not given stays as it is. Throws SysError.
   */
  becomeUser(uid: number | undefined, gid: number | undefined): void;
}

const SCREENING = {
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

const DATAGRAM = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
} as const;

const SERVER = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
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
} as const;

type ScreeningSymbols = Deno.DynamicLibrary<typeof SCREENING>["symbols"];
type ServerSymbols = Deno.DynamicLibrary<typeof SERVER>["symbols"];
type DatagramSymbols = Deno.DynamicLibrary<typeof DATAGRAM>["symbols"];

let opened: Libc | undefined;

/** The interface, made once per process; each group of symbols is bound on its first use. */
export function libc(): Libc {
  opened ??= wrap();
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

function int32(value: number): Uint8Array {
  return new Uint8Array(new Int32Array([value]).buffer);
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

/** The address in a struct sockaddr; an IPv4-mapped IPv6 address is IPv4. */
export function parseSockaddr(buf: Uint8Array): Address {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const port = view.getUint16(2, false);
  const v4 = view.getUint16(0, true) === AF_INET;
  return { ip: ipFromBytes(buf.slice(v4 ? 4 : 8, v4 ? 8 : 24)), port };
}

/** The screening's symbols, bound on first use, and errno in words: what both groups share. */
interface Bound {
  sym(): ScreeningSymbols;
  errno(): number;
  describe(code: number): string;
  /** Throws a SysError: `unable to DOING: REASON`. */
  fail(doing: string): never;
}

/** The calls of the screening, which every connection of the filter makes. */
type ScreeningCalls = Pick<
  Libc,
  | "waitReadable"
  | "readable"
  | "sleep"
  | "bytesWaiting"
  | "peek"
  | "readWaiting"
  | "writeAll"
  | "readProcFile"
  | "shutdownWrite"
  | "alarm"
  | "exec"
>;

function wrap(): Libc {
  let screening: ScreeningSymbols | undefined;
  const sym = () => screening ??= Deno.dlopen("libc.so.6", SCREENING).symbols;
  const errno = (): number => new Deno.UnsafePointerView(sym().__errno_location()!).getInt32();
  const describe = (code: number): string => {
    const text = sym().strerror(code);
    return text === null ? `errno ${code}` : Deno.UnsafePointerView.getCString(text);
  };
  const fail = (doing: string): never => {
    const code = errno();
    throw new SysError(code, `unable to ${doing}: ${describe(code)}`);
  };
  const bound: Bound = { sym, errno, describe, fail };
  return { ...screeningCalls(bound), ...datagramCalls(bound), ...serverCalls(bound) };
}

/** The calls of the lists' queries. */
type DatagramCalls = Pick<
  Libc,
  "datagramSocket" | "sendDatagram" | "receiveDatagram" | "errorText"
>;

function datagramCalls({ sym, errno, describe, fail }: Bound): DatagramCalls {
  let datagram: DatagramSymbols | undefined;
  const own = () => datagram ??= Deno.dlopen("libc.so.6", DATAGRAM).symbols;
  return {
    datagramSocket(ip, port) {
      const family = ip.family === 4 ? AF_INET : AF_INET6;
      const fd = own().socket(family, SOCK_DGRAM | SOCK_NONBLOCK | O_CLOEXEC, 0);
      if (fd < 0) fail("create a socket");
      const addr = sockaddr(ip, port);
      if (own().connect(fd, addr, addr.length) < 0) {
        const e = errno(); // before close() can change it
        sym().close(fd);
        throw new SysError(e, `unable to connect to the name server: ${describe(e)}`);
      }
      return fd;
    },
    sendDatagram(fd, bytes) {
      const n = Number(own().send(fd, bytes, BigInt(bytes.length), MSG_NOSIGNAL | MSG_DONTWAIT));
      return n < 0 ? -errno() : n;
    },
    receiveDatagram(fd, buf) {
      const n = Number(sym().recv(fd, buf, BigInt(buf.length), MSG_DONTWAIT));
      return n < 0 ? -errno() : n;
    },
    errorText: describe,
  };
}

function screeningCalls({ sym, errno, describe }: Bound): ScreeningCalls {
  return {
    async waitReadable(fd, timeoutMs) {
      const buf = pollFd(fd);
      const n = await sym().poll(buf, 1n, timeoutMs);
      return n > 0 ? revents(buf) : 0;
    },
    async sleep(ms) {
      await sym().poll(new Uint8Array(8), 0n, Math.max(0, Math.ceil(ms)));
    },
    readable(fd, timeoutMs) {
      const buf = pollFd(fd);
      return sym().pollSync(buf, 1n, timeoutMs) > 0 ? revents(buf) : 0;
    },
    bytesWaiting(fd) {
      const n = new Int32Array(1);
      return sym().ioctl(fd, FIONREAD, new Uint8Array(n.buffer)) === 0 ? n[0]! : -1;
    },
    peek(fd, max) {
      const buf = new Uint8Array(max);
      const n = Number(sym().recv(fd, buf, BigInt(max), MSG_PEEK | MSG_DONTWAIT));
      return n < 0 ? undefined : buf.subarray(0, n);
    },
    readWaiting(fd, max) {
      const buf = new Uint8Array(max);
      const n = Number(sym().read(fd, buf, BigInt(max)));
      return buf.subarray(0, Math.max(n, 0));
    },
    writeAll(fd, bytes) {
      let rest = bytes;
      while (rest.length > 0) {
        const n = Number(sym().write(fd, rest, BigInt(rest.length)));
        if (n <= 0) return false;
        rest = rest.subarray(n);
      }
      return true;
    },
    readProcFile(path) {
      const fd = sym().open(cString(path), O_CLOEXEC);
      if (fd < 0) return undefined;
      const buf = new Uint8Array(4096);
      const n = Number(sym().read(fd, buf, BigInt(buf.length)));
      sym().close(fd);
      return n < 0 ? undefined : new TextDecoder().decode(buf.subarray(0, n));
    },
    shutdownWrite(fd) {
      sym().shutdown(fd, SHUT_WR);
    },
    alarm(seconds) {
      sym().alarm(seconds);
    },
    exec(argv) {
      const strings = argv.map(cString);
      sym().signal(SIGPIPE, null); // SIG_DFL: Deno ignores SIGPIPE, and exec keeps "ignored"
      sym().execvp(strings[0]!, pointerArray(strings));
      const why = describe(errno());
      sym().signal(SIGPIPE, Deno.UnsafePointer.create(1n)); // back to SIG_IGN, as Deno had it
      return why;
    },
  };
}

/** The server's calls (and a relaying filter's): their symbols bound at the first of them. */
function serverCalls(
  { sym, errno, describe, fail }: Bound,
): Omit<Libc, keyof ScreeningCalls | keyof DatagramCalls> {
  let server: ServerSymbols | undefined;
  const serverSym = () => server ??= bindServer();

  // One spawn attribute for every child: all signals at their default, none blocked.
  const attr = new Uint8Array(SPAWN_ATTR_BYTES);
  const bindServer = (): ServerSymbols => {
    const bound = Deno.dlopen("libc.so.6", SERVER).symbols;
    const all = new Uint8Array(SIGSET_BYTES);
    const none = new Uint8Array(SIGSET_BYTES);
    bound.posix_spawnattr_init(attr);
    bound.sigfillset(all);
    bound.sigemptyset(none);
    bound.posix_spawnattr_setsigdefault(attr, all);
    bound.posix_spawnattr_setsigmask(attr, none);
    bound.posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    return bound;
  };

  const event = (events: number, fd: number, tag = 0) => {
    const buf = new Uint8Array(EPOLL_EVENT_BYTES);
    const view = new DataView(buf.buffer);
    view.setUint32(0, events, true);
    view.setUint32(4, fd, true); // data: the fd, then the tag
    view.setUint32(8, tag, true);
    return buf;
  };
  let eventsBuf = new Uint8Array(0);
  const rlimit = (): BigUint64Array | undefined => {
    const limit = new BigUint64Array(2);
    return serverSym().getrlimit(RLIMIT_NOFILE, new Uint8Array(limit.buffer)) === 0
      ? limit
      : undefined;
  };

  return {
    listen(ip, port, backlog) {
      const s = serverSym();
      const fd = s.socket(
        ip.family === 4 ? AF_INET : AF_INET6,
        SOCK_STREAM | SOCK_NONBLOCK | O_CLOEXEC,
        0,
      );
      if (fd < 0) fail("create a socket");
      s.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, int32(1), 4);
      if (ip.family === 6) s.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, int32(0), 4);
      const addr = sockaddr(ip, port);
      if (s.bind(fd, addr, addr.length) < 0) {
        const e = errno();
        sym().close(fd);
        throw new SysError(e, `unable to bind: ${describe(e)}`);
      }
      if (s.listen(fd, backlog) < 0) fail("listen");
      return fd;
    },
    accept(fd) {
      const addr = new Uint8Array(128);
      const client = serverSym().accept4(fd, addr, int32(128), O_CLOEXEC);
      if (client < 0) return { errno: errno() };
      return { fd: client, remote: parseSockaddr(addr) };
    },
    localAddress(fd) {
      const addr = new Uint8Array(128);
      if (serverSym().getsockname(fd, addr, int32(128)) < 0) fail("read the local address");
      return parseSockaddr(addr);
    },
    epollCreate() {
      const ep = serverSym().epoll_create1(O_CLOEXEC);
      if (ep < 0) fail("create an epoll set");
      return ep;
    },
    epollAdd(ep, fd, events, modify = false, tag = 0) {
      const op = modify ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
      if (serverSym().epoll_ctl(ep, op, fd, event(events, fd, tag)) < 0) {
        fail(`watch fd ${fd}`);
      }
    },
    epollDelete(ep, fd) {
      serverSym().epoll_ctl(ep, EPOLL_CTL_DEL, fd, event(0, fd));
    },
    async epollWait(ep, max, timeoutMs) {
      if (eventsBuf.length < max * EPOLL_EVENT_BYTES) {
        eventsBuf = new Uint8Array(max * EPOLL_EVENT_BYTES);
      }
      const buf = eventsBuf;
      const n = await serverSym().epoll_wait(ep, buf, max, timeoutMs);
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
      const s = serverSym();
      const actions = new Uint8Array(FILE_ACTIONS_BYTES);
      s.posix_spawn_file_actions_init(actions);
      try {
        s.posix_spawn_file_actions_adddup2(actions, input, 0);
        s.posix_spawn_file_actions_adddup2(actions, output, 1);
        const args = argv.map(cString);
        const vars = env.map(cString);
        const pid = new Int32Array(1);
        const code = s.posix_spawnp(
          new Uint8Array(pid.buffer),
          args[0]!,
          actions,
          attr,
          pointerArray(args),
          pointerArray(vars),
        );
        if (code !== 0) throw new SysError(code, describe(code));
        return pid[0]!;
      } finally {
        s.posix_spawn_file_actions_destroy(actions);
      }
    },
    pidfd(pid) {
      const fd = Number(serverSym().syscall(SYS_PIDFD_OPEN, BigInt(pid), 0n));
      if (fd < 0) fail(`watch process ${pid}`);
      return fd;
    },
    reap(pid) {
      const status = new Int32Array(1);
      const n = serverSym().waitpid(pid, new Uint8Array(status.buffer), WNOHANG);
      return n === pid ? status[0]! : undefined;
    },
    socketPair() {
      const fds = new Int32Array(2);
      const made = serverSym().socketpair(
        AF_UNIX,
        SOCK_STREAM | O_CLOEXEC,
        0,
        new Uint8Array(fds.buffer),
      );
      if (made < 0) fail("create a socket pair");
      return [fds[0]!, fds[1]!];
    },
    setNonBlocking(fd) {
      const s = serverSym();
      const flags = s.fcntl(fd, F_GETFL, 0);
      if (flags < 0 || s.fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        fail(`make fd ${fd} non-blocking`);
      }
    },
    read(fd, buf) {
      const n = Number(sym().read(fd, buf, BigInt(buf.length)));
      return n < 0 ? -errno() : n;
    },
    write(fd, bytes) {
      const n = Number(sym().write(fd, bytes, BigInt(bytes.length)));
      return n < 0 ? -errno() : n;
    },
    endWrite(fd) {
      if (sym().shutdown(fd, SHUT_WR) < 0 && errno() === ENOTSOCK) sym().close(fd);
    },
    kill(pid, signal) {
      serverSym().kill(pid, signal);
    },
    eventFd() {
      const fd = serverSym().eventfd(0, O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) fail("create an eventfd");
      return fd;
    },
    close(fd) {
      sym().close(fd);
    },
    spareFd() {
      return sym().open(cString("/dev/null"), O_CLOEXEC);
    },
    raiseFileLimit() {
      const limit = rlimit();
      if (limit) {
        limit[0] = limit[1]!;
        serverSym().setrlimit(RLIMIT_NOFILE, new Uint8Array(limit.buffer));
      }
      const soft = rlimit()?.[0] ?? 1024n;
      return Number(soft > 1_000_000n ? 1_000_000n : soft);
    },
    becomeUser(uid, gid) {
      const s = serverSym();
      if (gid !== undefined) {
        if (s.setgroups(1n, new Uint8Array(new Uint32Array([gid]).buffer)) < 0) {
          fail(`set groups to ${gid}`);
        }
        if (s.setgid(gid) < 0) fail(`set gid ${gid}`);
      }
      if (uid !== undefined && s.setuid(uid) < 0) fail(`set uid ${uid}`);
    },
  };
}
