import type { DockerClient } from './docker.js';
import { randomBytes } from 'node:crypto';
import { NodeIdConflictError, silentLogger, type Registry, type Service } from '@registrar/core';
import { engineIdentity, findNodeIdConflict } from '@registrar/core/internal';
import type { CliConfig } from './options.js';
import { boundedInfo, describeDockerError, dockerAddress } from './docker.js';
import { createRegistry } from './registries.js';

/** Each probe gets this long; a server that never answers is a failure, not a hang. */
const PROBE_TIMEOUT_MS = 15_000;

interface Verdict {
  readonly ok: boolean;
  readonly subject: string;
  readonly detail: string;
}

const within = <T>(what: string, work: Promise<T>, ms = PROBE_TIMEOUT_MS): Promise<T> =>
  Promise.race([
    work,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s (${what})`)), ms).unref(),
    ),
  ]);

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/**
 * `registrar check <uri...>`: one line per dependency, `ok` or `FAIL` with what was tried. Docker must
 * answer; each registry must accept a probe entry (read, write, delete), which also proves its credentials
 * and TLS. Probes run under the node id `<node>.check`, so the entries of a bridge running as `<node>` are
 * never touched, not even by the clean-up. With the engine's ID known, each registry is also read (read only)
 * for entries of `<node>` that another Docker engine wrote: the conflict a bridge would stop on. Resolves with the exit code: 0 when everything passed, else 1.
 */
export async function runCheck(
  config: CliConfig,
  docker: DockerClient,
  write: (line: string) => void,
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const verdicts: Verdict[] = [];
  const report = (verdict: Verdict) => {
    verdicts.push(verdict);
    write(`${verdict.ok ? 'ok  ' : 'FAIL'}  ${verdict.subject}  ${verdict.detail}\n`);
  };

  let engineName: string | undefined;
  let engineId: string | undefined;
  const address = dockerAddress(config.dockerHost, env);
  const result = await boundedInfo(docker, new AbortController().signal, PROBE_TIMEOUT_MS);
  if ('info' in result) {
    const { info } = result;
    const engine = engineIdentity(info);
    engineName = info.Name;
    engineId = engine.id;
    report({
      ok: true,
      subject: 'docker',
      detail: `engine "${info.Name ?? '?'}" ${info.ServerVersion ?? ''}${engine.kind === 'podman' ? ` (Podman${engine.rootless ? ', rootless' : ''})` : ''} at ${address}`,
    });
  } else {
    // One sentence with the address and the likely cause (missing socket, permission, refused, TLS...).
    const { sentence } = describeDockerError(
      result.error,
      address,
      'GET /info',
      result.timedOut,
      PROBE_TIMEOUT_MS,
    );
    report({ ok: false, subject: 'docker', detail: sentence });
  }

  const nodeId = config.nodeId ?? engineName ?? 'registrar';
  for (const uri of config.uris) report(await probeRegistry(uri, nodeId, engineId, config, env));
  return verdicts.every((v) => v.ok) ? 0 : 1;
}

async function probeRegistry(
  uri: string,
  nodeId: string,
  engineId: string | undefined,
  config: CliConfig,
  env: NodeJS.ProcessEnv,
): Promise<Verdict> {
  const probeNode = `${nodeId}.check`;
  let registry: Registry | undefined;
  let subject = uri;
  const started = performance.now();
  try {
    registry = await createRegistry(uri, {
      nodeId: probeNode,
      ttl: config.ttl,
      ...(config.ttlRefresh !== undefined && { ttlRefresh: config.ttlRefresh }),
      logger: silentLogger,
      env,
    });
    subject = registry.target;
    const probe = probeService(probeNode);
    const adapter = registry;
    await within('list', adapter.list());
    await within('write a probe entry', adapter.register(probe));
    const stored = await within('read it back', adapter.list());
    if (!stored.some((entry) => entry.id === probe.id)) throw new Error('the probe entry was not stored');
    await within('delete the probe entry', adapter.deregister(probe.id));
    const left = await within('read again', adapter.list());
    if (left.some((entry) => entry.id === probe.id)) throw new Error('the probe entry was not deleted');
    if (engineId !== undefined) {
      const conflict = await within(
        'look for another engine’s entries',
        nodeIdConflict(uri, nodeId, engineId, config, env),
      );
      if (conflict !== undefined) return { ok: false, subject, detail: conflict };
    }
    const ms = Math.round(performance.now() - started);
    const liveness = adapter.describeLiveness?.();
    return {
      ok: true,
      subject,
      detail: `read, wrote and deleted a probe entry as node "${probeNode}" in ${ms} ms${liveness ? `; ${liveness}` : ''}`,
    };
  } catch (error) {
    return { ok: false, subject, detail: message(error) };
  } finally {
    // Only the probe node's entries (none by now) and its liveness go; nothing of the real node's.
    await within('close', registry?.close({ deregister: true }) ?? Promise.resolve(), 5_000).catch(
      () => undefined,
    );
  }
}

/** The bridge's own stop reason, if `nodeId`'s entries there include another engine's; reads only. */
async function nodeIdConflict(
  uri: string,
  nodeId: string,
  engineId: string,
  config: CliConfig,
  env: NodeJS.ProcessEnv,
): Promise<string | undefined> {
  const reader = await createRegistry(uri, {
    nodeId,
    engineId,
    ttl: config.ttl,
    logger: silentLogger,
    env,
    dryRun: true,
  });
  try {
    return findNodeIdConflict(reader, await reader.list())?.message;
  } catch (error) {
    if (error instanceof NodeIdConflictError) return error.message;
    throw error;
  } finally {
    await reader.close().catch(() => undefined);
  }
}

/** A service nobody can mistake for a real one: loopback, port 1, its own name. */
function probeService(node: string): Service {
  const container = `registrar-check-${randomBytes(3).toString('hex')}`;
  return {
    id: `${node}:${container}:1`,
    name: 'registrar-check',
    address: '127.0.0.1',
    port: 1,
    protocol: 'tcp',
    containerPort: 1,
    tags: [],
    meta: {},
    node,
    container: { id: container, name: container },
    health: 'passing',
    healthOutput: '',
    checks: {},
  };
}
