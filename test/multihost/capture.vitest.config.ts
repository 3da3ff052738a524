import { defineConfig } from 'vitest/config';

/** `pnpm capture:swarm-fixtures`: re-captures core's Swarm fixtures from a real two-node Swarm. */
export default defineConfig({
  test: {
    include: ['test/multihost/swarm-fixtures.capture.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
});
