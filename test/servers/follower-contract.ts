import type { Instance, Registry, RegistryUriContext, Service, ServiceFollower } from '@registrar/core';
import { ConfigError } from '@registrar/core';
import type { Subscription } from 'rxjs';
import { afterEach, expect, vi } from 'vitest';
import { startTcpProxy, type TcpProxy } from './proxy.js';
import { warningCapture, type watchFollow } from './follow.js';

/**
 * The scenarios every `ServiceFollower` (etcd, ZooKeeper, Consul) must pass, written once. Each test file keeps
 * its own `it` and names the backend's registries, followers and values; the steps and expectations are here.
 */

export type Follow = ReturnType<typeof watchFollow>;

/**
 * What an etcd or ZooKeeper follower test opens, closed after each test: subscriptions first, then followers,
 * registries (deregistering; a stopped server may refuse) and proxies.
 */
export function closedAfterEachTest() {
  const opened = {
    subscriptions: [] as Subscription[],
    followers: [] as ServiceFollower[],
    registries: [] as Registry[],
    proxies: [] as TcpProxy[],
  };
  afterEach(async () => {
    for (const subscription of opened.subscriptions.splice(0)) subscription.unsubscribe();
    await Promise.all(opened.followers.splice(0).map((f) => f.close()));
    await Promise.all(
      opened.registries.splice(0).map((r) => r.close({ deregister: true }).catch(() => undefined)),
    );
    await Promise.all(opened.proxies.splice(0).map((proxy) => proxy.close()));
  });
  return opened;
}

/** One backend as the scenarios see it, in a namespace of the test's own. */
export interface FollowerBackend {
  /** A registry for `nodeId` (the test file closes it). */
  registry(nodeId: string): Registry;
  /** Follow `web` with a new follower (the test file closes it). */
  follow(): Follow;
  service(overrides: Partial<Service> & { node: string }): Service;
  instance(node: string, port?: number, address?: string): Instance;
}

/**
 * Two nodes' entries are one set (another name, `other`, is not part of it); an update and a deregister are
 * seen, and nothing was unreachable. Returns the follow for the backend's own further checks.
 */
export async function twoNodesThenUpdateAndDeregister(
  backend: FollowerBackend,
  { addressOfB, other }: { addressOfB: string; other: Partial<Service> },
): Promise<Follow> {
  const { service, instance } = backend;
  const a = backend.registry('a');
  const b = backend.registry('b');
  await a.register(service({ node: 'a' }));
  await b.register(service({ node: 'b', address: addressOfB, port: 9090 }));
  await a.register(service({ node: 'a', ...other }));
  const follow = backend.follow();
  await follow.until([instance('a'), instance('b', 9090, addressOfB)]);
  await a.register(service({ node: 'a', port: 8081 }));
  await follow.until([instance('a', 8081), instance('b', 9090, addressOfB)]);
  await b.deregister(service({ node: 'b' }).id);
  await follow.until([instance('a', 8081)]);
  expect(follow.unreachable()).toBe(0);
  return follow;
}

/** Started before the service exists: `[]`, then the instance, and nothing else. Returns the follow and a's registry. */
export async function emptyThenInstance(backend: FollowerBackend): Promise<{ follow: Follow; a: Registry }> {
  const follow = backend.follow();
  await follow.until([]);
  const a = backend.registry('a');
  await a.register(backend.service({ node: 'a' }));
  await follow.until([backend.instance('a')]);
  expect(follow.updates).toHaveLength(2);
  return { follow, a };
}

/** The server stopped: unreachable once; restarted, the full set again (within `recoverMs`), and changes after it. */
export async function stoppedThenRestarted(
  backend: FollowerBackend,
  server: { stop(): Promise<void>; start(): Promise<void> },
  recoverMs: number,
): Promise<void> {
  const { service, instance } = backend;
  const a = backend.registry('a');
  await a.register(service({ node: 'a' }));
  await backend.registry('b').register(service({ node: 'b' }));
  const follow = backend.follow();
  await follow.until([instance('a'), instance('b')]);
  const before = follow.updates.length;
  await server.stop();
  await vi.waitFor(() => expect(follow.unreachable()).toBe(1), { timeout: 10_000, interval: 20 });
  await server.start();
  await vi.waitFor(() => expect(follow.updates.length).toBeGreaterThan(before + 1), {
    timeout: recoverMs,
    interval: 50,
  });
  expect(follow.last()).toEqual([instance('a'), instance('b')]);
  // The registry's own connection may still be coming back.
  await vi.waitFor(() => a.register(service({ node: 'a', port: 1234 })), {
    timeout: 15_000,
    interval: 200,
  });
  await follow.until([instance('a', 1234), instance('b')]);
  expect(follow.unreachable()).toBe(1);
}

/** The server paused (SIGSTOP): noticed within `notice`; resumed, the full set again. */
export async function pausedThenResumed(
  backend: FollowerBackend,
  server: { pause(): Promise<void>; resume(): void },
  notice: { timeout: number; interval: number },
): Promise<void> {
  await backend.registry('a').register(backend.service({ node: 'a' }));
  const follow = backend.follow();
  await follow.until([backend.instance('a')]);
  await server.pause();
  try {
    await vi.waitFor(() => expect(follow.unreachable()).toBe(1), notice);
  } finally {
    server.resume();
  }
  await vi.waitFor(() => expect(follow.updates.at(-1)?.kind).toBe('instances'), {
    timeout: 15_000,
    interval: 50,
  });
  expect(follow.last()).toEqual([backend.instance('a')]);
  expect(follow.unreachable()).toBe(1);
}

/**
 * Cut off from the server (a TCP proxy goes down): unreachable once; back, it has the changes made meanwhile.
 * `followThrough` follows `web` through the proxy's port; `whileCut` runs after the changes, before it is back.
 */
export async function cutOffThenBack(
  backend: FollowerBackend,
  {
    serverPort,
    proxies,
    followThrough,
    whileCut = () => Promise.resolve(),
  }: {
    serverPort: number;
    proxies: TcpProxy[];
    followThrough: (proxyPort: number) => Follow;
    whileCut?: () => Promise<unknown>;
  },
): Promise<void> {
  const { service, instance } = backend;
  const a = backend.registry('a');
  const b = backend.registry('b');
  await a.register(service({ node: 'a' }));
  await b.register(service({ node: 'b' }));
  const proxy = await startTcpProxy(serverPort);
  proxies.push(proxy);
  const follow = followThrough(proxy.port);
  await follow.until([instance('a'), instance('b')]);
  await proxy.down();
  await vi.waitFor(() => expect(follow.unreachable()).toBe(1), { timeout: 10_000, interval: 20 });
  await a.register(service({ node: 'a', port: 4321 }));
  await b.deregister(service({ node: 'b' }).id);
  await backend.registry('c').register(service({ node: 'c' }));
  await whileCut();
  await proxy.up();
  await follow.until([instance('a', 4321), instance('c')], 15_000);
  expect(follow.unreachable()).toBe(1);
}

/**
 * A follower opened from `uri` (with `open`, the backend's `…FollowerFromUri`): its `target`, and what is registered read
 * through it (`expected`); `invalid` (a URI and environment the backend refuses) and a name it cannot hold
 * (`badName`) are ConfigErrors. The follower goes into `followers` for the test's clean-up.
 */
export async function fromUri({
  open,
  uri,
  target,
  followers,
  watch,
  expected,
  invalid,
  badName,
}: {
  open: (uri: string, context: Pick<RegistryUriContext, 'logger' | 'env'>) => ServiceFollower;
  uri: string;
  target: string;
  followers: ServiceFollower[];
  watch: (f: ServiceFollower, name: string) => Follow;
  expected: Instance[];
  invalid: { uri: string; env: Record<string, string> };
  badName: string;
}): Promise<void> {
  const follower = open(uri, { logger: warningCapture().logger, env: {} });
  followers.push(follower);
  expect(follower.target).toBe(target);
  await watch(follower, 'web').until(expected);
  expect(() => open(invalid.uri, { logger: warningCapture().logger, env: invalid.env })).toThrow(ConfigError);
  expect(() => follower.follow(badName)).toThrow(ConfigError);
}

/** close() completes every follow (`whileOpen` runs between the subscribe and the close). */
export async function closeCompletesEveryFollow(
  f: ServiceFollower,
  subscriptions: Subscription[],
  whileOpen: () => Promise<unknown> = () => Promise.resolve(),
): Promise<void> {
  let completed = false;
  subscriptions.push(f.follow('web').subscribe({ complete: () => (completed = true) }));
  await whileOpen();
  await f.close();
  expect(completed).toBe(true);
}

/**
 * The service's tags and metadata reach its instance where the layout stores them (`carried`), as written:
 * quotes, `;`, `}` and a newline included. Where the layout stores none, the instance has neither.
 */
export async function tagsAndMeta(backend: FollowerBackend, carried: boolean): Promise<void> {
  const tags = ['edge', 'a "quoted"; }'];
  const meta = { zone: 'eu-1', note: 'two\nlines; }' };
  await backend.registry('a').register(backend.service({ node: 'a', tags, meta }));
  const follow = backend.follow();
  await follow.until([{ ...backend.instance('a'), ...(carried && { tags, meta }) }]);
}
