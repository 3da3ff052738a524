import type { Observable } from 'rxjs';

/**
 * The read side of a registry, for clients of the services it holds (`registrar lb`, `registrar render`):
 * every node's live instances of one service, not just this bridge's own entries.
 */

/** One live instance of a service, as the registry holds it. */
export interface Instance {
  /** The entry's id in the registry (the service ID: `<node>:<container>:<port>`). */
  readonly id: string;
  readonly address: string;
  readonly port: number;
  /** The entry's tags, where its layout stores them; absent when there are none. */
  readonly tags?: readonly string[];
  /**
   * The service's own metadata, where its layout stores it (the bridge's bookkeeping keys, such as the owner
   * node, left out); absent when there is none.
   */
  readonly meta?: Readonly<Record<string, string>>;
}

/**
 * What following a service emits: its complete set of live instances, at once and after every change; or that
 * the registry cannot be reached (the consumer keeps what it had, and a later `instances` update catches up).
 */
export type FollowUpdate =
  | { readonly kind: 'instances'; readonly instances: readonly Instance[] }
  | { readonly kind: 'unreachable'; readonly error: Error };

export interface ServiceFollower {
  /** `etcd`, `zookeeper` or `consul`. */
  readonly backend: string;
  /** Where it reads, for logs and metrics; never contains credentials. */
  readonly target: string;
  /**
   * Follow the service `name`: an etcd watch, ZooKeeper watches, or Consul blocking queries on `?passing`.
   * Never errors for an outage: it emits `unreachable` once and reconnects by itself. Unsubscribing stops it.
   */
  follow(name: string): Observable<FollowUpdate>;
  /** Release the connection. */
  close(): Promise<void>;
}
