/** Thrown by a probe when waiting longer cannot help (the server exited): `until` rethrows it at once. */
export class GiveUp extends Error {
  override readonly name = 'GiveUp';
}

/**
 * A condition that makes every wait pointless, such as a bridge process that died: while it is tripped, each
 * pending and each new `until` takes one last look at its probe and, that failing, fails with the reason at
 * once instead of running into its timeout.
 */
export interface Tripwire {
  /** Every pending and new wait ends, after one last look at its probe, failing with `reason`. */
  trip(reason: string): void;
  /** The condition is over or was expected (the test stopped the process itself, or the test ended). */
  clear(): void;
}

const tripped = new Map<Tripwire, string>();
/** Sleeping `until` calls, woken when a wire trips. */
const sleepers = new Set<() => void>();

/** A new wire, not tripped. */
export function tripwire(): Tripwire {
  const wire: Tripwire = {
    trip(reason) {
      tripped.set(wire, reason);
      for (const wake of sleepers) wake();
    },
    clear() {
      tripped.delete(wire);
    },
  };
  return wire;
}

/** How long `until` waits, and what ends the wait early. */
export interface UntilOptions {
  /** Default 20 s. */
  readonly timeoutMs?: number;
  /** Aborting it ends the wait as a tripped wire does (after one last look), with the abort reason. */
  readonly signal?: AbortSignal;
}

function fatalReason(signal: AbortSignal | undefined): string | undefined {
  if (signal?.aborted) return signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
  for (const reason of tripped.values()) return reason;
  return undefined;
}

/** Wait `ms`, or less when a wire trips or `signal` aborts. */
function nap(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      sleepers.delete(wake);
      signal?.removeEventListener('abort', wake);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    sleepers.add(wake);
    signal?.addEventListener('abort', wake, { once: true });
  });
}

/**
 * Poll `probe` until it returns true; throws with `what` after the timeout. A probe that throws is retried
 * (the thing is not ready yet), unless it throws `GiveUp`. A tripped `Tripwire` (a bridge process that
 * exited on its own) or an aborted `signal` ends the wait at once.
 */
export async function until(
  what: string,
  probe: () => Promise<boolean> | boolean,
  options: number | UntilOptions = {},
): Promise<void> {
  const { timeoutMs = 20_000, signal } = typeof options === 'number' ? { timeoutMs: options } : options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    // Read before probing: a probe that still fails after the trip was its last chance.
    const fatal = fatalReason(signal);
    try {
      if (await probe()) return;
    } catch (error) {
      if (error instanceof GiveUp) throw new Error(`gave up waiting for ${what}: ${error.message}`);
      lastError = error;
    }
    if (fatal !== undefined) throw new Error(`gave up waiting for ${what}: ${fatal}`, { cause: lastError });
    if (Date.now() >= deadline) throw new Error(`timed out waiting for ${what}`, { cause: lastError });
    await nap(Math.min(50, Math.max(0, deadline - Date.now())), signal);
  }
}
