import type { Logger } from '@registrar/core';
import { isBrokenCircuitError } from 'cockatiel';
import { GRPCResourceExhastedError } from 'etcd3';
import { bounded, toRegistryError } from './errors.js';

/**
 * How long one attempt of a call may go unanswered before it is sent again (etcd3 sends it to another
 * member). A healthy member answers in milliseconds; one that still forwards to a leader that died answers
 * never: etcd drops the proposal, and the caller would wait out its whole timeout (5 s) while the rest of
 * the cluster elects a new leader in 1-2 s. So a dead member costs at most this much beyond the cluster's
 * own recovery.
 */
export const ATTEMPT_MS = 500;

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * One etcd call within `timeoutMs`, in attempts of ATTEMPT_MS each; the last attempt gets all the time left,
 * so a cluster that is slow but answers is still served. An attempt that fails in a way another member may
 * not (unreachable, no answer in time, no leader yet) is tried again at once, with a short pause after a
 * quick failure; every other error is final. `fn` must therefore be idempotent: a write cut off by its
 * deadline may have landed (a put is a transaction that writes only what is not there yet).
 */
export async function etcdCall<T>(
  what: string,
  timeoutMs: number,
  fn: (options: { deadline: number }) => Promise<T>,
  logger?: Logger,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  // What an attempt said of the member it reached: etcd3's open circuit breaker, later, says nothing of it.
  let telling: Error | undefined;
  for (let attempt = 1; ; attempt++) {
    const started = Date.now();
    const remaining = end - started;
    const last = remaining < 2 * ATTEMPT_MS;
    const budget = last ? Math.max(1, remaining) : ATTEMPT_MS;
    try {
      return await bounded(fn({ deadline: started + budget }), budget + 200, what);
    } catch (error) {
      const mapped = toRegistryError(error, what);
      if (!isBrokenCircuitError(error)) telling = mapped;
      // Too large to receive, or etcd out of space: every member answers the same.
      const everywhere = error instanceof GRPCResourceExhastedError;
      if (last || mapped.kind !== 'connection' || everywhere) throw telling ?? mapped;
      logger?.debug(
        { attempt, ms: Date.now() - started, err: mapped },
        `etcd ${what}: attempt failed; trying again`,
      );
      // A refusal that came at once (a dead member's closed port, no leader yet) is not sent straight back.
      const elapsed = Date.now() - started;
      if (elapsed < ATTEMPT_MS / 2) await pause(Math.min(25 * 2 ** Math.min(attempt, 3), end - Date.now()));
    }
  }
}
