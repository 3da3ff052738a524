// The real pipeline (`createBridge` with a real adapter) driven by the synthetic engine, with the counters the
// synthetic suites read: completed registry ops and reconcile passes.
import { createBridge, type Bridge, type Registry } from '@registrar/core';
import type { SyntheticDocker } from '@registrar/core/testing';

export interface Counters {
  registered: number;
  deregistered: number;
  errors: number;
  passes: number;
  /** Drift of the last completed pass. */
  lastDrift: number;
}

export interface RunningBridge {
  readonly bridge: Bridge;
  readonly counters: Counters;
  /** Resolves once the first Docker inventory is complete. */
  inventoried(): Promise<void>;
}

export const NODE = 'bench';

export function startPipeline(docker: SyntheticDocker, registry: Registry, nodeId = NODE): RunningBridge {
  const counters: Counters = { registered: 0, deregistered: 0, errors: 0, passes: 0, lastDrift: 0 };
  const bridge = createBridge({
    docker,
    registries: [registry],
    nodeId,
    hostIp: '127.0.0.1',
    internal: false,
    tags: [],
    explicit: false,
    resync: 0,
    stallCheckMs: 0,
    observer: {
      onOp(_registry, op, outcome) {
        if (outcome === 'error') counters.errors += 1;
        else if (op.type === 'register') counters.registered += 1;
        else counters.deregistered += 1;
      },
      onPass(_registry, drift) {
        counters.passes += 1;
        counters.lastDrift = drift;
      },
    },
  });
  return {
    bridge,
    counters,
    async inventoried() {
      while (!bridge.status().inventoryComplete) await new Promise((r) => setTimeout(r, 2));
    },
  };
}
