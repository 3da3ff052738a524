import { defineConfig } from 'vitest/config';

/** `pnpm bench`: the benchmark suites, one at a time so they do not disturb each other's timings. */
export default defineConfig({
  test: {
    include: ['bench/**/*.bench.ts'],
    testTimeout: 600_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    globalSetup: ['bench/global.ts'],
  },
});
