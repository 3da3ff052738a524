// `until`, `GiveUp` and tripwires: a wait that ends at once when waiting cannot help, instead of running into
// its timeout. test/harness/until.test.ts covers the tripwire a bridge process sets.
import { describe, expect, it } from 'vitest';
import { GiveUp, tripwire, until } from './until.js';

/** Resolves to the error `promise` rejected with, and how long that took. */
async function failure(promise: Promise<unknown>): Promise<{ error: Error; ms: number }> {
  const started = Date.now();
  const error = await promise.then(
    () => new Error('it resolved'),
    (caught: unknown) => caught as Error,
  );
  return { error, ms: Date.now() - started };
}

describe('until', () => {
  it('retries a probe that throws (not ready yet) and resolves once it holds', async () => {
    let polls = 0;
    await until('the third poll', () => {
      polls += 1;
      if (polls < 3) throw new Error('ECONNREFUSED');
      return true;
    });
    expect(polls).toBe(3);
  });

  it('times out naming what it waited for, with the last error as the cause', async () => {
    const { error } = await failure(
      until(
        'never',
        () => {
          throw new Error('still refused');
        },
        100,
      ),
    );
    expect(error.message).toBe('timed out waiting for never');
    expect((error.cause as Error).message).toBe('still refused');
  });

  it('GiveUp from the probe ends the wait at once', async () => {
    const { error, ms } = await failure(
      until(
        'a server',
        () => {
          throw new GiveUp('the server exited');
        },
        60_000,
      ),
    );
    expect(error.message).toBe('gave up waiting for a server: the server exited');
    expect(ms).toBeLessThan(5_000);
  });

  it('a tripped wire ends every pending wait at once, after one last look at its probe', async () => {
    const wire = tripwire();
    try {
      let ready = false;
      const pending = failure(until('never', () => false, 60_000));
      const lucky = until('ready by the last look', () => ready, 60_000);
      await new Promise((resolve) => setTimeout(resolve, 120));
      ready = true;
      wire.trip('the bridge died');
      const { error, ms } = await pending;
      expect(error.message).toBe('gave up waiting for never: the bridge died');
      expect(ms).toBeLessThan(5_000);
      await lucky;
      // Still tripped: a new wait fails at once too.
      expect((await failure(until('later', () => false, 60_000))).error.message).toBe(
        'gave up waiting for later: the bridge died',
      );
    } finally {
      wire.clear();
    }
    await until('after the wire is cleared', () => true);
  });

  it('an aborted signal ends the wait with its reason', async () => {
    const abort = new AbortController();
    const pending = failure(until('never', () => false, { timeoutMs: 60_000, signal: abort.signal }));
    abort.abort(new Error('test over'));
    const { error, ms } = await pending;
    expect(error.message).toBe('gave up waiting for never: test over');
    expect(ms).toBeLessThan(5_000);
  });
});
