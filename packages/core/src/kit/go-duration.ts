/**
 * Go's `time.ParseDuration` and `Duration.String()`: Consul takes and prints every duration this way.
 * Exact to the nanosecond (bigint), like Go's int64 nanoseconds, including its overflow limit.
 */

const MINUTE = 60_000_000_000n;
const HOUR = 60n * MINUTE;
const UNITS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  µs: 1_000n, // U+00B5 micro sign
  μs: 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: MINUTE,
  h: HOUR,
};
const MAX_NANOS = (1n << 63n) - 1n;

/**
 * Milliseconds for a Go duration string (`300ms`, `-1.5h`, `2h45m`, `0`). Throws an Error worded as Go words
 * it (`time: invalid duration "x"`, `time: missing unit in duration "10"`, `time: unknown unit ...`).
 */
export function parseGoDuration(text: string): number {
  const invalid = (): never => {
    throw new Error(`time: invalid duration ${JSON.stringify(text)}`);
  };
  let rest = text;
  const negative = rest.startsWith('-');
  if (negative || rest.startsWith('+')) rest = rest.slice(1);
  if (rest === '0') return 0;
  if (rest === '') invalid();
  let total = 0n;
  while (rest !== '') {
    const number = /^(\d*)(?:\.(\d*))?/.exec(rest);
    const [all = '', whole = '', fraction] = number ?? [];
    // At least one digit before or after the point: `.5s` and `5.s` are fine, `.s` is not.
    if (whole === '' && (fraction ?? '') === '') invalid();
    rest = rest.slice(all.length);
    const unitText = /^[^\d.]*/.exec(rest)?.[0] ?? '';
    if (unitText === '') throw new Error(`time: missing unit in duration ${JSON.stringify(text)}`);
    const unit = UNITS[unitText];
    if (unit === undefined)
      throw new Error(`time: unknown unit ${JSON.stringify(unitText)} in duration ${JSON.stringify(text)}`);
    rest = rest.slice(unitText.length);
    let nanos = BigInt(whole || '0') * unit;
    if (fraction) nanos += (BigInt(fraction) * unit) / 10n ** BigInt(fraction.length);
    total += nanos;
    // Go allows exactly -2^63 and at most 2^63-1.
    if (total > MAX_NANOS + (negative ? 1n : 0n)) invalid();
  }
  return Number(negative ? -total : total) / 1e6;
}

/** `Duration.String()` of `ms` milliseconds: `1h0m0s`, `1m30s`, `1.5s`, `500ms`, `250µs`, `0s`. */
export function formatGoDuration(ms: number): string {
  if (!Number.isFinite(ms)) throw new RangeError(`formatGoDuration: ${ms} is not a finite duration`);
  let nanos = BigInt(Math.round(ms * 1e6));
  if (nanos === 0n) return '0s';
  const sign = nanos < 0n ? '-' : '';
  if (nanos < 0n) nanos = -nanos;
  if (nanos < 1_000n) return `${sign}${nanos}ns`;
  if (nanos < 1_000_000n) return `${sign}${decimal(nanos, 3)}µs`;
  if (nanos < 1_000_000_000n) return `${sign}${decimal(nanos, 6)}ms`;
  const hours = nanos / HOUR;
  nanos -= hours * HOUR;
  const minutes = nanos / MINUTE;
  nanos -= minutes * MINUTE;
  const seconds = `${decimal(nanos, 9)}s`;
  if (hours > 0n) return `${sign}${hours}h${minutes}m${seconds}`;
  if (minutes > 0n) return `${sign}${minutes}m${seconds}`;
  return `${sign}${seconds}`;
}

/** `value / 10^digits` in decimal, without trailing zeros in the fraction. */
function decimal(value: bigint, digits: number): string {
  const scale = 10n ** BigInt(digits);
  const fraction = (value % scale).toString().padStart(digits, '0').replace(/0+$/, '');
  return fraction === '' ? `${value / scale}` : `${value / scale}.${fraction}`;
}
