import { describe, expect, it } from '@jest/globals';
import { WorkQueue } from '../../operator/src/runtime/work-queue.js';
import { LATE_MS } from '../support/deadlines.js';
import { withDeadline } from '../support/wait.js';

describe('WorkQueue', () => {
  it('hands out each key once however often it was added', async () => {
    const depths: number[] = [];
    const queue = new WorkQueue({ onDepth: (d) => depths.push(d) });
    queue.add('a');
    queue.add('b');
    queue.add('a');
    expect(queue.depth).toBe(2);
    expect(await queue.get()).toBe('a');
    expect(await queue.get()).toBe('b');
    expect(queue.depth).toBe(0);
    expect(depths.at(-1)).toBe(0);
  });

  it('never hands out a key that is being reconciled; re-adds it after done() if it changed meanwhile', async () => {
    const queue = new WorkQueue();
    queue.add('run');
    expect(await queue.get()).toBe('run');
    queue.add('run');
    queue.add('run');
    expect(queue.depth).toBe(0);
    let second: string | undefined;
    const waiting = queue.get().then((k) => (second = k));
    // The queue hands keys out synchronously or in a microtask: one turn of the event loop shows a
    // wrongly handed-out key, whatever the machine's speed.
    await new Promise((resolve) => setImmediate(resolve));
    expect(second).toBeUndefined();
    queue.done('run');
    await waiting;
    expect(second).toBe('run');
    queue.done('run');
    expect(queue.depth).toBe(0);
  });

  it('backs off per key exponentially until forget()', () => {
    const queue = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 50 });
    expect([queue.addRateLimited('x'), queue.addRateLimited('x'), queue.addRateLimited('x'), queue.addRateLimited('x')]).toEqual([10, 20, 40, 50]);
    expect(queue.addRateLimited('y')).toBe(10);
    queue.forget('x');
    expect(queue.failuresOf('x')).toBe(0);
    expect(queue.addRateLimited('x')).toBe(10);
    queue.shutDown();
  });

  it('adds delayed keys when their time comes, the earliest pending add winning', async () => {
    const queue = new WorkQueue();
    // An hour, then 20 ms: only the earlier add can hand the key out during the test.
    queue.addAfter('late', 60 * 60_000);
    queue.addAfter('late', 20);
    expect(await withDeadline(queue.get(), LATE_MS, 'the key added after 20 ms')).toBe('late');
    // The other way round: a later add does not postpone a pending earlier one.
    queue.done('late');
    queue.addAfter('again', 20);
    queue.addAfter('again', 60 * 60_000);
    expect(await withDeadline(queue.get(), LATE_MS, 'the key added after 20 ms, not an hour')).toBe('again');
    queue.shutDown();
  });

  it('resolves waiting workers with undefined on shutdown and ignores later adds', async () => {
    const queue = new WorkQueue();
    const waiting = queue.get();
    queue.shutDown();
    expect(await waiting).toBeUndefined();
    queue.add('a');
    expect(queue.depth).toBe(0);
    expect(await queue.get()).toBeUndefined();
  });
});
