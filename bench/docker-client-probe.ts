// Run in a fresh `node` by docker-client.bench.ts: load one Docker client, then list and inspect every container
// of the engine at DOCKER_HOST a few times, 16 in flight; print what it cost as one JSON line.
import { readFileSync } from 'node:fs';

const [which, rounds = '5'] = process.argv.slice(2);
const kib = (field: string) =>
  Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN);

interface Client {
  listContainers(options?: object): Promise<{ Id: string }[]>;
  getContainer(id: string): { inspect(): Promise<unknown> };
}

const anon0 = kib('RssAnon');
const t0 = performance.now();
const c0 = process.cpuUsage();
let client: Client;
if (which === 'dockerode') {
  const { default: Docker } = await import('dockerode');
  client = new Docker() as unknown as Client;
} else {
  const { LeanDocker, dockerEndpoint } = await import('../packages/cli/dist/docker-client.js');
  client = new LeanDocker(dockerEndpoint(process.env.DOCKER_HOST, process.env)!) as unknown as Client;
}
const load = process.cpuUsage(c0);
const loadMs = performance.now() - t0;
const anonLoaded = kib('RssAnon');

const perInspect: number[] = [];
for (let r = 0; r < Number(rounds); r++) {
  const list = await client.listContainers();
  const c = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < list.length) await client.getContainer(list[next++].Id).inspect();
    }),
  );
  const used = process.cpuUsage(c);
  perInspect.push((used.user + used.system) / 1000 / list.length);
}
perInspect.sort((a, b) => a - b);
/** What one probe prints: one client's load cost and its CPU per inspect, in a fresh process. */
export interface DockerClientProbe {
  client: string;
  loadMs: number;
  loadCpuMs: number;
  anonLoadMiB: number;
  cpuMsPerInspect: number;
  anonAfterMiB: number;
  rssAfterMiB: number;
}
const result: DockerClientProbe = {
  client: which,
  loadMs,
  loadCpuMs: (load.user + load.system) / 1000,
  anonLoadMiB: (anonLoaded - anon0) / 1024,
  cpuMsPerInspect: perInspect[Math.floor(perInspect.length / 2)],
  anonAfterMiB: kib('RssAnon') / 1024,
  rssAfterMiB: kib('VmRSS') / 1024,
};
process.stdout.write(
  `${JSON.stringify(result)}
`,
);
process.exit(0);
