import { defineConfig } from 'vitest/config';

/**
 * Files that run whole registry clusters or Docker engines of their own (several JVMs, restarts): on two
 * cores they starve whatever runs beside them, so they run after the rest of the suite, one at a time.
 */
const HEAVY = [
  'test/faults/cluster.fault.test.ts',
  'test/faults/engine.fault.test.ts',
  'test/multihost/per-host.test.ts',
  'test/multihost/node-id.test.ts',
  'test/multihost/swarm.test.ts',
  'test/multihost/election.test.ts',
  // Restarts Podman's API service.
  'test/podman/restart.test.ts',
  // Its own Podman API service, and a latency bound (registered within 1 s of `podman run`) that a file
  // running beside it on two cores could break.
  'test/podman/rootful.test.ts',
  'test/ipv6/dual-stack.test.ts',
];

export default defineConfig({
  test: {
    // test/compose builds its images on first use (test/compose/build-images.sh; cached afterwards).
    exclude: ['**/node_modules/**', '**/dist/**'],
    // Integration tests start real servers and containers; the machine has two cores.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    globalSetup: ['test/global-setup.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: ['**/node_modules/**', '**/dist/**', ...HEAVY],
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'heavy',
          include: HEAVY,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
