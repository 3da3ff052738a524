import type { Logger } from '../logger.js';

/**
 * A warning that a hostile or broken peer can trigger at will (an unparseable event line, say): logged the
 * first time, then at most once per `intervalMs` with the number suppressed since, so 200,000 bad lines cost
 * a handful of log lines rather than a full disk.
 */
export function limitedWarning(
  logger: Logger,
  message: string,
  intervalMs = 60_000,
  now: () => number = Date.now,
): (fields?: Record<string, unknown>) => void {
  let last = -Infinity;
  let suppressed = 0;
  return (fields = {}) => {
    const at = now();
    if (at - last < intervalMs) {
      suppressed += 1;
      return;
    }
    logger.warn(suppressed > 0 ? { ...fields, suppressed } : fields, message);
    last = at;
    suppressed = 0;
  };
}
