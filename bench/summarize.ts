// Turns bench/results/latest.jsonl into bench/RESULTS.md (vitest global teardown of `pnpm bench`).
import { cpus, totalmem } from 'node:os';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { RESULTS_FILE } from './report.js';

export function summarize() {
  if (!existsSync(RESULTS_FILE)) return;
  const rows = readFileSync(RESULTS_FILE, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown> & { suite: string; backend: string });

  const version = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8' }).split('\n')[0]?.trim() ?? '?';
    } catch {
      return 'not found';
    }
  };
  const fmt = (s: unknown) => {
    if (s && typeof s === 'object' && 'median' in s) {
      const x = s as { median: number; p95: number; max: number; n: number };
      return `${x.median} / ${x.p95} / ${x.max} ms (n=${x.n})`;
    }
    return JSON.stringify(s);
  };
  const lines = [
    '# Benchmark results',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ` +
      `${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ` +
      `${version('docker', ['version', '--format', 'Docker {{.Server.Version}}'])}, ${version('etcd', ['--version'])}.`,
    'Latency figures are median / p95 / max.',
    '',
  ];
  for (const row of rows) {
    lines.push(`## ${row.suite} — ${row.backend}`, '', '| figure | value |', '| --- | --- |');
    for (const [key, value] of Object.entries(row)) {
      if (['suite', 'backend', 'at'].includes(key)) continue;
      lines.push(`| ${key} | ${fmt(value)} |`);
    }
    lines.push('');
  }
  writeFileSync(new URL('./RESULTS.md', import.meta.url), lines.join('\n'));
  process.stdout.write(`\n${lines.join('\n')}\n`);
}
