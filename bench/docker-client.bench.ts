// The Docker client, measured: dockerode against the daemon's own node:http client (packages/cli/src/
// docker-client.ts), each loaded into a fresh `node` (run as the image runs it) that lists and inspects the same
// 1,000 containers of the synthetic engine, 16 in flight. Load time and CPU, private memory after loading and
// after the inspects, CPU per inspect (median of 5 rounds).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { startSyntheticEngine, type SyntheticEngine } from '@registrar/core/testing';
import { record } from './report.js';
import { shipped } from './shipped.js';

const CONTAINERS = 1_000;
const RUNS = 3;
import type { DockerClientProbe } from './docker-client-probe.js';

const PROBE = fileURLToPath(new URL('./docker-client-probe.ts', import.meta.url));
const SHIPPED = shipped();
const run = promisify(execFile);

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

describe('Docker client', () => {
  let engine: SyntheticEngine;
  beforeAll(async () => {
    engine = await startSyntheticEngine();
    for (let i = 0; i < CONTAINERS; i++) engine.add({ name: `dc${i}`, service: 'dc' });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it(`dockerode and the lean client, ${CONTAINERS} inspects each, ${RUNS} fresh processes`, async () => {
    const { NODE_OPTIONS: _runner, ...env } = process.env;
    const samples: DockerClientProbe[] = [];
    // Interleaved, so that the machine's load falls on both alike.
    for (let i = 0; i < RUNS; i++) {
      for (const client of ['dockerode', 'lean']) {
        const { stdout } = await run(process.execPath, [...(SHIPPED.nodeFlags ?? []), PROBE, client, '5'], {
          env: { ...env, ...SHIPPED.env, DOCKER_HOST: engine.host },
        });
        samples.push(JSON.parse(stdout) as DockerClientProbe);
      }
    }
    const rows = ['dockerode', 'lean'].map((client) => {
      const of = samples.filter((s) => s.client === client);
      const pick = (key: Exclude<keyof DockerClientProbe, 'client'>, digits = 1) =>
        round(median(of.map((s) => s[key])), digits);
      return {
        client,
        loadMs: pick('loadMs'),
        loadCpuMs: pick('loadCpuMs'),
        anonLoadMiB: pick('anonLoadMiB'),
        cpuMsPerInspect: pick('cpuMsPerInspect', 3),
        anonAfterMiB: pick('anonAfterMiB'),
        rssAfterMiB: pick('rssAfterMiB'),
      };
    });
    record('docker-client', 'synthetic', {
      node: SHIPPED.label,
      containers: CONTAINERS,
      runs: RUNS,
      clients: rows,
    });
  });
});
