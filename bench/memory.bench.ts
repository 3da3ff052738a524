// Memory and leaks: RSS and heap of the bridge alone (a child process running the real pipeline into etcd)
// after a cold start with 1,000 services, and after a churn soak of container starts and dies.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { startEtcd, type EtcdServer } from '../test/harness/etcd.js';
import { record } from './report.js';

const SOAK = Number(process.env.BENCH_SOAK_EVENTS ?? 100_000);
const CHILD = fileURLToPath(new URL('./memory-child.ts', import.meta.url));

interface Usage {
  rssMiB: number;
  heapUsedMiB: number;
}

describe('memory', () => {
  let etcd: EtcdServer;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.close();
  });

  it(`1,000 services, then a ${SOAK}-event churn soak`, async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--expose-gc', '--no-warnings', CHILD, etcd.endpoint, String(SOAK)],
      { cwd: fileURLToPath(new URL('.', import.meta.url)), timeout: 540_000 },
    );
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
      coldStart: Usage;
      settled: Usage;
      afterSoak: Usage;
    } & Record<string, unknown>;
    record('memory', 'etcd', {
      ...result,
      goal: 'heap after soak returns to the cold-start plateau (≤ +10 % + 2 MiB)',
      goalMet: result.settled.heapUsedMiB <= result.coldStart.heapUsedMiB * 1.1 + 2,
    });
  });
});
