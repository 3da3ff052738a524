/**
 * What a failed agent request is, in core's terms: a `RegistryConnectionError` when the same request may pass
 * later (unreachable, timed out, a server error, throttling), a `RegistryRejectedError` when it fails the same
 * way every time (a refused token, a bad definition, a request that cannot be built).
 */
import { RegistryConnectionError, RegistryRejectedError } from '@registrar/core';
import { connectionHint, oneLine, quote } from '@registrar/core/kit';

const BACKEND = 'consul';

/** An answer other than 2xx (or an allowed 404). */
export function refusal(
  status: number,
  text: string,
  request: {
    readonly what: string;
    /** The agent, for messages: never includes the token. */
    readonly target: string;
    readonly hasToken: boolean;
    /** What a 403 says the token needs; default what the registry needs. */
    readonly permission?: string;
  },
): RegistryConnectionError | RegistryRejectedError {
  const { what, target } = request;
  const reason = text.trim().split('\n')[0]?.slice(0, 300) ?? '';
  if (status === 403) {
    const permission = request.permission ?? 'service:write (and agent:read)';
    const hint = request.hasToken
      ? `set CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE to a token with ${permission} on this agent`
      : `no token is configured; set CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE to a token with ${permission}`;
    return new RegistryRejectedError(`Consul ACL token rejected (403: ${reason}): ${hint}`, BACKEND);
  }
  if (status === 400) {
    return new RegistryRejectedError(`Consul rejected ${what} (400): ${reason}`, BACKEND);
  }
  // The agent's configuration refuses script and Docker checks (a plain error, hence 500): retrying cannot help.
  if (status === 500 && reason.startsWith('Scripts are disabled')) {
    return new RegistryRejectedError(
      `Consul rejected ${what} (500: ${reason}): enable script checks on the agent, or drop the container's SERVICE_CHECK_SCRIPT/CMD/DOCKER labels`,
      BACKEND,
    );
  }
  const answered = `Consul agent at ${target} answered ${status} to ${what}: ${reason}`;
  // A server error, a timeout or throttling passes; any other answer will be the same next time.
  if (status >= 500 || status === 408 || status === 429)
    return new RegistryConnectionError(answered, BACKEND);
  return new RegistryRejectedError(answered, BACKEND);
}

/** An answer that should be JSON and is not (a proxy's error page): a connection error. */
export function notJson(target: string, what: string, text: string, cause: unknown): RegistryConnectionError {
  return new RegistryConnectionError(
    `Consul agent at ${target} answered ${what} with something other than JSON: ${quote(text, 60)}`,
    BACKEND,
    { cause },
  );
}

/**
 * What a failure to send a request or read its answer is. fetch's own network failures ("fetch failed",
 * "terminated" with a socket error as cause) and timeouts pass; a request that cannot even be built (an
 * invalid header or URL, a body JSON cannot encode) fails the same way every time, so it is rejected.
 */
export function sendFailure(
  err: unknown,
  request: {
    readonly what: string;
    readonly target: string;
    readonly timeoutMs: number;
    readonly signal?: AbortSignal;
    /** Masked wherever an error message quotes it. */
    readonly token?: string;
  },
): RegistryConnectionError | RegistryRejectedError {
  const { what, target, timeoutMs, signal, token } = request;
  const e = err as Error & { cause?: { code?: unknown; message?: string } };
  if (signal?.aborted || e.name === 'TimeoutError' || e.name === 'AbortError') {
    const reason = signal?.aborted ? 'cancelled' : `no answer within ${timeoutMs} ms`;
    return new RegistryConnectionError(
      `Consul agent at ${target} unreachable (${what}): ${reason}`,
      BACKEND,
      {
        cause: err,
      },
    );
  }
  const network =
    e.message === 'fetch failed' || e.message === 'terminated' || typeof e.cause?.code === 'string';
  const programming = e instanceof TypeError || e instanceof RangeError || e instanceof SyntaxError;
  if (programming && !network) {
    // The message may quote a header, and a header may be the token: never echo it.
    const detail = oneLine(token ? e.message.replaceAll(token, '***') : e.message, 200);
    return new RegistryRejectedError(`cannot send ${what} to Consul at ${target}: ${detail}`, BACKEND, {
      cause: err,
    });
  }
  const code = e.cause?.code as string | undefined;
  const reason = code ?? e.cause?.message ?? e.message;
  const hint =
    connectionHint(code, 'the Consul agent') ??
    (reason === 'bad port'
      ? "fetch refuses this port (e.g. 1, 25, 6000): use the agent's HTTP port"
      : undefined);
  return new RegistryConnectionError(
    `Consul agent at ${target} unreachable (${what}): ${reason}${hint ? `: ${hint}` : ''}`,
    BACKEND,
    { cause: err },
  );
}
