import { appendFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const RESULTS_FILE = fileURLToPath(new URL('./results/latest.jsonl', import.meta.url));

export interface Stats {
  n: number;
  median: number;
  p95: number;
  max: number;
}

/** Median, p95 and max of a sample, rounded to 0.01. */
export function stats(values: readonly number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
  const round = (x: number) => Math.round(x * 100) / 100;
  return { n: sorted.length, median: round(at(0.5)), p95: round(at(0.95)), max: round(sorted.at(-1) ?? NaN) };
}

/** Append one measurement to the run's JSON-lines file; `pnpm bench` turns it into the Markdown report. */
export function record(suite: string, backend: string, figures: Record<string, unknown>) {
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  appendFileSync(
    RESULTS_FILE,
    `${JSON.stringify({ suite, backend, at: new Date().toISOString(), ...figures })}\n`,
  );
}
