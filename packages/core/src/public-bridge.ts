import type { BridgeStatus } from './bridge.js';
import { createBridge as createFullBridge, type BridgeOptions } from './sources/container/index.js';

/** A running bridge, as an application embedding one uses it. */
export interface Bridge {
  /** Docker connection, first inventory done, containers and services tracked. */
  status(): BridgeStatus;
  /** Reconcile everything against Docker and every registry now (what `--resync` does on a timer). */
  resync(): void;
  /** Stop watching Docker and close the registries; `deregister: true` removes this node's entries first. */
  stop(options?: { deregister?: boolean }): Promise<void>;
}

/**
 * Mirror what a Docker engine runs into `options.registries` until `stop()`: the bridge of the `registrar`
 * command, started at once.
 */
export function createBridge(options: BridgeOptions): Bridge {
  return createFullBridge(options);
}
