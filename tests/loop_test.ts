/**
 * The event loop's dispatch, with a scripted epoll: an event taken on the
 * helper thread for an fd whose number has since been reused must not reach
 * the new fd's handler (the race that made waiting clients look closed).
 */
import assert from "node:assert/strict";
import { EventLoop } from "../src/loop.ts";
import { EPOLLIN, type Libc } from "../src/libc.ts";

/** A Libc whose epoll set is a map, and whose waits return scripted batches. */
function fakeSys(batches: Array<(tags: Map<number, number>) => Array<[number, number, number]>>) {
  const tags = new Map<number, number>();
  const sys = {
    epollCreate: () => 100,
    eventFd: () => 101,
    epollAdd: (_ep: number, fd: number, _events: number, _modify = false, tag = 0) => {
      tags.set(fd, tag);
    },
    epollDelete: (_ep: number, fd: number) => {
      tags.delete(fd);
    },
    epollWait: () => Promise.resolve(batches.shift()?.(tags) ?? []),
    read: () => 8,
    write: () => 8,
  };
  return { sys: sys as unknown as Libc, tags };
}

Deno.test("EventLoop drops an event for an fd number reused since the event was taken", async () => {
  const got: string[] = [];
  let staleTag = 0;
  const { sys } = fakeSys([
    (tags) => {
      // Taken while fd 7 was the old client; by the time it is dispatched, fd 7 is a new one.
      staleTag = tags.get(7)!;
      loop.remove(7);
      loop.add(7, EPOLLIN, () => got.push("new client"));
      return [[7, EPOLLIN, staleTag]];
    },
    (tags) => [[7, EPOLLIN, tags.get(7)!]], // an event of the new registration
  ]);
  const loop = new EventLoop(sys); // the first batch, run by loop.run(), uses it
  loop.add(7, EPOLLIN, () => got.push("old client"));
  let rounds = 0;
  await loop.run(() => rounds++ < 2);
  assert.deepEqual(got, ["new client"], `got ${JSON.stringify(got)}`);
});

Deno.test("EventLoop gives each registration its own tag, and modify() keeps it", () => {
  const { sys, tags } = fakeSys([]);
  const loop = new EventLoop(sys);
  loop.add(5, EPOLLIN, () => {});
  const first = tags.get(5)!;
  loop.modify(5, 0);
  assert.equal(tags.get(5), first, "modify keeps the tag");
  loop.remove(5);
  loop.add(5, EPOLLIN, () => {});
  assert.notEqual(tags.get(5), first, "a new registration of the same fd number gets a new tag");
  assert.ok(first > 0 && tags.get(5)! > 0, "tags are never 0");
});
