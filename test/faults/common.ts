import { randomBytes } from 'node:crypto';
import { until } from '@registrar/core/testing';
import { spawnBridge, type BridgeProcess } from '../harness/bridge.js';
import { runContainer, TEST_LABEL, uniqueName, type ContainerSpec } from '../harness/containers.js';
import type { Backend } from '../harness/backends.js';
import { removeLabelled } from '../harness/docker.js';

/** Every fault test: its own node id, scope (prefix / service-name prefix) and container label. */
export function faultScope(backend: string) {
  const tag = randomBytes(3).toString('hex');
  const runLabel = `${TEST_LABEL}.fault=${tag}`;
  const [key, value] = runLabel.split('=') as [string, string];
  const bridges: BridgeProcess[] = [];
  // Consul has no prefix: scope services by a unique name prefix instead.
  const service = `f${tag}`;
  const scope = backend === 'consul' ? service : `faults-${tag}`;
  const dumpLogs = () => {
    for (const b of bridges) {
      console.error(
        b.logs
          .slice(-40)
          .map((l) => JSON.stringify(l))
          .join('\n'),
        b.stderr.join('\n'),
      );
    }
  };
  return {
    node: `node-${tag}`,
    scope,
    service,
    labels: { [key]: value },
    bridges,
    /** A bridge with a 2 s TTL and debug logs, killed by `cleanup()`. */
    bridge(uri: string, node: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}) {
      const b = spawnBridge(
        ['--ip', '127.0.0.1', '--node-id', node, '--ttl', '2', '--log-level', 'debug', ...extra, uri],
        env,
      );
      bridges.push(b);
      return b;
    },
    /** Start a published container named `<prefix>-xxxx` offering `service` (more `env` beside its name). */
    async container(
      prefix: string,
      { env, ...spec }: Pick<ContainerSpec, 'cmd' | 'stopTimeout' | 'health' | 'env'> = {},
    ) {
      const name = uniqueName(prefix);
      const container = await runContainer({
        name,
        publish: ['80/tcp'],
        env: { SERVICE_NAME: service, ...env },
        labels: { [key]: value },
        ...spec,
      });
      return { name, container };
    },
    /** On failure: the bridges' last log lines, for diagnosis. */
    dumpLogs,
    /** Wait until the backend holds exactly `expected` for this scope's service; dump logs if it never does. */
    async converged(backend: Backend, what: string, expected: string[], timeoutMs = 20_000) {
      await until(what, async () => sameIds(await backend.ids(scope, service), expected), timeoutMs).catch(
        (error: unknown) => {
          dumpLogs();
          throw error;
        },
      );
    },
    async cleanup() {
      await Promise.all(bridges.splice(0).map((b) => b.kill()));
      await removeLabelled(runLabel);
    },
  };
}

/** The ids a node's services should have for these containers. */
export const idsOf = (node: string, names: string[]) => names.map((n) => `${node}:${n}:80`).sort();

/** Warnings a bridge logged (level 40). */
export const warnings = (bridge: BridgeProcess, msg?: string) =>
  bridge.logs.filter((l) => l.level === 40 && (msg === undefined || l.msg === msg));

/** The same ids, in any order. */
export const sameIds = (a: string[], b: string[]) =>
  JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
