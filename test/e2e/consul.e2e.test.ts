// End to end: the built `registrar` binary against the real Docker engine and the Consul agent double.
import { startConsulDouble, type ConsulDouble } from '@registrar/consul-double';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { spawnBridge, type BridgeProcess, type LogLine } from '../harness/bridge.js';
import { exec, hostPort, runContainer, TEST_LABEL, uniqueName } from '../harness/containers.js';
import { removeLabelled } from '../harness/docker.js';

let consul: ConsulDouble;
const bridges: BridgeProcess[] = [];
const runLabel = `${TEST_LABEL}.run=${randomBytes(4).toString('hex')}`;
const [labelKey, labelValue] = runLabel.split('=') as [string, string];
const labels = { [labelKey]: labelValue };

beforeAll(async () => {
  // Shrunk reaper timings so that a dead bridge's services are reaped within seconds.
  // Script checks on, as `enable_script_checks = true`: SERVICE_CHECK_DOCKER needs them.
  consul = await startConsulDouble({
    reapIntervalMs: 200,
    minDeregisterAfterMs: 1000,
    enableScriptChecks: true,
  });
});

afterEach(async () => {
  await Promise.all(bridges.splice(0).map((b) => b.kill()));
  await removeLabelled(runLabel);
});

afterAll(async () => {
  await consul?.close();
});

interface HealthEntry {
  Service: { ID: string; Address: string; Port: number; Meta: Record<string, string> };
  Checks: { CheckID: string; Status: string; Output: string }[];
}

async function health(name: string, passing: boolean): Promise<HealthEntry[]> {
  const res = await fetch(`${consul.url}/v1/health/service/${name}${passing ? '?passing' : ''}`);
  return (await res.json()) as HealthEntry[];
}

async function agentServices(): Promise<Record<string, unknown>> {
  return (await (await fetch(`${consul.url}/v1/agent/services`)).json()) as Record<string, unknown>;
}

function bridge(node: string, extra: string[] = [], deregisterAfter = '1s') {
  const b = spawnBridge([
    '--ip',
    '127.0.0.1',
    '--node-id',
    node,
    '--ttl',
    '2',
    ...extra,
    `consul://127.0.0.1:${consul.port}?deregister-after=${deregisterAfter}`,
  ]);
  bridges.push(b);
  return b;
}

describe('registrar → Consul (agent double), end to end', () => {
  it('registers a container passing, mirrors its health, and deregisters it on stop', async () => {
    const node = `c-${randomBytes(2).toString('hex')}`;
    const service = `web-${randomBytes(2).toString('hex')}`;
    bridge(node);
    const name = uniqueName('web');
    const container = await runContainer({
      name,
      publish: ['80/tcp'],
      env: { SERVICE_NAME: service },
      labels,
      cmd: ['sh', '-c', 'touch /tmp/healthy; exec httpd -f -p 80 -h /www'],
      health: { test: ['CMD-SHELL', 'test -f /tmp/healthy || (echo probe failed; exit 1)'], intervalMs: 500 },
    });
    const id = `${node}:${name}:80`;
    await until('passing in /v1/health/service', async () => (await health(service, true)).length === 1);
    const [entry] = await health(service, true);
    expect(entry!.Service).toMatchObject({
      ID: id,
      Address: '127.0.0.1',
      Port: await hostPort(container, '80/tcp'),
    });
    expect(Object.values(entry!.Service.Meta)).toContain(node);

    // Unhealthy: still registered, but critical with the probe's output, so ?passing drops it.
    await exec(container, ['rm', '/tmp/healthy']);
    await until('dropped from ?passing', async () => (await health(service, true)).length === 0);
    const [sick] = await health(service, false);
    const critical = sick!.Checks.find((c) => c.Status === 'critical');
    expect(critical?.Output).toContain('probe failed');

    await exec(container, ['touch', '/tmp/healthy']);
    await until('passing again', async () => (await health(service, true)).length === 1);

    await container.stop({ t: 0 });
    await until('deregistered on stop', async () => !(id in (await agentServices())));
  });

  it('sends the Consul options and checks a container asks for; a bad value skips only its field', async () => {
    const node = `o-${randomBytes(2).toString('hex')}`;
    const service = `opts-${randomBytes(2).toString('hex')}`;
    const b = bridge(node);
    const name = uniqueName('opts');
    const container = await runContainer({
      name,
      publish: ['80/tcp', '81/tcp'],
      labels: {
        ...labels,
        SERVICE_NAME: service,
        SERVICE_ENABLE_TAG_OVERRIDE: 'true',
        SERVICE_80_WEIGHTS_PASSING: '5',
        SERVICE_81_WEIGHTS_PASSING: 'zero',
        SERVICE_80_CHECK_TCP: '$SERVICE_IP:$SERVICE_PORT',
        SERVICE_CHECK_DOCKER: '/bin/check.sh $SERVICE_PORT',
      },
    });
    const [port80, port81] = [await hostPort(container, '80/tcp'), await hostPort(container, '81/tcp')];
    const id80 = `${node}:${name}:80`;
    const id81 = `${node}:${name}:81`;
    const agentService = async (id: string) => {
      const res = await fetch(`${consul.url}/v1/agent/service/${encodeURIComponent(id)}`);
      return res.ok ? ((await res.json()) as Record<string, unknown>) : undefined;
    };
    await until(
      'both ports registered',
      async () => !!(await agentService(id80)) && !!(await agentService(id81)),
    );
    expect(await agentService(id80)).toMatchObject({
      Service: `${service}-80`,
      Port: port80,
      EnableTagOverride: true,
      Weights: { Passing: 5, Warning: 1 },
    });
    // The bad weight is one warning naming the container and the label; the port is still registered.
    // The bridge warns about every container on the engine: count this container's warnings only.
    const ours = (l: LogLine) => l.label === 'SERVICE_WEIGHTS_PASSING' && l.container === name;
    const warning = await b.waitForLog('weights warning', ours);
    expect(warning.msg).toContain('"zero" is not a whole number from 1 to 65535');
    expect(b.logs.filter(ours)).toHaveLength(1);
    expect(await agentService(id81)).toMatchObject({
      Port: port81,
      EnableTagOverride: true,
      Weights: { Passing: 1, Warning: 1 },
    });

    type Check = { CheckID: string; ServiceID: string; Type: string; Status: string; Output: string };
    const checksOf = async (id: string) =>
      Object.values(
        (await (await fetch(`${consul.url}/v1/agent/checks`)).json()) as Record<string, Check>,
      ).filter((c) => c.ServiceID === id);
    // The TCP check reached the published port: $SERVICE_IP:$SERVICE_PORT was the registered address.
    await until('tcp check passing', async () =>
      (await checksOf(id80)).some((c) => c.Type === 'tcp' && c.Status === 'passing'),
    );
    const tcp = (await checksOf(id80)).find((c) => c.Type === 'tcp');
    expect(tcp!.Output).toBe(`TCP connect 127.0.0.1:${port80}: Success`);
    for (const [id, port] of [
      [id80, port80],
      [id81, port81],
    ] as const) {
      const docker = (await checksOf(id)).filter((c) => c.Type === 'docker');
      expect(docker).toHaveLength(1);
      expect(consul.checkDefinition(docker[0]!.CheckID)).toMatchObject({
        dockerContainerId: container.id,
        args: ['/bin/check.sh', String(port)],
        intervalMs: 10_000,
      });
    }
  });

  it('lets Consul reap every service of a bridge killed with SIGKILL', async () => {
    const node = `k-${randomBytes(2).toString('hex')}`;
    const service = `reap-${randomBytes(2).toString('hex')}`;
    const b = bridge(node);
    for (let i = 0; i < 3; i++) {
      await runContainer({
        name: uniqueName('reap'),
        publish: ['80/tcp'],
        env: { SERVICE_NAME: service },
        labels,
      });
    }
    await until('three passing', async () => (await health(service, true)).length === 3);
    await b.kill('SIGKILL');
    await until('critical after the TTL', async () => (await health(service, true)).length === 0, 15_000);
    await until(
      'reaped after deregister-after',
      async () => (await health(service, false)).length === 0,
      20_000,
    );
  });

  it('a bridge restarted while its services are critical revives them before the agent reaps them', async () => {
    const node = `r-${randomBytes(2).toString('hex')}`;
    const service = `revive-${randomBytes(2).toString('hex')}`;
    const first = bridge(node, [], '6s');
    await runContainer({
      name: uniqueName('revive'),
      publish: ['80/tcp'],
      env: { SERVICE_NAME: service },
      labels,
    });
    await until('passing', async () => (await health(service, true)).length === 1);
    await first.kill('SIGKILL');
    await until('critical after the TTL', async () => (await health(service, true)).length === 0, 15_000);
    const criticalAt = Date.now();
    // Nothing changed for the new bridge to write: adoption alone must bring the bridge check back.
    const second = bridge(node, [], '6s');
    await second.waitForLog('inventory', (l) => l.msg === 'docker inventory complete');
    await until('passing again', async () => (await health(service, true)).length === 1, 15_000);
    // Past the moment the agent would have reaped it (6 s after it went critical, reaper every 200 ms).
    await until('the reap deadline passed', () => Date.now() > criticalAt + 7_000, 10_000);
    expect(await health(service, true)).toHaveLength(1);
  });
});
