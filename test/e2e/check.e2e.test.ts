// `registrar check <uri...>`: one verdict line per dependency, exit 0 only when all pass; the probe entry is
// written and removed under `<node>.check`, so a bridge's own entries are never touched.
import { startConsulDouble, type ConsulDouble } from '@registrar/consul-double';
import { createEtcdRegistry } from '@registrar/etcd';
import type { Service } from '@registrar/core';
import { Etcd3 } from 'etcd3';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { freePort } from '@registrar/core/testing';
import { removeDir, tempDir } from '@registrar/test-servers/process';
import { makeCertificates } from '@registrar/test-servers/tls';
import { startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';
import { runCli } from '../harness/bridge.js';

let etcd: EtcdServer;
let zk: ZookeeperServer;
let consul: ConsulDouble;
let secured: ConsulDouble;
let client: Etcd3;
const tag = randomBytes(3).toString('hex');
const node = `chk-${tag}`;

beforeAll(async () => {
  [etcd, zk, consul, secured] = await Promise.all([
    startEtcd(),
    startZookeeper(),
    startConsulDouble(),
    startConsulDouble({ aclToken: `root-${tag}` }),
  ]);
  client = new Etcd3({ hosts: etcd.endpoint });
});

afterAll(async () => {
  client?.close();
  await Promise.all([etcd?.close(), zk?.close(), consul?.close(), secured?.close()]);
});

const etcdUri = () => `etcd://${etcd.endpoint.replace(/^https?:\/\//, '')}/check-${tag}`;
const zkUri = () => `zookeeper://${zk.connectString}/check-${tag}`;
const consulUri = (agent: ConsulDouble) => `consul://127.0.0.1:${agent.port}`;

/** A service of the real node, as a running bridge would hold it. */
const bridgeService = (): Service => ({
  id: `${node}:web-1:80`,
  name: 'web',
  address: '127.0.0.1',
  port: 8080,
  protocol: 'tcp',
  containerPort: 80,
  tags: [],
  meta: {},
  node,
  container: { id: 'c1', name: 'web-1' },
  health: 'passing',
  healthOutput: '',
  checks: {},
});

describe('registrar check', () => {
  it('passes on Docker and every registry, leaves nothing behind and touches no entry of the node', async () => {
    const bridge = createEtcdRegistry({ hosts: [etcd.endpoint], nodeId: node, prefix: `/check-${tag}` });
    await bridge.register(bridgeService());
    const before = await client.getAll().prefix(`/check-${tag}/`).exec();
    try {
      const { code, stdout, stderr } = await runCli([
        'check',
        '--node-id',
        node,
        '--ttl',
        '5',
        etcdUri(),
        zkUri(),
        consulUri(consul),
      ]);
      expect({ code, stderr }).toEqual({ code: 0, stderr: [] });
      expect(stdout).toHaveLength(4);
      expect(stdout[0]).toMatch(/^ok {4}docker {2}engine ".+" \S+ at /);
      for (const line of stdout.slice(1)) {
        expect(line).toMatch(
          new RegExp(`^ok {4}\\S+ {2}read, wrote and deleted a probe entry as node "${node}\\.check"`),
        );
      }
      expect(stdout[1]).toMatch(/lease \w+ with a TTL of 5 s$/);
      expect(stdout[2]).toMatch(/session timeout \d+ ms as negotiated \(requested 5000 ms\)$/);
      expect(stdout[3]).toContain(`TTL check of registrar:${node}.check, 5 s`);

      // The node's own entry is untouched (same create and mod revision); no probe key is left.
      const after = await client.getAll().prefix(`/check-${tag}/`).exec();
      const stamps = (r: typeof before) =>
        r.kvs.map((kv) => `${kv.key.toString()} ${kv.create_revision}/${kv.mod_revision}`);
      expect(stamps(after)).toEqual(stamps(before));
      const services = (await (await fetch(`${consul.url}/v1/agent/services`)).json()) as Record<
        string,
        unknown
      >;
      expect(Object.keys(services)).toEqual([]);
    } finally {
      await bridge.close({ deregister: true });
    }
  });

  it('fails with one line naming the registry that does not answer, and exits 1', async () => {
    const closed = await freePort();
    const { code, stdout } = await runCli([
      'check',
      '--node-id',
      node,
      etcdUri(),
      `etcd://127.0.0.1:${closed}/x`,
    ]);
    expect(code).toBe(1);
    expect(stdout).toHaveLength(3);
    expect(stdout[1]).toMatch(/^ok /);
    expect(stdout[2]).toMatch(new RegExp(`^FAIL {2}etcd://127\\.0\\.0\\.1:${closed}/x {2}\\S`));
    // One sentence with the address and the likely cause, not gRPC's text.
    expect(stdout[2]).toMatch(
      new RegExp(
        `etcd range: cannot connect to 127\\.0\\.0\\.1:${closed} \\(ECONNREFUSED\\): nothing listens there: is etcd running, and is this its client port\\?$`,
      ),
    );
    expect(stdout[2]).not.toContain('Resolution note');
  });

  it('reports a rejected Consul token, and passes with the right one', async () => {
    const without = await runCli(['check', '--node-id', node, consulUri(secured)], { CONSUL_HTTP_TOKEN: '' });
    expect(without.code).toBe(1);
    expect(without.stdout[1]).toMatch(
      /^FAIL {2}http:\/\/127\.0\.0\.1:\d+ {2}Consul ACL token rejected .*set CONSUL_HTTP_TOKEN/,
    );
    const withToken = await runCli(['check', '--node-id', node, consulUri(secured)], {
      CONSUL_HTTP_TOKEN: `root-${tag}`,
    });
    expect(withToken.code).toBe(0);
    expect(withToken.stdout.join('\n')).not.toContain(`root-${tag}`);
  });

  it('checks TLS: passes with the CA and a client certificate, and fails, naming the registry, without either', async () => {
    const dir = tempDir('check-tls');
    makeCertificates(dir);
    const pem = (name: string) => join(dir, name);
    const tls = await startEtcd({
      tls: { cert: pem('server.pem'), key: pem('server.key'), ca: pem('ca.pem'), clientCertAuth: true },
    });
    try {
      const uri = `etcds://127.0.0.1:${tls.port}/check-${tag}?timeout=2`;
      const check = (env: Record<string, string>) => runCli(['check', '--node-id', node, uri], env);
      const trusted = await check({
        ETCD_CACERT: pem('ca.pem'),
        ETCD_CERT: pem('client.pem'),
        ETCD_KEY: pem('client.key'),
      });
      expect(trusted.code, trusted.stdout.join('\n')).toBe(0);
      expect(trusted.stdout[1]).toMatch(
        /^ok {4}etcds:\/\/127\.0\.0\.1:\d+\/check-\w+ {2}read, wrote and deleted/,
      );

      const noClientCertificate = await check({ ETCD_CACERT: pem('ca.pem') });
      expect(noClientCertificate.code).toBe(1);
      expect(noClientCertificate.stdout[1]).toMatch(/^FAIL {2}etcds:\/\/127\.0\.0\.1:\d+\/check-\w+ {2}\S/);

      const untrustedServer = await check({ ETCD_CERT: pem('client.pem'), ETCD_KEY: pem('client.key') });
      expect(untrustedServer.code).toBe(1);
      expect(untrustedServer.stdout[1]).toMatch(/^FAIL {2}etcds:/);
    } finally {
      await tls.close();
      removeDir(dir);
    }
  });

  it('checks permission: a user who may read but not write under the prefix fails, a wrong password too', async () => {
    const secured = await startEtcd();
    const prefix = `/check-${tag}`;
    try {
      // What `etcdctl role add` / `role grant-permission --prefix ... read` / `user add` / `auth enable` do.
      const setup = new Etcd3({ hosts: [secured.endpoint] });
      await setup.role('root').create();
      await setup.user('root').create('pw');
      await setup.user('root').addRole('root');
      const reader = await setup.role('reader').create();
      await reader.grant({ permission: 'Read', range: setup.range({ prefix }) });
      await setup.user('watcher').create('pw');
      await setup.user('watcher').addRole('reader');
      await setup.auth.authEnable({});
      setup.close();

      const uri = `etcd://${secured.endpoint.replace(/^https?:\/\//, '')}${prefix}?timeout=2`;
      const as = (user: string, password: string) =>
        runCli(['check', '--node-id', node, uri], { ETCD_USERNAME: user, ETCD_PASSWORD: password });
      const readOnly = await as('watcher', 'pw');
      expect(readOnly.code).toBe(1);
      expect(readOnly.stdout[1]).toMatch(
        /^FAIL {2}etcd:\/\/127\.0\.0\.1:\d+\/check-\w+ {2}.*permission denied/i,
      );
      const wrongPassword = await as('watcher', 'nope');
      expect(wrongPassword.code).toBe(1);
      expect(wrongPassword.stdout[1]).toMatch(/^FAIL {2}etcd:/);
      const allowed = await as('root', 'pw');
      expect(allowed.code, allowed.stdout.join('\n')).toBe(0);
    } finally {
      await secured.close();
    }
  });

  it('fails on a Docker engine that does not answer', async () => {
    const socket = `/nonexistent-${tag}.sock`;
    const { code, stdout } = await runCli([
      'check',
      '--docker-host',
      `unix://${socket}`,
      '--node-id',
      node,
      etcdUri(),
    ]);
    expect(code).toBe(1);
    expect(stdout[0]).toBe(
      `FAIL  docker  no Docker socket at ${socket} (ENOENT): mount it into the container (-v /var/run/docker.sock:/var/run/docker.sock:ro), or point --docker-host / DOCKER_HOST at the engine`,
    );
    expect(stdout[1]).toMatch(/^ok /);
  });
});
