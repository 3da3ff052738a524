import { RegistryConnectionError, RegistryRejectedError } from '@registrar/core';
import { EtcdPermissionDeniedError, GRPCResourceExhastedError, GRPCUnavailableError } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { ATTEMPT_MS, etcdCall } from './call.js';

/** A call that fails with `errors` in turn, then answers; it records each attempt's deadline budget. */
function scripted(errors: (Error | 'hang')[]) {
  const budgets: number[] = [];
  const fn = ({ deadline }: { deadline: number }) => {
    budgets.push(deadline - Date.now());
    const next = errors.shift();
    if (next === 'hang') return new Promise<string>(() => undefined);
    return next ? Promise.reject(next) : Promise.resolve('ok');
  };
  return { fn, budgets };
}

describe('etcdCall: attempts within one timeout', () => {
  it('a member that refuses or does not answer is tried again with a fresh deadline', async () => {
    const { fn, budgets } = scripted([new GRPCUnavailableError('14 UNAVAILABLE'), 'hang']);
    const started = Date.now();
    await expect(etcdCall('put', 5000, fn)).resolves.toBe('ok');
    expect(budgets).toHaveLength(3);
    for (const budget of budgets) expect(budget).toBeLessThanOrEqual(ATTEMPT_MS);
    // The hung attempt cost about one attempt, not the whole timeout.
    expect(Date.now() - started).toBeLessThan(2 * ATTEMPT_MS + 400);
  });

  it('the last attempt gets all the time left, and the call fails within its timeout', async () => {
    const { fn, budgets } = scripted(Array.from({ length: 10 }, () => 'hang' as const));
    const started = Date.now();
    await expect(etcdCall('put', 1500, fn)).rejects.toBeInstanceOf(RegistryConnectionError);
    expect(Date.now() - started).toBeLessThan(1500 + 400);
    expect(budgets.at(-1)!).toBeGreaterThan(ATTEMPT_MS);
  });

  it('a refusal no other member would reverse is final at once', async () => {
    const denied = scripted([new EtcdPermissionDeniedError('etcdserver: permission denied')]);
    await expect(etcdCall('put', 5000, denied.fn)).rejects.toBeInstanceOf(RegistryRejectedError);
    expect(denied.budgets).toHaveLength(1);
    const large = scripted([new GRPCResourceExhastedError('8 RESOURCE_EXHAUSTED')]);
    await expect(etcdCall('range', 5000, large.fn)).rejects.toBeInstanceOf(RegistryConnectionError);
    expect(large.budgets).toHaveLength(1);
  });
});
