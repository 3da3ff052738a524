// The cold start's limit: the least a bridge must do to mirror an engine's containers, done as leanly as this
// machine allows in the same run. A plain node:http client on the engine's socket lists the containers and
// inspects every one (16 in flight, kept-alive connections), then the backend's own client writes them all in
// its batches (etcd txns, ZooKeeper multis) or, where it has none (Consul), one call each at 16 in flight.
import { Agent, request } from 'node:http';
import { pool, type RawClient } from './backends.js';

const IN_FLIGHT = 16;

function get(agent: Agent, socketPath: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, agent, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        if (res.statusCode !== 200) reject(new Error(`GET ${path}: ${res.statusCode} ${body.slice(0, 200)}`));
        else resolve(body);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export interface LeanColdStart {
  readonly containers: number;
  readonly listInspectSeconds: number;
  readonly writeSeconds: number;
  readonly totalSeconds: number;
  readonly writes: 'batched' | 'single calls, 16 in flight';
}

/**
 * List and inspect every container on `socketPath`, then write one entry per container with `raw` under ids
 * from `firstId`. Only what a bridge cannot skip: the inspect documents are parsed (the ports are in them).
 */
export async function leanColdStart(
  socketPath: string,
  raw: RawClient,
  firstId: number,
): Promise<LeanColdStart> {
  const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  try {
    const t0 = performance.now();
    const list = JSON.parse(await get(agent, socketPath, '/v1.41/containers/json')) as { Id: string }[];
    const ports: number[] = new Array<number>(list.length);
    await pool(list.length, IN_FLIGHT, async (i) => {
      const info = JSON.parse(await get(agent, socketPath, `/v1.41/containers/${list[i].Id}/json`)) as {
        NetworkSettings: { Ports: Record<string, { HostPort: string }[] | null> };
      };
      ports[i] = Number(Object.values(info.NetworkSettings.Ports)[0]?.[0]?.HostPort ?? 0);
    });
    const t1 = performance.now();
    const ids = list.map((_, i) => firstId + i);
    if (raw.putBatch) await raw.putBatch(ids);
    else await pool(ids.length, IN_FLIGHT, (i) => raw.put(ids[i]));
    const t2 = performance.now();
    // Untimed: what follows in the same run starts from the registry as it was.
    await pool(ids.length, IN_FLIGHT, (i) => raw.remove(ids[i]));
    return {
      containers: list.length,
      listInspectSeconds: (t1 - t0) / 1000,
      writeSeconds: (t2 - t1) / 1000,
      totalSeconds: (t2 - t0) / 1000,
      writes: raw.putBatch ? 'batched' : 'single calls, 16 in flight',
    };
  } finally {
    agent.destroy();
  }
}
