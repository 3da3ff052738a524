import type { Instance, Registry, ServiceFollower } from '@registrar/core';
import { firstValueFrom } from 'rxjs';
import { describe, expect, it, vi } from 'vitest';
import type { EtcdFollowerOptions, EtcdLayout, EtcdRegistryOptions } from './index.js';
import { createEtcdFollower, createEtcdRegistry, etcdFollowerFromUri } from './index.js';
import { parseHostPort } from '@registrar/core/kit';
import { createReader } from './layout.js';
import { service } from '@registrar/core/testing';
import { etcdForFile } from './test-support/helpers.js';
import { warningCapture, watchFollow } from '@registrar/test-servers/follow';
import * as contract from '@registrar/test-servers/follower-contract';

const shared = etcdForFile();
const { registries, followers, subscriptions, proxies } = contract.closedAfterEachTest();

let prefixes = 0;
const freshPrefix = () => `/follow${++prefixes}`;

function registry(nodeId: string, options: Partial<EtcdRegistryOptions> = {}): Registry {
  const r = createEtcdRegistry({ hosts: [shared.etcd.endpoint], nodeId, ttl: 10, ...options });
  registries.push(r);
  return r;
}

function follower(options: Partial<EtcdFollowerOptions> = {}): ServiceFollower {
  const f = createEtcdFollower({ hosts: [shared.etcd.endpoint], requestTimeout: 1000, ...options });
  followers.push(f);
  return f;
}

const watch = (f: ServiceFollower, name: string) => watchFollow(f, name, subscriptions);

const instance = (node: string, port = 8080, address = '10.0.0.5'): Instance => ({
  id: `${node}:web-1:80`,
  address,
  port,
});

const capture = warningCapture;

/** The contract scenarios' view of etcd, under `prefix` with the given options. */
const backend = (
  options: Partial<EtcdFollowerOptions & EtcdRegistryOptions> = {},
): contract.FollowerBackend => ({
  registry: (nodeId) => registry(nodeId, options),
  follow: () => watch(follower(options), 'web'),
  service,
  instance,
});

describe('etcd follower (real etcd)', () => {
  for (const layout of ['json', 'hostport', 'skydns'] as const satisfies EtcdLayout[]) {
    it(`${layout}: two nodes' entries in one set; an update and a deregister are seen`, async () => {
      const follow = await contract.twoNodesThenUpdateAndDeregister(
        backend({ layout, prefix: freshPrefix(), skydnsDomain: 'dc1.example' }),
        {
          addressOfB: 'fd00::7',
          // Another name, nested below this one's keys (`web.x` / `web/x`), is not part of `web`.
          other: { name: layout === 'skydns' ? 'x.web' : 'web/x', id: 'a:other:80', port: 1 },
        },
      );
      // Every update was a complete, distinct set.
      expect(follow.updates.map((u) => (u.kind === 'instances' ? u.instances.length : -1))).toEqual([
        2, 2, 1,
      ]);
    });
  }

  it('a follower started before the service exists emits [] and then the instance', async () => {
    await contract.emptyThenInstance(backend({ prefix: freshPrefix() }));
  });

  for (const layout of ['json', 'hostport', 'skydns'] as const satisfies EtcdLayout[]) {
    it(`${layout}: tags and metadata ${layout === 'json' ? 'are read back as written' : 'are not stored'}`, async () => {
      await contract.tagsAndMeta(backend({ layout, prefix: freshPrefix() }), layout === 'json');
    });
  }

  it('skips values that are not instances with one warning each, and never fails', async () => {
    const prefix = freshPrefix();
    const { logger, warnings } = capture();
    await shared.plain.put(`${prefix}/web/bad-json`).value('{not json');
    await shared.plain.put(`${prefix}/web/no-port`).value('{"address":"10.0.0.1"}');
    const follow = watch(follower({ prefix, logger }), 'web');
    await follow.until([]);
    await registry('a', { prefix }).register(service({ node: 'a' }));
    await follow.until([instance('a')]);
    // Fixed by hand: now an instance (our JSON layout's fields are all the reader needs).
    await shared.plain.put(`${prefix}/web/no-port`).value('{"address":"10.0.0.1","port":7}');
    await follow.until([instance('a'), { id: 'no-port', address: '10.0.0.1', port: 7 }]);
    expect(warnings.filter((w) => w.includes('bad-json'))).toHaveLength(1);
    expect(warnings.filter((w) => w.includes('no-port'))).toHaveLength(1);
    expect(follow.updates.every((u) => u.kind === 'instances')).toBe(true);
  });

  it('etcd stopped: unreachable once; after the restart the full set again, and changes after it', async () => {
    await contract.stoppedThenRestarted(backend({ prefix: freshPrefix() }), shared.etcd, 15_000);
  });

  it('cut off from etcd: unreachable once; back, it has the changes made meanwhile', async () => {
    const prefix = freshPrefix();
    await contract.cutOffThenBack(backend({ prefix }), {
      serverPort: shared.etcd.port,
      proxies,
      followThrough: (port) => watch(follower({ prefix, hosts: [`127.0.0.1:${port}`] }), 'web'),
    });
  });

  it('etcd paused (SIGSTOP): the keepalive notices; resumed, the full set again', async () => {
    const prefix = freshPrefix();
    await contract.pausedThenResumed(
      { ...backend({ prefix }), follow: () => watch(follower({ prefix, keepaliveMs: 5000 }), 'web') },
      shared.etcd.process,
      { timeout: 20_000, interval: 50 },
    );
  });

  it('from a URI: the same parsing, environment and layout as the registry', async () => {
    const prefix = freshPrefix();
    await registry('a', { prefix, layout: 'hostport' }).register(service({ node: 'a' }));
    await contract.fromUri({
      open: etcdFollowerFromUri,
      uri: `etcd://127.0.0.1:${shared.etcd.port}${prefix}?layout=hostport&timeout=2`,
      target: `etcd://127.0.0.1:${shared.etcd.port}${prefix}`,
      followers,
      watch,
      expected: [instance('a')],
      invalid: { uri: 'etcd://127.0.0.1:1/x', env: { ETCD_USERNAME: 'u' } },
      badName: '',
    });
  });

  it('a consumer that takes the first update and leaves (firstValueFrom) leaves no watch on the server', async () => {
    const watchers = async () => {
      const text = await (await fetch(`${shared.etcd.endpoint}/metrics`)).text();
      return Number(/^etcd_debugging_mvcc_watcher_total (\S+)$/m.exec(text)?.[1]);
    };
    const before = await watchers();
    expect(Number.isFinite(before)).toBe(true);
    const f = follower({ prefix: freshPrefix() });
    const first = await firstValueFrom(f.follow('web'));
    expect(first).toEqual({ kind: 'instances', instances: [] });
    // A watch created after the unsubscribe would show here (the follower's client is still open).
    const during = f.follow('api').subscribe();
    await vi.waitFor(async () => expect(await watchers()).toBe(before + 1));
    during.unsubscribe();
    await vi.waitFor(async () => expect(await watchers()).toBe(before));
  });

  it('close() completes every follow and releases the client', async () => {
    await contract.closeCompletesEveryFollow(follower({ prefix: freshPrefix() }), subscriptions);
  });
});

describe('etcd layout reader', () => {
  it('reads each layout’s values and names the problem with the others', () => {
    const json = createReader({ layout: 'json', prefix: '/s', domain: 'skydns.local' });
    expect(json.dir('web')).toBe('/s/web/');
    expect(json.read('/s/web/', '/s/web/n:c:80', '{"address":"10.0.0.1","port":80}')).toEqual({
      id: 'n:c:80',
      address: '10.0.0.1',
      port: 80,
    });
    expect(json.read('/s/web/', '/s/web/x/n:c:80', '{}')).toBeUndefined();
    expect(json.read('/s/web/', '/s/web/n', '{"address":"a","port":0}')).toMatch(/port/);
    expect(json.read('/s/web/', '/s/web/n', '[]')).toMatch(/JSON object/);
    const hostport = createReader({ layout: 'hostport', prefix: '', domain: 'skydns.local' });
    expect(hostport.read('/web/', '/web/n', '[fd00::1]:53')).toEqual({
      id: 'n',
      address: 'fd00::1',
      port: 53,
    });
    expect(hostport.read('/web/', '/web/n', '10.0.0.1')).toMatch(/ip:port/);
    expect(parseHostPort('host.example:8080')).toEqual({ address: 'host.example', port: 8080 });
    expect(parseHostPort('fd00::1:53')).toBeUndefined();
    expect(parseHostPort('10.0.0.1:70000')).toBeUndefined();
    const skydns = createReader({ layout: 'skydns', prefix: '/skydns', domain: 'dc1.example' });
    expect(skydns.root).toBe('/skydns/example/dc1');
    expect(skydns.dir('API.v1')).toBe('/skydns/example/dc1/v1/api/');
    expect(skydns.dir('a..b')).toBeUndefined();
    const dir = skydns.dir('web')!;
    expect(skydns.read(dir, `${dir}host-2ea--proj-5fweb-5f1--80`, '{"host":"10.0.0.5","port":8080}')).toEqual(
      {
        id: 'host.a:proj_web_1:80',
        address: '10.0.0.5',
        port: 8080,
      },
    );
    // Written by someone else (CoreDNS's own examples): the label is the id.
    expect(skydns.read(dir, `${dir}x1`, '{"host":"10.0.0.6","port":80}')).toEqual({
      id: 'x1',
      address: '10.0.0.6',
      port: 80,
    });
    expect(skydns.read(dir, `${dir}x2`, '{"host":"10.0.0.6"}')).toMatch(/port/);
  });
});
