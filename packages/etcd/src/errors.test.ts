import { RegistryConnectionError, RegistryRejectedError, RegistrySessionLostError } from '@registrar/core';
import { EtcdLeaseInvalidError, EtcdPermissionDeniedError, GRPCUnavailableError } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { toRegistryError } from './errors.js';

describe('toRegistryError', () => {
  it.each([
    [new GRPCUnavailableError('no connection'), RegistryConnectionError],
    [new Error('something else went wrong'), RegistryConnectionError],
    [new EtcdLeaseInvalidError('requested lease not found'), RegistrySessionLostError],
    [new EtcdPermissionDeniedError('permission denied'), RegistryRejectedError],
    // Not etcd3's: a bug or a refused argument fails the same way on every retry.
    [new TypeError('Cannot read properties of undefined'), RegistryRejectedError],
    [new RangeError('Invalid array length'), RegistryRejectedError],
  ])('%o → %o', (error, type) => {
    const mapped = toRegistryError(error, 'put /x');
    expect(mapped).toBeInstanceOf(type);
    expect(mapped.backend).toBe('etcd');
    expect(mapped.message).toMatch(/^etcd put \/x: /);
    expect(mapped.message).toContain(error.message);
    expect(mapped.cause).toBe(error);
  });
});
