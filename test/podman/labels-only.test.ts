// `--labels-only` on Podman (4.3, rootful) through its Docker-compatible API. Podman's container list says less
// than its inspect (unpublished exposed ports, health, a pod member's network are missing or differ), so there
// the bridge inspects every container even with --labels-only, and says so at start. These tests pin both: if a
// later Podman's list says what its inspect does, the first ones fail and the fallback can go.
import type { DeriveOptions } from '@registrar/core';
import { deriveServices, listedAsInspect } from '@registrar/core/internal';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { startBackend, type Backend } from '../harness/backends.js';
import { spawnBridge } from '../harness/bridge.js';
import { runTestContainer, startPodman, type Podman } from '../harness/podman.js';

let podman: Podman;
const tag = randomBytes(3).toString('hex');
let serial = 0;
const options: DeriveOptions = {
  nodeId: 'n1',
  hostIp: '10.0.0.9',
  internal: false,
  tags: [],
  explicit: false,
  labelsOnly: true,
};

beforeAll(async () => {
  podman = await startPodman();
});
afterAll(async () => {
  await podman?.close();
});

/** `podman run -d` of the test image with the harness label; resolves with the container's id. */
const run = (args: readonly string[]) => runTestContainer(podman, `lo-${tag}-${++serial}`, args);

/** The container's list entry and inspect through the compatible API, read back to back. */
async function both(id: string) {
  const [entry] = await podman.docker.listContainers({ filters: { id: [id] } });
  const inspect = await podman.docker.getContainer(id).inspect();
  return { entry, inspect };
}

describe('labels only on Podman: its container list says less than its inspect', () => {
  /** Services derived labels-only from the list entry and from the inspect. */
  const derived = async (id: string, extra: Partial<DeriveOptions> = {}) => {
    const { entry, inspect } = await both(id);
    const listed = listedAsInspect(entry);
    return {
      fromList: listed === undefined ? undefined : deriveServices(listed, { ...options, ...extra }).services,
      fromInspect: deriveServices(inspect, { ...options, ...extra }).services,
    };
  };

  it('a published port with labels reads alike', async () => {
    const { fromList, fromInspect } = await derived(
      await run(['-p', '127.0.0.1::80', '--label', 'SERVICE_TAGS=a']),
    );
    expect(fromInspect).toHaveLength(1);
    expect(fromList).toEqual(fromInspect);
  });

  it('an exposed port that is not published is missing from the list (--internal)', async () => {
    const id = await run(['--expose', '9000', '--label', 'SERVICE_NAME=inner']);
    const { fromList, fromInspect } = await derived(id, { internal: true });
    expect(fromInspect.map((service) => service.port)).toEqual([9000]);
    expect(fromList).toEqual([]);
  });

  it('health is missing from the list', async () => {
    const id = await run(['-p', '127.0.0.1::80', '--health-cmd', 'test -e /tmp/ok', '--health-retries', '1']);
    await podman.cli(['healthcheck', 'run', id]).catch(() => undefined); // exits 1: unhealthy
    await until('unhealthy', async () => (await both(id)).inspect.State.Health?.Status === 'unhealthy');
    const { fromList, fromInspect } = await derived(id);
    expect(fromInspect[0]?.health).toBe('critical');
    expect(fromList?.[0]?.health).toBe('passing');
  });

  it('a pod member reads as a container of its own network', async () => {
    const pod = `lo-pod-${tag}`;
    await podman.cli(['pod', 'create', '--name', pod, '--label', podman.label, '-p', '127.0.0.1::80']);
    const { fromList, fromInspect } = await derived(await run(['--pod', pod]));
    expect(fromInspect).toEqual([]);
    expect(fromList).not.toEqual([]);
  });

  it('so the bridge inspects every container there, and says so', async () => {
    const backend: Backend = await startBackend('etcd');
    const bridge = spawnBridge([
      ...['--docker-host', podman.host, '--ip', '127.0.0.1', '--node-id', `lo-${tag}`, '--labels-only'],
      backend.uri(`/lo-${tag}`),
    ]);
    try {
      await bridge.waitForLog(
        'the fallback said',
        (l) => l.msg.startsWith('--labels-only on Podman'),
        30_000,
      );
    } finally {
      await bridge.kill();
      await backend.close();
    }
  });
});
