import { startConsulDouble } from '@registrar/consul-double';
import type { ConsulDouble } from '@registrar/consul-double';
import type { Instance, Registry, ServiceFollower } from '@registrar/core';
import { ConfigError, RegistryRejectedError } from '@registrar/core';
import { service } from '@registrar/core/testing';
import type { Subscription } from 'rxjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ConsulFollowerOptions, ConsulRegistryOptions } from './index.js';
import { consulFollowerFromUri, createConsulFollower, createConsulRegistry } from './index.js';
import { warningCapture, watchFollow } from '@registrar/test-servers/follow';
import * as contract from '@registrar/test-servers/follower-contract';

let double: ConsulDouble | undefined;
const registries: Registry[] = [];
const followers: ServiceFollower[] = [];
const subscriptions: Subscription[] = [];

afterEach(async () => {
  for (const subscription of subscriptions.splice(0)) subscription.unsubscribe();
  await Promise.all(followers.splice(0).map((f) => f.close()));
  for (const r of registries.splice(0)) await r.close().catch(() => undefined);
  await double?.close();
  double = undefined;
});

function registry(nodeId: string, options: Partial<ConsulRegistryOptions> = {}): Registry {
  const r = createConsulRegistry({ nodeId, url: double!.url, ttl: 30, requestTimeoutMs: 1000, ...options });
  registries.push(r);
  return r;
}

function follower(options: Partial<ConsulFollowerOptions> = {}): ServiceFollower {
  const f = createConsulFollower({ url: double!.url, requestTimeoutMs: 1000, waitMs: 5000, ...options });
  followers.push(f);
  return f;
}

const instance = (node: string, port = 8080, address = '10.0.0.5'): Instance => ({
  id: `${node}:web-1:80`,
  address,
  port,
});

function watch(f: ServiceFollower, name: string) {
  const follow = watchFollow(f, name, subscriptions);
  return {
    ...follow,
    /** Until the double holds a blocking query sent after the last update (so a restart cuts it). */
    blocking: () =>
      vi.waitFor(
        () =>
          expect(
            double!.requests.some(
              (r) =>
                r.path === `/v1/health/service/${name}` &&
                r.at >= follow.updatedAt() &&
                /index=[1-9]/.test(r.query),
            ),
          ).toBe(true),
        { timeout: 5000, interval: 10 },
      ),
  };
}

const capture = warningCapture;

/** The contract scenarios' view of the double (started by each test). */
const backend: contract.FollowerBackend = {
  registry: (nodeId) => registry(nodeId),
  follow: () => watch(follower(), 'web'),
  service,
  instance,
};

const put = (path: string, body: unknown) =>
  fetch(`${double!.url}${path}`, { method: 'PUT', body: JSON.stringify(body) }).then((res) => {
    if (!res.ok) throw new Error(`PUT ${path}: ${res.status}`);
  });

describe('consul follower (consul-double)', () => {
  it('two nodes’ services in one set; an update and a deregister are seen, each with blocking queries', async () => {
    double = await startConsulDouble();
    await contract.twoNodesThenUpdateAndDeregister(backend, {
      addressOfB: '10.0.0.6',
      other: { name: 'api', id: 'a:api-1:80' },
    });
    const queries = double.requests.filter((r) => r.path === '/v1/health/service/web');
    expect(queries[0]?.query).toMatch(/[?&]passing=true/);
    expect(queries[0]?.query).toMatch(/[?&]index=0(&|$)/);
    // After the first answer every query blocks on the index it was given.
    expect(queries.slice(1).every((q) => /[?&]index=[1-9]\d*/.test(q.query) && /wait=5s/.test(q.query))).toBe(
      true,
    );
  });

  it('only passing instances: a critical or warning check leaves the set, passing again it comes back', async () => {
    double = await startConsulDouble();
    const a = registry('a');
    await a.register(service({ node: 'a' }));
    await registry('b').register(service({ node: 'b', health: 'critical', healthOutput: 'probe failed' }));
    const follow = watch(follower(), 'web');
    await follow.until([instance('a')]);
    await a.register(service({ node: 'a', health: 'warning', healthOutput: 'slow' }));
    await follow.until([]);
    double.setCheckStatus('service:b:web-1:80:2', 'passing');
    await follow.until([instance('b')]);
    await a.register(service({ node: 'a' }));
    await follow.until([instance('a'), instance('b')]);
  });

  it('a service without an address has its node’s; entries without a port are skipped with one warning', async () => {
    double = await startConsulDouble();
    const { logger, warnings } = capture();
    await put('/v1/agent/service/register', { ID: 'bare', Name: 'web', Port: 80 });
    await put('/v1/agent/service/register', { ID: 'noport', Name: 'web' });
    const follow = watch(follower({ logger }), 'web');
    await follow.until([{ id: 'bare', address: '127.0.0.1', port: 80 }]);
    await registry('a').register(service({ node: 'a' }));
    await follow.until([instance('a'), { id: 'bare', address: '127.0.0.1', port: 80 }]);
    expect(warnings.filter((w) => w.includes('Service.Port'))).toHaveLength(1);
  });

  it('tags and metadata are read back as written, without the adapter’s own Meta keys', async () => {
    double = await startConsulDouble();
    await contract.tagsAndMeta(backend, true);
  });

  it('a follower started before the service exists emits [] and then the instance', async () => {
    double = await startConsulDouble();
    await contract.emptyThenInstance(backend);
  });

  it('agent restarted in place: unreachable once, then the full set again', async () => {
    double = await startConsulDouble();
    await registry('a').register(service({ node: 'a' }));
    const follow = watch(follower(), 'web');
    await follow.until([instance('a')]);
    const before = follow.updates.length;
    await follow.blocking();
    await double.restart();
    await vi.waitFor(() => expect(follow.updates.length).toBe(before + 2), { timeout: 10_000, interval: 20 });
    expect(follow.updates.at(-2)?.kind).toBe('unreachable');
    expect(follow.last()).toEqual([instance('a')]);
  });

  it('agent stopped and a new one started on the same port: unreachable once; the new agent’s set, lower index and all', async () => {
    double = await startConsulDouble();
    const port = double.port;
    // Heartbeat every second: the new agent's 404 makes it register its bridge service again at once, which
    // the services' alias checks need to pass (until then they are critical, so not in the set).
    const a = registry('a', { ttl: 3 });
    await a.register(service({ node: 'a' }));
    await registry('b').register(service({ node: 'b' }));
    // Move the index well past anything the new agent will have.
    for (let i = 0; i < 20; i++) await a.register(service({ node: 'a', port: 8080 + (i % 2) }));
    await a.register(service({ node: 'a' }));
    const follow = watch(follower(), 'web');
    await follow.until([instance('a'), instance('b')]);
    await follow.blocking();
    const indexOf = (query: string) => Number(/index=(\d+)/.exec(query)?.[1] ?? 0);
    const reached = Math.max(...double.requests.map((r) => indexOf(r.query)));
    await double.close();
    await vi.waitFor(() => expect(follow.unreachable()).toBe(1), { timeout: 10_000, interval: 20 });
    double = await startConsulDouble({ port });
    // What changed while it was away: the new agent knows only what is registered with it now.
    await vi.waitFor(() => a.register(service({ node: 'a', port: 7000 })), {
      timeout: 10_000,
      interval: 100,
    });
    await follow.until([instance('a', 7000)]);
    await registry('c').register(service({ node: 'c' }));
    await follow.until([instance('a', 7000), instance('c')]);
    expect(follow.unreachable()).toBe(1);
    // The new agent's index is below what the follower had reached: it did not keep waiting on the old one.
    const now = await fetch(`${double.url}/v1/health/service/web`);
    expect(Number(now.headers.get('X-Consul-Index'))).toBeLessThan(reached);
  });

  it('an index that goes backwards starts over from 0; one below 1 counts as 1', async () => {
    const answers: { index: string; body: unknown[] }[] = [
      { index: '10', body: [] },
      { index: '5', body: [{ Node: { Address: '10.0.0.1' }, Service: { ID: 'x', Port: 1 } }] },
      { index: '0', body: [{ Node: { Address: '10.0.0.1' }, Service: { ID: 'x', Port: 2 } }] },
    ];
    const asked: string[] = [];
    const fetcher: NonNullable<ConsulFollowerOptions['fetch']> = (url, init) => {
      asked.push(new URL(url).searchParams.get('index') ?? '');
      const answer = answers.shift();
      if (!answer) {
        // Then block, as Consul would, until the follower gives up.
        return new Promise((_, reject) =>
          init.signal.addEventListener('abort', () => reject(new Error('aborted'))),
        );
      }
      return Promise.resolve({
        status: 200,
        text: () => Promise.resolve(JSON.stringify(answer.body)),
        headers: new Headers({ 'X-Consul-Index': answer.index }),
      });
    };
    const f = createConsulFollower({ fetch: fetcher, minIntervalMs: 0 });
    followers.push(f);
    const follow = watch(f, 'web');
    await vi.waitFor(() => expect(asked).toHaveLength(4), { timeout: 5000, interval: 10 });
    expect(asked).toEqual(['0', '10', '0', '1']);
    expect(follow.updates).toEqual([
      { kind: 'instances', instances: [] },
      { kind: 'instances', instances: [{ id: 'x', address: '10.0.0.1', port: 1 }] },
      { kind: 'instances', instances: [{ id: 'x', address: '10.0.0.1', port: 2 }] },
    ]);
  });

  it('from a URI: token, namespace and TLS settings as the registry reads them', async () => {
    double = await startConsulDouble({ aclToken: 'secret' });
    const env = { CONSUL_HTTP_TOKEN: 'secret' };
    await registry('a', { token: 'secret' }).register(service({ node: 'a' }));
    await registry('t', { token: 'secret', namespace: 'team' }).register(service({ node: 't' }));
    const { logger } = capture();
    const open = (uri: string, environment: Record<string, string>) => {
      const f = consulFollowerFromUri(uri, { logger, env: environment });
      followers.push(f);
      return f;
    };
    const base = `consul://127.0.0.1:${double.port}`;
    expect(open(base, env).target).toBe(`http://127.0.0.1:${double.port}`);
    await watch(open(base, env), 'web').until([instance('a')]);
    await watch(open(`${base}?ns=team`, env), 'web').until([instance('t')]);
    await watch(
      open(`${base}?partition=default&deregister-after=2m`, { ...env, CONSUL_NAMESPACE: 'team' }),
      'web',
    ).until([instance('t')]);
    // No token: the agent's default-deny ACLs filter the read down to nothing (Consul answers 200, not 403).
    await watch(open(base, {}), 'web').until([]);
    // A token the agent does not know: 403, reported as unreachable once, with what the token needs.
    const wrong = watch(open(base, { CONSUL_HTTP_TOKEN: 'nope' }), 'web');
    await vi.waitFor(() => expect(wrong.unreachable()).toBe(1), { timeout: 5000, interval: 20 });
    const update = wrong.updates[0];
    expect(update?.kind === 'unreachable' && update.error).toBeInstanceOf(RegistryRejectedError);
    expect(update?.kind === 'unreachable' && update.error.message).toMatch(/service:read/);
    expect(() => consulFollowerFromUri('consul://u:p@127.0.0.1', { logger, env: {} })).toThrow(ConfigError);
    expect(() => open(base, env).follow('')).toThrow(ConfigError);
  });

  it('close() completes every follow and ends its blocking query', async () => {
    double = await startConsulDouble();
    await contract.closeCompletesEveryFollow(follower({ waitMs: 60_000 }), subscriptions, () =>
      vi.waitFor(() => expect(double!.requests.filter((r) => /index=[1-9]/.test(r.query))).toHaveLength(1), {
        timeout: 5000,
        interval: 20,
      }),
    );
  });
});
