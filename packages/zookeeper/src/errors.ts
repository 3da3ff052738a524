import {
  NodeIdConflictError,
  RegistryConnectionError,
  RegistryError,
  RegistryRejectedError,
  RegistrySessionLostError,
} from '@registrar/core';
import zookeeper from 'node-zookeeper-client';

const BACKEND = 'zookeeper';

/** A native error code the caller handles itself (NO_NODE, NODE_EXISTS, BAD_VERSION, NOT_EMPTY). */
export class ZkCodeError extends Error {
  override readonly name = 'ZkCodeError';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export function isCode(error: unknown, ...codes: number[]): error is ZkCodeError {
  return error instanceof ZkCodeError && codes.includes(error.code);
}

/**
 * Map anything an operation threw onto one of core's kind-tagged errors: refusals that a retry cannot fix
 * are `rejected`, an expired session is `liveness-lost`, everything else (connection trouble, and races such
 * as a node that changed under us) is a retryable `connection` error.
 */
export function toRegistryError(
  error: unknown,
  what: string,
): RegistryConnectionError | RegistrySessionLostError | RegistryRejectedError | NodeIdConflictError {
  if (
    error instanceof NodeIdConflictError ||
    error instanceof RegistryConnectionError ||
    error instanceof RegistryRejectedError ||
    error instanceof RegistrySessionLostError
  ) {
    return error;
  }
  if (error instanceof RegistryError) {
    return new RegistryConnectionError(`${what}: ${error.message}`, BACKEND, { cause: error });
  }
  if (error instanceof ZkCodeError) {
    const E = zookeeper.Exception;
    const message = `${what}: ${error.message}`;
    switch (error.code) {
      case E.CONNECTION_LOSS:
      case E.OPERATION_TIMEOUT:
        return new RegistryConnectionError(message, BACKEND, { cause: error });
      case E.SESSION_EXPIRED:
        return new RegistrySessionLostError(message, BACKEND, { cause: error });
      case E.NO_AUTH:
      case E.AUTH_FAILED:
      case E.INVALID_ACL:
      case E.BAD_ARGUMENTS:
      case E.NO_CHILDREN_FOR_EPHEMERALS:
      case E.UNIMPLEMENTED:
        return new RegistryRejectedError(message, BACKEND, { cause: error });
    }
    return new RegistryConnectionError(message, BACKEND, { cause: error });
  }
  return new RegistryConnectionError(`${what}: ${String(error)}`, BACKEND, { cause: error });
}
