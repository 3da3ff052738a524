import { catchError, defer, EMPTY, exhaustMap, filter, map, merge, tap } from 'rxjs';
import type { BackoffOptions } from '../../backoff.js';
import { startBridge, type Bridge, type BridgeObserver } from '../../bridge.js';
import type { DeriveOptions } from '../../derive.js';
import { boundedDocker, sourceCalls, type DockerApi } from '../../docker-calls.js';
import type { Logger } from '../../logger.js';
import type { Registry } from '../../registry.js';
import type { Source } from '../../source.js';
import { dockerHints, inventoryHint, type DockerHint } from './events.js';
import { inspectContainers, type Look } from './inspect.js';
import { listedAsInspect } from './listed.js';
import { warmUp } from './warm-up.js';
import {
  explainAllTracked,
  explainTracked,
  initialContainerState,
  isUnresolvedEntry,
  trackContainers,
  type ContainerFetch,
  type ContainerLook,
  type ContainerSourceState,
  type DeregisterMode,
} from './track.js';

export { stopWindowMs, type DeregisterMode } from './track.js';

export interface BridgeOptions extends DeriveOptions {
  readonly docker: DockerApi;
  readonly registries: readonly Registry[];
  readonly logger?: Logger;
  /** `--resync`: seconds between full reconciles against Docker and every registry; 0 = never. */
  readonly resync?: number;
  /**
   * `--cleanup`, kept for compatibility: once the first inventory is complete, this node's entries whose
   * container is gone are removed whoever wrote them (an earlier run included), with or without it.
   */
  readonly cleanup?: boolean;
  /** `--deregister on-success`: keep the services of a container that exited with a non-zero code. */
  readonly deregister?: DeregisterMode;
  readonly dryRun?: boolean;
  /** Docker event stream stall check interval (ms); 0 disables. */
  readonly stallCheckMs?: number;
  readonly backoff?: BackoffOptions;
  readonly observer?: BridgeObserver;
  /**
   * Withdraw a container's services as soon as Docker sends it SIGTERM, SIGINT or its own StopSignal (the
   * start of `docker stop`), instead of when its process has exited. Default true (`--no-drain`: false).
   */
  readonly drain?: boolean;
  /** How long one Docker list or inspect may take (ms) before it is abandoned and retried. Default 10 s. */
  readonly dockerTimeoutMs?: number;
  /**
   * With `labelsOnly`, whether a crowd of looks may be answered from container lists (default true). False for
   * an engine whose list says less than its inspect: Podman 4.3's compatible list leaves out exposed ports
   * that are not published and health, and shows a pod member's network mode as its own.
   */
  readonly listAnswers?: boolean;
}

/** What the container source needs: the bridge's options without the tail's. */
export type ContainerSourceOptions = Omit<BridgeOptions, 'registries' | 'resync' | 'cleanup' | 'dryRun'>;

export type ContainerSource = Source<ContainerSourceState, DockerHint, ContainerLook, ContainerFetch>;

const isList = (look: ContainerLook): look is { readonly kind: 'list' } => 'kind' in look;

/**
 * This engine's containers as a source: Docker's events and inventories as hints, inspects (and lists) as the
 * fetch stage, `trackContainers` as the reducer.
 */
export function containerSource(options: ContainerSourceOptions): ContainerSource {
  warmUp(options);
  const { logger, calls } = sourceCalls(options);
  const { observer } = options;
  const docker = boundedDocker(options.docker, calls);
  return {
    initial: initialContainerState,
    hints: () =>
      dockerHints({
        docker,
        logger,
        ...(options.backoff && { backoff: options.backoff }),
        ...(options.stallCheckMs !== undefined && { stallCheckMs: options.stallCheckMs }),
      }).pipe(
        tap((hint) => {
          if (hint.kind === 'connection') observer?.onDockerConnection?.(hint.connected);
          if (hint.kind === 'event') {
            observer?.onDockerEvent?.(hint.action, Math.max(0, Date.now() / 1000 - hint.timeNano / 1e9));
          }
        }),
      ),
    fetch: (looks$, current) =>
      merge(
        inspectContainers(looks$.pipe(filter((look): look is Look => !isList(look))), docker, {
          tracked: (id) => current().containers.has(id),
          ...(options.labelsOnly === true && options.listAnswers !== false && { fromList: listedAsInspect }),
        }),
        looks$.pipe(
          filter(isList),
          // One list at a time; a resync asked for meanwhile is answered by the list in flight.
          exhaustMap(() =>
            defer(() => docker.listContainers()).pipe(
              map((list): ContainerFetch => ({ kind: 'listed', hint: inventoryHint(list) })),
              // Logged by the bounded calls; the next resync or reconnect lists again.
              catchError(() => EMPTY),
            ),
          ),
        ),
      ),
    reduce: (state, input, now) => trackContainers(state, input, now, options),
    resyncLook: { kind: 'list' },
    status: (state) => ({
      connected: state.connected,
      inventoryComplete: state.inventoryComplete,
      containers: state.containers.size,
      unresolved: [...state.unresolved.values()],
      docker: calls.health(),
    }),
    keep: (state, entryId) => isUnresolvedEntry(state, options.nodeId, entryId),
    explain: (state, ref, context) => explainTracked(state, ref, context, options),
    explainAll: (state, context) => explainAllTracked(state, context, options),
  };
}

/** Start a bridge for this engine's containers; `stop()` it to shut down. */
export function createBridge(options: BridgeOptions): Bridge {
  return startBridge(containerSource(options), options);
}
