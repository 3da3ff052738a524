// Drain on stop, on every backend: Docker's stop signal withdraws a container at once, while its process
// still runs; other signals change nothing; a container that survives its stop signal is served again;
// --no-drain keeps it until the process exits.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@registrar/core/testing';
import { startBackend, BACKENDS, type Backend } from '../harness/backends.js';
import { faultScope, idsOf, sameIds } from '../faults/common.js';

/** httpd that, on SIGTERM, goes on running for `seconds` before it exits (a graceful shutdown). */
const gracefulExit = (seconds: number) => [
  'sh',
  '-c',
  `httpd -f -p 80 -h /www & trap "sleep ${seconds}; exit 0" TERM; wait`,
];
/** httpd under a shell that ignores SIGTERM. */
const ignoresTerm = ['sh', '-c', 'httpd -f -p 80 -h /www & trap "" TERM; while true; do wait; done'];

// The bridge sees the whole engine: other test files' containers are signalled, stopped and force-removed
// (SIGKILL) meanwhile, and it logs those too. Every log line waited for here is this test's container's.

describe.each(BACKENDS)('%s', (name) => {
  let backend: Backend;
  let t: ReturnType<typeof faultScope>;
  beforeAll(async () => {
    backend = await startBackend(name);
  });
  afterEach(async () => {
    await t.cleanup();
  });
  afterAll(async () => {
    await backend?.close();
  });

  const served = async () => backend.passing(t.scope, t.service);
  const bridge = (extra: string[] = []) => t.bridge(backend.uri(t.scope), t.node, extra);

  it('docker stop withdraws the container at its stop signal, while its process still runs', async () => {
    t = faultScope(name);
    const b = bridge();
    const { name: container, container: c } = await t.container('graceful', { cmd: gracefulExit(5) });
    const expected = idsOf(t.node, [container]);
    await until('served', async () => sameIds(await served(), expected));
    const stopAt = Date.now();
    const stopped = c.stop({ t: 20 });
    await until('withdrawn', async () => (await served()).length === 0);
    const withdrawnMs = Date.now() - stopAt;
    const running = (await c.inspect()).State.Running;
    console.log(
      `[measure] ${name}: docker stop → withdrawn in ${withdrawnMs} ms (container running: ${running})`,
    );
    expect(running).toBe(true);
    await b.waitForLog(
      'the withdrawal logged',
      (l) => l.msg === 'container stopping: withdrawing its services' && l.container === container,
    );
    await stopped;
    // Gone for good after the exit: from the registry itself, not only from the passing view.
    await until('removed after the exit', async () => (await backend.ids(t.scope, t.service)).length === 0);
  });

  it('other signals change nothing', async () => {
    t = faultScope(name);
    const b = bridge();
    const { name: container, container: c } = await t.container('hup', { cmd: gracefulExit(5) });
    const expected = idsOf(t.node, [container]);
    await until('served', async () => sameIds(await served(), expected));
    await c.kill({ signal: 'SIGHUP' });
    await b.waitForLog(
      'the SIGHUP seen',
      (l) =>
        l.msg === 'container signalled; still served' && l.container === container && l.signal === 'SIGHUP',
    );
    expect(await served()).toEqual(expected);
  });

  it('a container that survives its stop signal is served again after its stop timeout', async () => {
    t = faultScope(name);
    const b = bridge();
    const { name: container, container: c } = await t.container('stubborn', {
      cmd: ignoresTerm,
      stopTimeout: 1,
    });
    const expected = idsOf(t.node, [container]);
    await until('served', async () => sameIds(await served(), expected));
    await c.kill({ signal: 'SIGTERM' });
    await until('withdrawn', async () => (await served()).length === 0);
    await until('served again', async () => sameIds(await served(), expected));
    expect((await c.inspect()).State.Running).toBe(true);
    await b.waitForLog(
      'the survival logged',
      (l) => l.msg === 'container survived its stop signal: serving it again' && l.container === container,
    );
  });

  it('--no-drain keeps a stopping container served until its process exits', async () => {
    t = faultScope(name);
    const b = bridge(['--no-drain']);
    const { name: container, container: c } = await t.container('nodrain', { cmd: gracefulExit(3) });
    const expected = idsOf(t.node, [container]);
    await until('served', async () => sameIds(await served(), expected));
    const stopped = c.stop({ t: 20 });
    await b.waitForLog(
      'the SIGTERM seen',
      (l) =>
        l.msg === 'container signalled; still served' && l.container === container && l.signal === 'SIGTERM',
    );
    expect(await served()).toEqual(expected);
    expect((await c.inspect()).State.Running).toBe(true);
    await stopped;
    await until('removed after the exit', async () => (await backend.ids(t.scope, t.service)).length === 0);
  });
});
