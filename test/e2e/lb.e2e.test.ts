// `registrar lb` end to end, on every backend: real containers registered by a real bridge, followed by the
// real `registrar lb` into a real HAProxy, with requests flowing through it the whole time. A rolling
// replacement of three replicas (a new one started, then an old one stopped with `docker stop -t 5`) must
// fail no request: the bridge withdraws a stopping replica at its stop signal, the follower puts its slot in
// maintenance, and the replica (which ignores SIGTERM, like a server finishing its requests) is killed only
// after HAProxy stopped sending it traffic.
import type Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { get, loadGenerator, startHaproxy, type HaproxyServer } from '@registrar/test-servers/haproxy';
import { until } from '@registrar/core/testing';
import { startBackend, BACKENDS, type Backend } from '../harness/backends.js';
import { spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { faultScope } from '../faults/common.js';

/** httpd answering with the container's host name, under a shell that ignores SIGTERM. */
const replica = [
  'sh',
  '-c',
  'hostname > /www/index.html; httpd -f -p 80 -h /www & trap "" TERM; while true; do wait; done',
];

describe.each(BACKENDS)('%s', (name) => {
  let backend: Backend;
  let haproxy: HaproxyServer;
  let t: ReturnType<typeof faultScope> | undefined;
  let lb: BridgeProcess | undefined;

  beforeAll(async () => {
    [backend, haproxy] = await Promise.all([startBackend(name), startHaproxy({ backends: { web: 6 } })]);
  });
  afterEach(async () => {
    await lb?.kill();
    await t?.cleanup();
  });
  afterAll(async () => {
    await backend?.close();
    await haproxy?.stop();
  });

  // A readiness probe, as a production service has: Docker starts the container before httpd listens, and a
  // request sent in between would get an empty answer from docker-proxy. The bridge registers a container
  // with a health check once it is healthy (Consul: critical until then).
  const health = { test: ['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1/'], intervalMs: 200 };
  const start = async (scope: ReturnType<typeof faultScope>, prefix: string) => {
    const { container } = await scope.container(prefix, { cmd: replica, health });
    return { container, host: (await container.inspect()).Config.Hostname };
  };

  it('a rolling replacement of 3 replicas, each stopped with docker stop -t 5 while requests flow, fails no request', async () => {
    const scope = (t = faultScope(name));
    // --internal: HAProxy reaches each replica at its own address, not through Docker's port publishing
    // (docker-proxy and its NAT rules), which stalled new connections for seconds while Docker tore another
    // container's network down.
    scope.bridge(backend.uri(scope.scope), scope.node, ['--internal']);
    lb = spawnBridge([
      'lb',
      '--haproxy',
      haproxy.socket,
      '--service',
      `${scope.service}=web`,
      '--check-interval',
      '0.5',
      '--log-level',
      'debug',
      backend.uri(scope.scope),
    ]);
    const old = await Promise.all([1, 2, 3].map((n) => start(scope, `old${n}`)));
    // The pool first holds the three old replicas; the load starts from there.
    const seen = new Set<string>();
    await until(
      'HAProxy serving the three old replicas',
      async () => {
        const answer = await get(haproxy.url('web'));
        if ('body' in answer && answer.status === 200) seen.add(answer.body.trim());
        return old.every((r) => seen.has(r.host));
      },
      30_000,
    );
    const load = loadGenerator(haproxy.url('web'));
    try {
      const takesTraffic: number[] = [];
      const stoppedAt = new Map<string, number>();
      for (const [index, previous] of old.entries()) {
        const started = Date.now();
        const fresh = await start(scope, `new${index + 1}`);
        await until(
          `new replica ${index + 1} taking traffic`,
          () => load.firstSeen(fresh.host) !== undefined,
        );
        takesTraffic.push(load.firstSeen(fresh.host)! - started);
        await (previous.container as Docker.Container).stop({ t: 5 });
        stoppedAt.set(previous.host, Date.now());
      }
      // Traffic goes on a little after the last stop, so a late failure would be counted too.
      const settled = load.ok;
      await until('more requests after the last stop', () => load.ok > settled + 20);
      const { ok, failed } = await load.stop();
      console.log(
        `[measure] ${name}: rolling replacement of 3 replicas: ${ok} requests, ${failed.length} failed; new replica (health probe every 200 ms) takes traffic ${takesTraffic.join(', ')} ms after docker run began`,
      );
      if (failed.length > 0) {
        const t0 = failed[0]!.at;
        console.log(
          '[diagnosis] first failures',
          failed.slice(0, 3).map((f) => `${f.at - t0} ${f.what.slice(0, 40)}`),
          'last',
          failed.at(-1)!.at - t0,
        );
        console.log(
          '[diagnosis] stops',
          [...stoppedAt.entries()].map(([h, a]) => `${h} ${a - t0}`),
        );
        console.log(
          '[diagnosis] lb log',
          lb!.logs
            .slice(-40)
            .map((l) => `${Number(l.time) - t0} ${JSON.stringify(l)}`.slice(0, 400))
            .join('\n'),
        );
        console.log(
          '[diagnosis] bridge log',
          scope.bridges[0]!.logs.filter((l) => l.msg !== 'reconcile pass')
            .slice(-30)
            .map((l) => `${Number(l.time) - t0} ${JSON.stringify(l)}`.slice(0, 300))
            .join('\n'),
        );
      }
      expect(failed).toEqual([]);
      // Each old replica stopped getting requests before it was killed (5 s after its stop began).
      for (const [host, at] of stoppedAt) expect(load.lastSeen(host)!).toBeLessThan(at - 4_000);
    } finally {
      await load.stop();
    }
  }, 120_000);
});
