// The harness's `until` with a bridge process: a bridge that dies ends every wait at once, instead of letting it
// run into its timeout (packages/core/src/testing/until.test.ts covers `until` itself).
import { describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { runCli, spawnBridge } from './bridge.js';

/** Resolves to the error `promise` rejected with, and how long that took. */
async function failure(promise: Promise<unknown>): Promise<{ error: Error; ms: number }> {
  const started = Date.now();
  const error = await promise.then(
    () => new Error('it resolved'),
    (caught: unknown) => caught as Error,
  );
  return { error, ms: Date.now() - started };
}

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
