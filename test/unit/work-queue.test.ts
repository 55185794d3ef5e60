import { describe, expect, it } from '@jest/globals';
import { WorkQueue } from '../../operator/src/runtime/work-queue.js';

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
    await new Promise((r) => setTimeout(r, 10));
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
    queue.addAfter('late', 200);
    queue.addAfter('late', 20);
    const started = Date.now();
    expect(await queue.get()).toBe('late');
    expect(Date.now() - started).toBeLessThan(150);
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
