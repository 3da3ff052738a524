/**
 * Errors adapters raise, mapped from their clients' native errors so the reconciler can decide what to do
 * without knowing any client library.
 */
/** What went wrong, in the terms the reconciler acts on. */
export type RegistryErrorKind = 'connection' | 'liveness-lost' | 'rejected';

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
 * Bad configuration (URI, option, credentials file). The message is one line that says what was wrong and
 * how to fix it; the CLI prints it and exits 2.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
