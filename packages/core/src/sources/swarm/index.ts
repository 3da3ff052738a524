import { tap } from 'rxjs';
import type { BackoffOptions } from '../../backoff.js';
import { startBridge, type Bridge, type BridgeObserver, type TailOptions } from '../../bridge.js';
import { sourceCalls } from '../../docker-calls.js';
import type { Logger } from '../../logger.js';
import type { Source } from '../../source.js';
import {
  boundedSwarmDocker,
  fetchSwarm,
  swarmHints,
  type SwarmDockerApi,
  type SwarmFetch,
  type SwarmHint,
  type SwarmLook,
} from './events.js';
import {
  initialSwarmState,
  tasksServed,
  trackSwarm,
  type SwarmSourceState,
  type SwarmTrackOptions,
} from './track.js';

export interface SwarmSourceOptions extends SwarmTrackOptions {
  /** A Swarm manager's engine. */
  readonly docker: SwarmDockerApi;
  readonly logger?: Logger;
  readonly backoff?: BackoffOptions;
  /** How long one list of the manager may take (ms) before it is abandoned and retried. Default 10 s. */
  readonly dockerTimeoutMs?: number;
  readonly observer?: BridgeObserver;
}

export type SwarmSource = Source<SwarmSourceState, SwarmHint, SwarmLook, SwarmFetch>;

/**
 * A Swarm manager's services, tasks and nodes as a source: service and node events as hints, the manager's
 * lists as the fetch stage, `trackSwarm` as the reducer.
 */
export function swarmSource(options: SwarmSourceOptions): SwarmSource {
  const { logger, calls } = sourceCalls(options);
  const { observer } = options;
  const docker = boundedSwarmDocker(options.docker, calls);
  return {
    initial: initialSwarmState,
    hints: () =>
      swarmHints({
        docker,
        logger,
        ...(options.pollMs !== undefined && { pollMs: options.pollMs }),
        ...(options.backoff && { backoff: options.backoff }),
      }).pipe(
        tap((hint) => {
          if (hint.kind === 'connection') observer?.onDockerConnection?.(hint.connected);
        }),
      ),
    fetch: (looks$) => fetchSwarm(looks$, docker),
    reduce: (state, input, now) => trackSwarm(state, input, now, options),
    resyncLook: { kind: 'inventory' },
    status: (state) => ({
      connected: state.connected,
      inventoryComplete: state.inventoryComplete,
      containers: tasksServed(state),
      unresolved: [],
      docker: calls.health(),
    }),
  };
}

export interface SwarmBridgeOptions extends SwarmSourceOptions, Omit<TailOptions, 'logger' | 'observer'> {}

/** Start a Swarm bridge (every manager runs one; each registry elects the writer); `stop()` it to shut down. */
export function createSwarmBridge(options: SwarmBridgeOptions): Bridge {
  return startBridge(swarmSource(options), { ...options, ownerNoun: 'Swarm service' });
}
