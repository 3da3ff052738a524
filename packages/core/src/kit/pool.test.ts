import { describe, expect, it } from 'vitest';
import { concurrencyLimit, runPool } from './pool.js';

/** A task whose every call waits until released, so the test sees how many run at once. */
function gatedTask() {
  const waiting: (() => void)[] = [];
  let running = 0;
  let peak = 0;
  const task = async (n: number): Promise<number> => {
    running++;
    peak = Math.max(peak, running);
    await new Promise<void>((resolve) => waiting.push(resolve));
    running--;
    if (n < 0) throw new Error(`task ${n} failed`);
    return n * 10;
  };
  const releaseAll = async (): Promise<void> => {
    // Each release lets a worker start its next item, which waits in turn.
    while (waiting.length > 0 || running > 0) {
      waiting.splice(0).forEach((release) => release());
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  return { task, releaseAll, peak: () => peak, started: () => waiting.length };
}

describe('runPool', () => {
  it('runs at most `limit` tasks at once and returns the results in item order', async () => {
    const gated = gatedTask();
    const items = Array.from({ length: 10 }, (_, i) => i);
    const done = runPool(items, 3, gated.task);
    await new Promise((resolve) => setImmediate(resolve));
    expect(gated.started()).toBe(3);
    await gated.releaseAll();
    expect(await done).toEqual(items.map((n) => n * 10));
    expect(gated.peak()).toBe(3);
  });

  it('passes the index and handles fewer items than workers, and none', async () => {
    expect(await runPool(['a', 'b'], 16, (item, index) => Promise.resolve(`${item}${index}`))).toEqual([
      'a0',
      'b1',
    ]);
    expect(await runPool([], 4, () => Promise.resolve(1))).toEqual([]);
  });

  it('after a failure starts nothing new and rejects with the first error once running tasks settle', async () => {
    const started: number[] = [];
    let settled = 0;
    const error = await runPool([1, -2, 3, -4, 5, 6, 7], 2, async (n) => {
      started.push(n);
      await new Promise((resolve) => setImmediate(resolve));
      settled++;
      if (n < 0) throw new Error(`item ${n}`);
      return n;
    }).catch((caught: unknown) => caught);
    expect((error as Error).message).toBe('item -2');
    expect(started).toEqual([1, -2, 3]);
    expect(settled).toBe(started.length);
  });

  it('refuses a limit below 1', async () => {
    await expect(runPool([1], 0, () => Promise.resolve(1))).rejects.toThrow(
      'runPool: limit must be at least 1, got 0',
    );
  });
});

describe('concurrencyLimit', () => {
  it('lets at most `limit` tasks run at once, hands a freed slot to a waiting task, and passes results on', async () => {
    const gated = gatedTask();
    const limited = concurrencyLimit(2);
    const results = Array.from({ length: 7 }, (_, i) =>
      limited(() => gated.task(i === 4 ? -4 : i)).catch((error: Error) => error.message),
    );
    await new Promise((resolve) => setImmediate(resolve));
    expect(gated.started()).toBe(2);
    // A task that arrives while the waiting ones take their turns still waits its own.
    const late = limited(() => gated.task(9));
    await gated.releaseAll();
    expect(await Promise.all(results)).toEqual([0, 10, 20, 30, 'task -4 failed', 50, 60]);
    expect(await late).toBe(90);
    expect(gated.peak()).toBe(2);
  });

  it('refuses a limit below 1', () => {
    expect(() => concurrencyLimit(0)).toThrow('concurrencyLimit: limit must be at least 1, got 0');
  });
});
