// The harness's `until`: a wait that a dead bridge ends at once, instead of letting it run into its timeout.
import { describe, expect, it } from 'vitest';
import { runCli, spawnBridge } from './bridge.js';
import { GiveUp, tripwire, until } from './net.js';

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

describe('until with a bridge process', () => {
  // A usage error: the CLI exits at once, on its own.
  const crashing = ['--node-id', 'n1', 'bogus://nowhere'];

  it('a bridge that exits on its own fails pending waits at once, with its exit code and last stderr lines', async () => {
    const expected = await runCli(crashing);
    expect(expected.code).not.toBe(0);
    const bridge = spawnBridge(crashing);
    const { error, ms } = await failure(until('a registration that never comes', () => false, 60_000));
    expect(ms).toBeLessThan(20_000);
    expect(error.message).toContain('gave up waiting for a registration that never comes: registrar (pid');
    expect(error.message).toContain(`exited on its own with exit code ${expected.code}`);
    for (const line of expected.stderr) expect(error.message).toContain(line);
    expect(bridge.child.exitCode).toBe(expected.code);
  });

  it('the next test waits as usual: a death concerns only the test that started the bridge', async () => {
    let polls = 0;
    await until('the second poll', () => ++polls >= 2);
    expect(polls).toBe(2);
  });

  it('a bridge the test stops itself trips nothing', async () => {
    // Waits for a Docker that is not there, so it runs until it is stopped.
    const bridge = spawnBridge([
      '--docker-host',
      `unix:///nonexistent-${process.pid}.sock`,
      'etcd://127.0.0.1:2379',
    ]);
    await bridge.waitForLog('waiting for Docker', (l) => l.msg.startsWith('waiting for Docker:'));
    bridge.child.kill('SIGTERM');
    await bridge.exited;
    let polls = 0;
    await until('the second poll', () => ++polls >= 2);
    expect(polls).toBe(2);
  });
});
