import { oneLine } from './text.js';

/**
 * Errors adapters raise, mapped from their clients' native errors so the reconciler can decide what to do
 * without knowing any client library.
 */
/** What went wrong, in the terms the reconciler acts on. */
export type RegistryErrorKind = 'connection' | 'liveness-lost' | 'rejected' | 'node-id-conflict';

export class RegistryError extends Error {
  override readonly name: string = 'RegistryError';
  /** What kind of failure this is; every adapter maps its client's errors onto one of these. */
  readonly kind: RegistryErrorKind = 'connection';
  /** Whether trying the same operation again later can succeed. */
  readonly retryable: boolean = true;
  constructor(
    message: string,
    /** `etcd`, `zookeeper`, `consul`. */
    readonly backend: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * What kind of registry failure `error` is, for code that dispatches on it: an adapter's `RegistryError` says
 * its kind; anything else (a bug, a client error no adapter mapped) counts as a connection failure, retried.
 */
export const registryErrorKind = (error: unknown): RegistryErrorKind =>
  error instanceof RegistryError ? error.kind : 'connection';

/** The registry could not be reached or did not answer in time. */
export class RegistryConnectionError extends RegistryError {
  override readonly name = 'RegistryConnectionError';
  override readonly kind = 'connection';
}

/** The lease/session/agent state that held our entries is gone; everything must be registered again. */
export class RegistrySessionLostError extends RegistryError {
  override readonly name = 'RegistrySessionLostError';
  override readonly kind = 'liveness-lost';
}

/** The registry refused the request (ACL, validation): retrying the same request will not help. */
export class RegistryRejectedError extends RegistryError {
  override readonly name = 'RegistryRejectedError';
  override readonly kind = 'rejected';
  override readonly retryable = false;
}

/**
 * The registry holds entries of this node id written by another Docker engine: two hosts share the node id
 * (cloned machines share host names). Nothing of theirs may be touched, so the bridge stops; the message is
 * the one line the CLI prints (exit 2).
 */
export class NodeIdConflictError extends RegistryError {
  override readonly name = 'NodeIdConflictError';
  override readonly kind = 'node-id-conflict';
  override readonly retryable = false;
  constructor(
    /** Where the entries are (`Registry.target`). */
    readonly target: string,
    readonly nodeId: string,
    /** The other engine's ID, as its entries record it. */
    readonly engine: string,
    backend: string,
    /** What was found, e.g. the entry's id; for logs. */
    readonly entry?: string,
  ) {
    // Consul's target is the agent's http(s) URL: name the backend then.
    const where = target.startsWith(`${backend}`) ? `registry ${target}` : `${backend} registry ${target}`;
    super(
      `${where} holds entries of node id "${nodeId}" written by another Docker engine (ID ${oneLine(engine, 100)}); two hosts share this node id (cloned machines share host names): set --node-id to a name unique to this host`,
      backend,
    );
  }
}

/**
 * Bad configuration (URI, option, credentials file). The message is one line that says what was wrong and
 * how to fix it; the CLI prints it and exits 2.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /**
   * The option or service field at fault (`address`, `port`, `name`, `tags[1]`, `meta.zone`, `hosts`...) when
   * the error is about one; `registerService` always names it.
   */
  readonly field?: string;
  constructor(message: string, options?: { readonly field?: string; readonly cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    if (options?.field !== undefined) this.field = options.field;
  }
}
