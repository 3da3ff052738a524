// What a bridge restart leaves behind, through the whole life of the entries it adopts, on every backend: a
// bridge registers two containers and is stopped (SIGTERM, entries left to their TTL); a second bridge with the
// same node id (and --state-dir, so etcd and ZooKeeper resume the lease or session the entries hang on) adopts
// them without writing; then one container is renamed (its adopted entry goes, the new one is written) and both
// are removed: the registry ends empty although this process never wrote the adopted entries. Without
// --cleanup: after the inventory, this node's entries equal what Docker runs, whoever wrote them.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, until } from '@registrar/core/testing';
import { removeDir, tempDir } from '@registrar/test-servers/process';
import { startBackend, BACKENDS, type Backend } from '../harness/backends.js';
import { docker } from '../harness/docker.js';
import { runContainer, uniqueName } from '../harness/containers.js';
import { faultScope, idsOf, sameIds } from './common.js';

describe.each(BACKENDS)('%s', (name) => {
  let backend: Backend;
  let t: ReturnType<typeof faultScope>;
  const dirs: string[] = [];
  beforeAll(async () => {
    backend = await startBackend(name);
  });
  afterEach(async () => {
    await t.cleanup();
    for (const dir of dirs.splice(0)) removeDir(dir);
  });
  afterAll(async () => {
    await backend?.close();
  });

  it('entries adopted after a restart follow their containers: renamed, then removed', async () => {
    t = faultScope(name);
    const stateDir = tempDir('restart-state');
    dirs.push(stateDir);
    // A TTL long enough that the restart costs no entry.
    const args = ['--ttl', '10', '--state-dir', stateDir];
    const first = t.bridge(backend.uri(t.scope), t.node, args);
    const a = await t.container('a');
    const c = await t.container('c');
    await t.converged(backend, 'both registered by the first bridge', idsOf(t.node, [a.name, c.name]));
    await first.kill('SIGTERM');
    const before = await backend.stamps(t.scope, t.service);

    const second = t.bridge(backend.uri(t.scope), t.node, args);
    await second.waitForLog('inventory', (l) => l.msg === 'docker inventory complete');
    await second.waitForLog('a pass after it', (l) => l.msg === 'reconcile pass');
    // Adopted: the same entries, not written again.
    expect(await backend.stamps(t.scope, t.service)).toEqual(before);

    const renamed = uniqueName('c-renamed');
    const changed = Date.now();
    await c.container.rename({ name: renamed });
    await t.converged(
      backend,
      'the renamed container replaces its adopted entry',
      idsOf(t.node, [a.name, renamed]),
    );
    console.log(`[measure] ${name}: adopted entry replaced ${Date.now() - changed} ms after the rename`);
    const removed = Date.now();
    await a.container.remove({ force: true });
    await t.converged(backend, 'the adopted entry of a removed container goes', idsOf(t.node, [renamed]));
    console.log(`[measure] ${name}: adopted entry removed ${Date.now() - removed} ms after docker rm -f`);
    await c.container.remove({ force: true });
    await t.converged(backend, 'nothing left', []);
  });

  it('an entry adopted from an earlier run whose container is gone is removed at the inventory, without --cleanup', async () => {
    t = faultScope(name);
    // A TTL far longer than the wait below: the entry must be removed, not expire.
    const args = ['--ttl', '60'];
    const first = t.bridge(backend.uri(t.scope), t.node, args);
    const a = await t.container('a');
    const c = await t.container('c');
    await t.converged(backend, 'both registered', idsOf(t.node, [a.name, c.name]));
    // The bridge goes away without deregistering; one container goes while it is down.
    await first.kill('SIGKILL');
    await c.container.remove({ force: true });
    const restarted = Date.now();
    t.bridge(backend.uri(t.scope), t.node, args);
    await t.converged(backend, 'the entry of the gone container removed', idsOf(t.node, [a.name]), 15_000);
    console.log(
      `[measure] ${name}: stale entry removed ${Date.now() - restarted} ms after the bridge started`,
    );
  });
});

describe('ZooKeeper, registrator layout', () => {
  let backend: Backend;
  let t: ReturnType<typeof faultScope>;
  const dirs: string[] = [];
  beforeAll(async () => {
    backend = await startBackend('zookeeper');
  });
  afterEach(async () => {
    await t.cleanup();
    for (const dir of dirs.splice(0)) removeDir(dir);
  });
  afterAll(async () => {
    await backend?.close();
  });

  it('an adopted entry on a host port is removed when its container dies, so a replacement on that port is registered', async () => {
    t = faultScope('zookeeper');
    const stateDir = tempDir('restart-state');
    dirs.push(stateDir);
    const uri = `${backend.uri(t.scope)}?layout=registrator`;
    const args = ['--ttl', '10', '--state-dir', stateDir];
    const port = await freePort();
    const run = (prefix: string) =>
      runContainer({
        name: uniqueName(prefix),
        publish: ['80/tcp'],
        hostPort: port,
        env: { SERVICE_NAME: t.service },
        labels: t.labels,
      });
    const first = t.bridge(uri, t.node, args);
    const old = await run('old');
    const endpoint = `127.0.0.1:${port}`;
    // The registrator layout names each node `<ip>:<port>`.
    const held = () => backend.ids(t.scope, t.service);
    await until('the first container registered', async () => sameIds(await held(), [endpoint]));
    await first.kill('SIGTERM');
    const second = t.bridge(uri, t.node, args);
    await second.waitForLog('inventory', (l) => l.msg === 'docker inventory complete');
    await old.remove({ force: true });
    await until('the adopted entry removed', async () => sameIds(await held(), []));
    const replacement = await run('new');
    await until('the replacement registered on the same port', async () => sameIds(await held(), [endpoint]));
    const info = await docker.getContainer(replacement.id).inspect();
    expect(info.State.Running).toBe(true);
  });
});
