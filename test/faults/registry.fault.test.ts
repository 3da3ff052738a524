// Registry-side faults, for every backend: an outage amid container churn, the loss of the lease / session /
// agent state, and SIGTERM while the registry is unreachable. Each ends by checking the registry's content.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startBackend, BACKENDS, type Backend } from '../harness/backends.js';
import { faultScope, idsOf, warnings } from './common.js';

/** How long the registry stays away in the outage scenario (issue: 30 s). */
const OUTAGE_MS = Number(process.env.FAULT_OUTAGE_SECONDS ?? 30) * 1000;

describe.each(BACKENDS)('%s', (name) => {
  let backend: Backend;
  let t: ReturnType<typeof faultScope>;
  beforeAll(async () => {
    backend = await startBackend(name);
  });
  afterEach(async () => {
    try {
      await t.cleanup();
    } finally {
      await backend.up();
    }
  });
  afterAll(async () => {
    await backend?.close();
  });

  const converged = (what: string, node: string, names: string[], timeoutMs?: number) =>
    t.converged(backend, what, idsOf(node, names), timeoutMs);

  it(`outage of ${OUTAGE_MS / 1000} s amid churn: converges exactly, logs the outage once, never exits`, async () => {
    t = faultScope(name);
    const bridge = t.bridge(backend.uri(t.scope), t.node, ['--resync', '5']);
    const a = await t.container('a');
    const b = await t.container('b');
    await converged('a and b registered', t.node, [a.name, b.name]);

    await backend.down();
    const outageEnds = Date.now() + OUTAGE_MS;
    await a.container.stop({ t: 0 });
    const c = await t.container('c');
    const d = await t.container('d');
    await d.container.stop({ t: 0 });
    const e = await t.container('e');
    // The outage lasts its full length: this wait is the fault itself, not a stand-in for an effect.
    await new Promise((r) => setTimeout(r, Math.max(0, outageEnds - Date.now())));
    await backend.up();
    const back = Date.now();

    await converged('the running set after the outage', t.node, [b.name, c.name, e.name]);
    console.log(`[measure] ${name}: converged ${Date.now() - back} ms after a ${OUTAGE_MS / 1000} s outage`);
    const ids = await backend.ids(t.scope, t.service);
    expect(new Set(ids).size).toBe(ids.length);
    expect(bridge.child.exitCode).toBeNull();
    expect(warnings(bridge, 'registry unavailable; retrying')).toHaveLength(1);
    await bridge.waitForLog('recovery logged', (l) => l.msg === 'registry writes succeed again');
    expect(warnings(bridge, 'registry unavailable; retrying')).toHaveLength(1);
  });

  it('lease / session / agent state lost: everything is registered again within one TTL', async () => {
    t = faultScope(name);
    const bridge = t.bridge(backend.uri(t.scope), t.node);
    const a = await t.container('a');
    const b = await t.container('b');
    await converged('registered', t.node, [a.name, b.name]);
    await backend.loseLiveness(t.scope, t.service);
    const lost = Date.now();
    await converged('registered again', t.node, [a.name, b.name], 15_000);
    console.log(`[measure] ${name}: re-registered ${Date.now() - lost} ms after the liveness loss`);
    // The log line travels through a pipe: it may arrive after the effect the test saw over HTTP.
    await bridge.waitForLog(
      'the loss logged',
      (l) => l.msg === 'registry liveness lost; registering everything again',
    );
  });

  it('SIGTERM during an outage exits 0 within a bounded time; entries are kept for the TTL by default', async () => {
    t = faultScope(name);
    const bridge = t.bridge(backend.uri(t.scope), t.node);
    const a = await t.container('a');
    await converged('registered', t.node, [a.name]);
    await backend.down();
    const started = Date.now();
    bridge.child.kill('SIGTERM');
    const { code } = await bridge.exited;
    expect(code).toBe(0);
    console.log(`[measure] ${name}: SIGTERM during an outage exited after ${Date.now() - started} ms`);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('--deregister-on-exit removes this node’s entries on SIGTERM', async () => {
    t = faultScope(name);
    const bridge = t.bridge(backend.uri(t.scope), t.node, ['--deregister-on-exit', '--ttl', '30']);
    const a = await t.container('a');
    await converged('registered', t.node, [a.name]);
    bridge.child.kill('SIGTERM');
    expect((await bridge.exited).code).toBe(0);
    // With a 30 s TTL nothing could have expired yet: the entries went because the bridge removed them.
    expect(await backend.ids(t.scope, t.service)).toEqual([]);
  });
});
