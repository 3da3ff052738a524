// `registrar render` end to end, on every backend: real containers registered by a real bridge, rendered by
// the real `registrar render` (deploy/render/nginx-upstreams.conf.liquid) into the upstreams of a real nginx
// (Debian's package), checked with `nginx -t` and reloaded with `nginx -s reload`, with requests flowing
// through nginx the whole time. A rolling replacement of three replicas fails no request (nginx retries
// nothing: `proxy_next_upstream off`): the bridge withdraws a stopping replica at its stop signal, the new
// file leaves it out, and the replica (which ignores SIGTERM, like a server finishing its requests) is killed
// only after nginx stopped sending it traffic. Then a registry value nginx refuses (weight=0) and a broken
// template: each leaves nginx serving the last good config.
import type Docker from 'dockerode';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { get, loadGenerator } from '@registrar/test-servers/haproxy';
import { freePort, until } from '@registrar/core/testing';
import { startNginx, type NginxServer } from '@registrar/test-servers/nginx';
import { startBackend, BACKENDS, type Backend } from '../harness/backends.js';
import { spawnBridge, type BridgeProcess, type LogLine } from '../harness/bridge.js';
import { faultScope } from '../faults/common.js';

const EXAMPLE = new URL('../../deploy/render/nginx-upstreams.conf.liquid', import.meta.url);

/** httpd answering with the container's host name, under a shell that ignores SIGTERM. */
const replica = [
  'sh',
  '-c',
  'hostname > /www/index.html; httpd -f -p 80 -h /www & trap "" TERM; while true; do wait; done',
];

/** The shipped example, rendering the test's own service. */
const exampleFor = (service: string) => {
  const source = readFileSync(EXAMPLE, 'utf8');
  const rendered = source.replace('assign names = "web,api"', `assign names = "${service}"`);
  if (rendered === source) throw new Error('the example no longer names its services as this test expects');
  return rendered;
};

describe.each(BACKENDS)('%s', (name) => {
  let backend: Backend;
  let t: ReturnType<typeof faultScope> | undefined;
  let render: BridgeProcess | undefined;
  let nginx: NginxServer | undefined;

  beforeAll(async () => {
    backend = await startBackend(name);
  });
  afterEach(async () => {
    await render?.kill();
    await t?.cleanup();
    await nginx?.stop();
  });
  afterAll(async () => {
    await backend?.close();
  });

  // A readiness probe, as a production service has: the bridge registers the container once it is healthy.
  const health = { test: ['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1/'], intervalMs: 200 };

  it('nginx in front of 3 replicas: a rolling replacement fails no request, a new replica takes traffic within 1 s of its registration; a refused check and a broken template keep the last good config', async () => {
    const scope = (t = faultScope(name));
    // ZooKeeper's default payload carries no metadata; the example reads `weight` from it.
    const uri = backend.uri(scope.scope) + (name === 'zookeeper' ? '?payload=plain' : '');
    const upstream = scope.service;
    nginx = await startNginx({
      files: { 'upstreams.conf': `upstream ${upstream} { server 127.0.0.1:1 down; }\n` },
      http: (port, dir) => `
  include ${dir}/upstreams.conf;
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://${upstream};
      # Like the HAProxy test's retries 0: a request sent to a replica that is gone fails, visibly.
      proxy_next_upstream off;
      proxy_connect_timeout 2s;
    }
  }`,
    });
    const out = join(nginx.dir, 'upstreams.conf');
    const template = join(nginx.dir, 'upstreams.conf.liquid');
    writeFileSync(template, exampleFor(upstream));
    const metricsPort = await freePort();
    scope.bridge(uri, scope.node, ['--internal']);
    const r = (render = spawnBridge([
      'render',
      '--template',
      template,
      '--out',
      out,
      '--check',
      nginx.check,
      '--reload',
      nginx.reload,
      '--metrics-addr',
      `127.0.0.1:${metricsPort}`,
      '--log-level',
      'debug',
      uri,
    ]));
    const metrics = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const start = async (prefix: string, env: Record<string, string> = {}) => {
      const { container, name: containerName } = await scope.container(prefix, { cmd: replica, health, env });
      return { container, name: containerName, host: (await container.inspect()).Config.Hostname };
    };
    /**
     * When the bridge last wrote the container's registration before `by`: the write that made it served. On
     * Consul a container with a health probe is registered at its start with a critical check, and written
     * again (passing) once healthy; etcd and ZooKeeper hold it only from then.
     */
    const registeredAt = async (container: string, by: number) => {
      const bridge = scope.bridges[0]!;
      const written = (l: LogLine) =>
        l.msg === 'registered' && l.container === container && Number(l.time) <= by;
      await bridge.waitForLog(`${container} registered`, written);
      return Math.max(...bridge.logs.filter(written).map((l) => Number(l.time)));
    };

    const old = await Promise.all([1, 2, 3].map((n) => start(`old${n}`)));
    const seen = new Set<string>();
    await until(
      'nginx serving the three old replicas',
      async () => {
        const answer = await get(nginx!.url);
        if ('body' in answer && answer.status === 200) seen.add(answer.body.trim());
        return old.every((o) => seen.has(o.host));
      },
      30_000,
    );
    const load = loadGenerator(nginx.url);
    try {
      const takesTraffic: number[] = [];
      const stopping: { host: string; at: number; stopped: Promise<unknown> }[] = [];
      for (const [index, previous] of old.entries()) {
        const fresh = await start(`new${index + 1}`);
        await until(
          `new replica ${index + 1} taking traffic`,
          () => load.firstSeen(fresh.host) !== undefined,
        );
        const firstSeen = load.firstSeen(fresh.host)!;
        takesTraffic.push(firstSeen - (await registeredAt(fresh.name, firstSeen)));
        // The next replica starts while this one drains: 5 s before Docker kills it.
        stopping.push({
          host: previous.host,
          at: Date.now(),
          stopped: (previous.container as Docker.Container).stop({ t: 5 }),
        });
      }
      await Promise.all(stopping.map((s) => s.stopped));
      const settled = load.ok;
      await until('more requests after the last stop', () => load.ok > settled + 20);
      console.log(
        `[measure] ${name}: nginx, rolling replacement of 3 replicas: ${load.ok} requests, ${load.failed.length} failed; a new replica takes traffic ${takesTraffic.join(', ')} ms after its registration; nginx reloads: ${nginx.reloads()}`,
      );
      expect(load.failed).toEqual([]);
      for (const ms of takesTraffic) expect(ms).toBeLessThan(1_000);
      // Each old replica stopped getting requests before it was killed (5 s after its stop began).
      for (const { host, at } of stopping) expect(load.lastSeen(host)!).toBeLessThan(at + 4_000);

      // A registry value nginx refuses: the new file fails `nginx -t`, the previous one is put back.
      const good = readFileSync(out, 'utf8');
      const reloads = nginx.reloads();
      const bad = await start('bad', { SERVICE_WEIGHT: '0' });
      await r.waitForLog('the failed check', (l) => l.level === 50 && /^--check failed/.test(l.msg));
      expect(readFileSync(out, 'utf8')).toBe(good);
      expect(await metrics()).toMatch(new RegExp(`registrar_render_failing\\{out="${out}"\\} 1`));
      // The replica registered, it is just not in nginx's config.
      expect(await backend.passing(scope.scope, scope.service)).toHaveLength(4);
      await (bad.container as Docker.Container).remove({ force: true });
      await r.waitForLog('the file current again', (l) => l.msg === `${out} is current again`);
      expect(await metrics()).toMatch(new RegExp(`registrar_render_failing\\{out="${out}"\\} 0`));

      // A broken template, read again on SIGHUP: reported, and the previous template stays in use.
      writeFileSync(template, `${exampleFor(upstream)}{% for x in services.${upstream} %}`);
      r.child.kill('SIGHUP');
      await r.waitForLog(
        'the template error',
        (l) => l.level === 50 && /not closed.*previous template stays in use/.test(l.msg),
      );
      expect(await metrics()).toMatch(new RegExp(`registrar_render_failing\\{out="${out}"\\} 1`));
      const ready = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
      expect(ready.status).toBe(503);
      expect(readFileSync(out, 'utf8')).toBe(good);
      expect(nginx.reloads()).toBe(reloads);

      // nginx served the last good config throughout: the new replicas only, and every request answered.
      const before = load.ok;
      await until('more requests after the failures', () => load.ok > before + 20);
      const { failed } = await load.stop();
      expect(failed).toEqual([]);
      expect(load.firstSeen(bad.host)).toBeUndefined();
    } finally {
      await load.stop();
    }
  }, 120_000);
});
