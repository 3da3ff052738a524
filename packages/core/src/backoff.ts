/** Exponential backoff with full jitter: spreads retries of many bridges after a shared outage. */
export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  /** 0 = deterministic (tests), 1 = full jitter. */
  readonly jitter?: number;
}

// Capped at 5 s: a retry is one cheap request, and a low cap bounds convergence after an outage ends.
export const defaultBackoff: BackoffOptions = { initialMs: 250, maxMs: 5_000, jitter: 0.5 };

/** Delay before retry number `attempt` (1-based). */
export function backoffDelay(attempt: number, options: BackoffOptions = defaultBackoff): number {
  const exp = Math.min(options.maxMs, options.initialMs * 2 ** Math.max(0, attempt - 1));
  const jitter = options.jitter ?? 0;
  return Math.round(exp * (1 - jitter * Math.random()));
}
