/**
 * One epoll set and the handlers of its fds: the server's event loop, and
 * the per-connection filter's when it stays as a relay. epoll_wait runs on a
 * helper thread, so timers and promises go on meanwhile; `wake()` ends a
 * wait at once (an eventfd in the set).
 */
import { EPOLLIN, type Sys } from "./sys.ts";

export type Handler = (revents: number) => void;

export class EventLoop {
  private readonly handlers = new Map<number, Handler>();
  private readonly ep: number;
  private readonly waker: number;
  private readonly drain = new Uint8Array(8);

  constructor(private readonly s: Sys) {
    this.ep = s.epollCreate();
    this.waker = s.eventFd();
    this.add(this.waker, EPOLLIN, () => s.read(this.waker, this.drain));
  }

  /** Watches `fd` for `events` (EPOLL* bits); `handler` gets the revents. */
  add(fd: number, events: number, handler: Handler): void {
    this.s.epollAdd(this.ep, fd, events);
    this.handlers.set(fd, handler);
  }

  /** Changes what `fd` is watched for (also re-arms a one-shot fd). */
  modify(fd: number, events: number): void {
    this.s.epollAdd(this.ep, fd, events, true);
  }

  /** Stops watching `fd`: before it is closed or handed on, as its number will be reused. */
  remove(fd: number): void {
    if (this.handlers.delete(fd)) this.s.epollDelete(this.ep, fd);
  }

  /** Ends the current wait, so that `run` looks at its condition again. */
  wake(): void {
    this.s.write(this.waker, new Uint8Array(new BigUint64Array([1n]).buffer));
  }

  /** Dispatches events while `going()` holds. */
  async run(going: () => boolean): Promise<void> {
    while (going()) {
      const events = await this.s.epollWait(this.ep, 256, 1000);
      for (const [fd, revents] of events) this.handlers.get(fd)?.(revents);
    }
  }
}
