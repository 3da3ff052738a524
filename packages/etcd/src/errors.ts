import {
  RegistryConnectionError,
  RegistryError,
  RegistryRejectedError,
  RegistrySessionLostError,
} from '@registrar/core';
import { connectFailureIn, connectionHint } from '@registrar/core/kit';
import {
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  EtcdRoleNotFoundError,
  EtcdUserNotFoundError,
  GRPCFailedPreconditionError,
  GRPCInvalidArgumentError,
  GRPCUnauthenticatedError,
} from 'etcd3';

export const backend = 'etcd';

/** etcd3's errors that retrying the same request cannot fix. */
const rejected = [
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  EtcdUserNotFoundError,
  EtcdRoleNotFoundError,
  GRPCUnauthenticatedError,
  GRPCInvalidArgumentError,
  GRPCFailedPreconditionError,
  ClientClosedError,
];

/**
 * Maps etcd3's error classes onto core's hierarchy. Everything not known to be permanent (unavailable,
 * deadline exceeded, an open circuit breaker, no leader...) is a connection error: the caller retries.
 */
export function toRegistryError(error: unknown, what: string): RegistryError {
  if (error instanceof RegistryError) return error;
  // grpc-js ends some messages with an empty "Resolution note:"; it says nothing.
  const detail = (error instanceof Error ? error.message : String(error)).replace(
    /\s*Resolution note:\s*$/,
    '',
  );
  if (error instanceof EtcdLeaseInvalidError) {
    return new RegistrySessionLostError(`etcd ${what}: lease lost (${detail})`, backend, { cause: error });
  }
  // A bug or an argument the client refuses (not an etcd3 error): the same call fails the same way again.
  const programming =
    error instanceof TypeError || error instanceof RangeError || error instanceof SyntaxError;
  if (programming || rejected.some((type) => error instanceof type)) {
    return new RegistryRejectedError(`etcd ${what}: ${detail}`, backend, { cause: error });
  }
  // gRPC's "14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED h:p": one
  // sentence with the address and what it most likely means.
  const failure = connectFailureIn(detail);
  if (failure !== undefined) {
    const hint = connectionHint(failure.code, 'etcd');
    return new RegistryConnectionError(
      `etcd ${what}: cannot connect to ${failure.address} (${failure.code})${hint ? `: ${hint}` : ''}`,
      backend,
      { cause: error },
    );
  }
  return new RegistryConnectionError(`etcd ${what}: ${detail}`, backend, { cause: error });
}

/** etcd no longer holds the revision a read asked for (compacted since): read again at the newest. */
export function compacted(error: unknown): boolean {
  const cause = error instanceof RegistryError ? error.cause : error;
  return cause instanceof Error && cause.message.includes('required revision has been compacted');
}

/**
 * Rejects with a connection error when `promise` has not settled within `ms`: a backstop for the gRPC
 * deadline, which does not cover every step (auth token exchange, stream set-up).
 */
export async function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new RegistryConnectionError(`etcd ${what}: no answer within ${ms} ms`, backend)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
