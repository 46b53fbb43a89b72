/**
 * One epoll set and the handlers of its fds: the server's event loop, and
 * the per-connection filter's when it stays as a relay. epoll_wait runs on a
 * helper thread, so timers and promises go on meanwhile; `wake()` ends a
 * wait at once (an eventfd in the set).
 */
import { EPOLLIN, type Libc } from "./libc.ts";

export type Handler = (revents: number) => void;

export class EventLoop {
  /** Each fd's handler and the tag of its registration. */
  private readonly handlers = new Map<number, { handler: Handler; tag: number }>();
  private readonly ep: number;
  private readonly waker: number;
  private readonly drain = new Uint8Array(8);
  private nextTag = 1;

  constructor(private readonly libc: Libc) {
    this.ep = libc.epollCreate();
    this.waker = libc.eventFd();
    this.add(this.waker, EPOLLIN, () => libc.read(this.waker, this.drain));
  }

  /** Watches `fd` for `events` (EPOLL* bits); `handler` gets the revents. */
  add(fd: number, events: number, handler: Handler): void {
    const tag = this.nextTag;
    this.nextTag = (this.nextTag % 0xffff_ffff) + 1; // 1 to 2^32-1, as the kernel keeps 32 bits
    this.libc.epollAdd(this.ep, fd, events, false, tag);
    this.handlers.set(fd, { handler, tag });
  }

  /** Changes what `fd` is watched for (also re-arms a one-shot fd). */
  modify(fd: number, events: number): void {
    const entry = this.handlers.get(fd);
    if (entry) this.libc.epollAdd(this.ep, fd, events, true, entry.tag);
  }

  /** Stops watching `fd`: before it is closed or handed on, as its number will be reused. */
  remove(fd: number): void {
    if (this.handlers.delete(fd)) this.libc.epollDelete(this.ep, fd);
  }

  /** Ends the current wait, so that `run` looks at its condition again. */
  wake(): void {
    this.libc.write(this.waker, new Uint8Array(new BigUint64Array([1n]).buffer));
  }

  /**
   * Dispatches events while `going()` holds. epoll_wait runs on another
   * thread while this one closes fds and accepts new ones, so an event may
   * arrive for an fd number that has since been reused: the tag tells, and
   * such an event is dropped.
   */
  async run(going: () => boolean): Promise<void> {
    while (going()) {
      const events = await this.libc.epollWait(this.ep, 256, 1000);
      for (const [fd, revents, tag] of events) {
        const entry = this.handlers.get(fd);
        if (entry?.tag === tag) entry.handler(revents);
      }
    }
  }
}
