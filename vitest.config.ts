import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    // test/compose builds its images on first use (test/compose/build-images.sh; cached afterwards).
    exclude: ['**/node_modules/**', '**/dist/**'],
    // Integration tests start real servers and containers; the machine has two cores.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    reporters: ['default'],
    globalSetup: ['test/global-setup.ts'],
  },
});
