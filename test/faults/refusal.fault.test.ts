// A registry that refuses for a while (a permission revoked, an ACL token deleted) and then accepts again:
// what it refused is registered once it is fixed, without a restart; while it refuses, /readyz says so and
// the log says it once, with the registry's own message. Real etcd 3.4 with auth, and the Consul double with
// ACLs (default deny). The containers are the synthetic engine's (@registrar/core/testing), so no other test's
// container on the shared engine is refused beside them.
import { startConsulDouble, type ConsulDouble } from '@registrar/consul-double';
import { freePort, startSyntheticEngine, until, type SyntheticEngine } from '@registrar/core/testing';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { type BridgeProcess } from '../harness/bridge.js';
import { faultScope, idsOf, sameIds } from './common.js';

interface Readiness {
  ready: boolean;
  services?: Record<string, { registered: number; rejected: number }>;
}

async function readiness(port: number): Promise<Readiness> {
  const response = await fetch(`http://127.0.0.1:${port}/readyz`);
  return (await response.json()) as Readiness;
}

/** Until the registry refused, as the bridge says: one error line with the registry's message, and /readyz. */
async function refusedOnce(bridge: BridgeProcess, metricsPort: number, message: RegExp) {
  const line = await bridge.waitForLog(
    'the refusal',
    (l) => l.msg.startsWith('registration refused by the registry'),
    30_000,
  );
  expect(line.level).toBe(50);
  expect(line.msg).toMatch(message);
  await until('/readyz reports the refused service', async () => {
    const body = await readiness(metricsPort);
    return !body.ready && Object.values(body.services ?? {}).some((s) => s.rejected === 1);
  });
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  expect(metrics).toMatch(/^registrar_service_states\{[^}]*state="rejected"\} 1$/m);
}

let engine: SyntheticEngine;
afterEach(async () => {
  await engine?.close();
});

/** A container of the synthetic engine offering the scope's service. */
const container = (t: ReturnType<typeof faultScope>, name: string) => {
  engine.start({ name, service: t.service });
  return { name };
};

describe('etcd: a permission revoked, then granted again', () => {
  let etcd: EtcdServer;
  let root: Etcd3;
  let t: ReturnType<typeof faultScope>;
  beforeAll(async () => {
    etcd = await startEtcd();
    const setup = new Etcd3({ hosts: [etcd.endpoint] });
    await setup.role('root').create();
    await setup.user('root').create('pw');
    await setup.user('root').addRole('root');
    await setup.auth.authEnable({});
    setup.close();
    root = new Etcd3({ hosts: [etcd.endpoint], auth: { username: 'root', password: 'pw' } });
  });
  afterEach(async () => {
    await t.cleanup();
  });
  afterAll(async () => {
    root?.close();
    await etcd?.close();
  });

  it('a registration refused meanwhile is made once the permission is back, with no restart', async () => {
    t = faultScope('etcd');
    const prefix = `/${t.scope}/`;
    const role = await root.role(`writer-${t.scope}`).create();
    const permission = { permission: 'Readwrite' as const, range: root.range({ prefix }) };
    await role.grant(permission);
    const user = await root.user(`bridge-${t.scope}`).create('secret');
    await user.addRole(role);
    engine = await startSyntheticEngine();
    const metricsPort = await freePort();
    const uri = `etcd://${etcd.endpoint.replace(/^https?:\/\//, '')}/${t.scope}`;
    const bridge = t.bridge(uri, t.node, ['--metrics-addr', `127.0.0.1:${metricsPort}`], {
      ETCD_USERNAME: `bridge-${t.scope}`,
      ETCD_PASSWORD: 'secret',
      DOCKER_HOST: engine.host,
    });
    const ids = async () =>
      (await root.getAll().prefix(`${prefix}${t.service}/`).keys()).map((k) => k.split('/').pop()!);
    const a = container(t, 'a');
    await until('a registered', async () => sameIds(await ids(), idsOf(t.node, [a.name])));

    await role.revoke(permission);
    const b = container(t, 'b');
    await refusedOnce(bridge, metricsPort, /permission denied/i);
    await role.grant(permission);
    const fixed = Date.now();
    await until('b registered once the permission is back', async () =>
      sameIds(await ids(), idsOf(t.node, [a.name, b.name])),
    );
    console.log(`[measure] etcd: registered ${Date.now() - fixed} ms after the permission came back`);
    await until('/readyz ready again', async () => (await readiness(metricsPort)).ready);
    // One error line for the whole refusal.
    expect(bridge.logs.filter((l) => l.msg.startsWith('registration refused by the registry'))).toHaveLength(
      1,
    );
  });
});

describe('Consul: the ACL token deleted, then created again', () => {
  let consul: ConsulDouble;
  let t: ReturnType<typeof faultScope>;
  beforeAll(async () => {
    consul = await startConsulDouble({ aclToken: 'secret', reapIntervalMs: 200, minDeregisterAfterMs: 1000 });
  });
  afterEach(async () => {
    consul.setAclToken('secret');
    await t.cleanup();
  });
  afterAll(async () => {
    await consul?.close();
  });

  it('a registration refused with 403 meanwhile is made once the token is back, with no restart', async () => {
    t = faultScope('consul');
    engine = await startSyntheticEngine();
    const metricsPort = await freePort();
    const bridge = t.bridge(
      `consul://127.0.0.1:${consul.port}`,
      t.node,
      ['--metrics-addr', `127.0.0.1:${metricsPort}`],
      { CONSUL_HTTP_TOKEN: 'secret', DOCKER_HOST: engine.host },
    );
    const ids = async () => {
      const response = await fetch(`${consul.url}/v1/agent/services`, {
        headers: { 'X-Consul-Token': 'secret' },
      });
      if (!response.ok) return [];
      const services = (await response.json()) as Record<string, { Service: string }>;
      return Object.entries(services)
        .filter(([, s]) => s.Service === t.service)
        .map(([id]) => id);
    };
    const a = container(t, 'a');
    await until('a registered', async () => sameIds(await ids(), idsOf(t.node, [a.name])));

    consul.setAclToken('rotated');
    const b = container(t, 'b');
    await refusedOnce(bridge, metricsPort, /ACL not found/);
    consul.setAclToken('secret');
    const fixed = Date.now();
    await until('b registered once the token is back', async () =>
      sameIds(await ids(), idsOf(t.node, [a.name, b.name])),
    );
    console.log(`[measure] consul: registered ${Date.now() - fixed} ms after the token came back`);
    await until('/readyz ready again', async () => (await readiness(metricsPort)).ready);
  });
});
