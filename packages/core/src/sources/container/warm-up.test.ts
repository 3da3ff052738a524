import { describe, expect, it } from 'vitest';
import type { DeriveOptions } from '../../derive.js';
import { warmUp } from './warm-up.js';

const options: DeriveOptions = {
  nodeId: 'n1',
  hostIp: '10.0.0.1',
  internal: false,
  tags: [],
  explicit: false,
};

describe('warmUp', () => {
  it('runs its sample through the whole reducer: it derives a service, as a container would', () => {
    expect(warmUp(options)).toBe(1);
  });

  it('derives under the options the bridge runs with (`--internal`, `-explicit`)', () => {
    expect(warmUp({ ...options, internal: true })).toBe(1);
    expect(warmUp({ ...options, explicit: true })).toBe(1);
  });
});
