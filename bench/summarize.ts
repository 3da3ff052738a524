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
    'Latency figures are median / p95 / max. Every figure stands beside the limit the backend itself showed in',
    'the same run (its own client doing the same kind of write).',
    '',
  ];
  lines.push(...headline(rows), '## Details', '');
  for (const row of rows) {
    lines.push(`### ${row.suite} — ${row.backend}`, '', '| figure | value |', '| --- | --- |');
    for (const [key, value] of Object.entries(row)) {
      if (['suite', 'backend', 'at'].includes(key)) continue;
      lines.push(`| ${key} | ${fmt(value)} |`);
    }
    lines.push('');
  }
  writeFileSync(new URL('./RESULTS.md', import.meta.url), lines.join('\n'));
  process.stdout.write(`\n${lines.join('\n')}\n`);
}

type Row = Record<string, unknown> & { suite: string; backend: string };
interface S {
  median: number;
  p95: number;
  max: number;
}
const ms = (s: S) => `${s.median} / ${s.p95} / ${s.max} ms`;
const yes = (v: unknown) => (v === true ? 'yes' : 'no');

/** One table per goal: the figure, the backend's own limit beside it, and whether the goal is met. */
function headline(rows: readonly Row[]): string[] {
  const of = (suite: string) => rows.filter((r) => r.suite === suite);
  const out: string[] = ['## Goals', ''];
  const latency = of('latency');
  if (latency.length > 0) {
    out.push(
      '### Event-to-visible latency (goal: the bridge adds at most a few ms, ≤ 5 ms at the median)',
      '',
      '| backend | start | stop | limit: raw write-to-visible | limit: Docker event delivery (start / die, median) | bridge adds (start / stop, median) | met |',
      '| --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const r of latency) {
      const d = r.dockerEventDelivery as { start: S; die: S };
      const o = r.bridgeOverheadMedianMs as { start: number; stop: number };
      out.push(
        `| ${r.backend} | ${ms(r.start as S)} | ${ms(r.stop as S)} | ${ms(r.rawWriteToVisible as S)} | ` +
          `${d.start.median} / ${d.die.median} ms | ${o.start} / ${o.stop} ms | ${yes(r.goalMet)} |`,
      );
    }
    out.push('');
  }
  const tput = of('throughput');
  if (tput.length > 0) {
    out.push(
      '### Throughput (goal: ≥ 80 % of the raw client at the same concurrency)',
      '',
      '| backend | events | bridge ops/s (register / deregister) | limit: raw writes/s (put / remove) | ratio | met |',
      '| --- | --- | --- | --- | --- | --- |',
    );
    for (const r of tput) {
      out.push(
        `| ${r.backend} | ${String(r.events)} | ${String(r.opsPerSec)} (${String(r.registrationsPerSec)} / ${String(r.deregistrationsPerSec)}) | ` +
          `${String(r.rawWritesPerSec)} (${String(r.rawPutsPerSec)} / ${String(r.rawRemovesPerSec)}) | ${String(r.ratio)} | ${yes(r.goalMet)} |`,
      );
    }
    out.push('');
  }
  const resync = of('resync');
  if (resync.length > 0) {
    out.push(
      '### Resync at scale (goal: an unchanged resync writes 0, a 10 % drift writes only the drift)',
      '',
      '| backend | containers | cold start: time / writes (limit: 1 write per service) | idle resync: time / writes | drift resync: drifted / time / writes | met |',
      '| --- | --- | --- | --- | --- | --- |',
    );
    for (const r of resync) {
      out.push(
        `| ${r.backend} | ${String(r.containers)} | ${String(r.coldStartSeconds)} s / ${String(r.coldStartWrites)} | ` +
          `${String(r.idleResyncSeconds)} s / ${String(r.idleResyncWrites)} | ${String(r.driftedContainers)} / ${String(r.driftResyncSeconds)} s / ` +
          `${String(r.driftResyncWrites)} | ${yes(r.idleGoalMet === true && r.driftGoalMet === true)} |`,
      );
    }
    out.push(
      '',
      'Writes are counted by the server: etcd revision, ZooKeeper zxid (refused writes and session/parent creation included), Consul agent PUTs without heartbeats.',
      '',
    );
  }
  const hb = of('heartbeat');
  if (hb.length > 0) {
    out.push(
      '### Heartbeat cost (goal: constant in the number of services)',
      '',
      '| backend | requests per TTL with 1 / 100 / 1,000 services | limit: one keepalive per refresh | writes per TTL | counted | met |',
      '| --- | --- | --- | --- | --- | --- |',
    );
    for (const r of hb) {
      const q = r.requestsPerTtl as Record<string, number>;
      const w = r.writesPerTtl as Record<string, number>;
      out.push(
        `| ${r.backend} | ${q['1']} / ${q['100']} / ${q['1000']} | ${Number(r.ttlSeconds) / Number(r.refreshSeconds)} per ${String(r.ttlSeconds)} s TTL | ` +
          `${w['1']} / ${w['100']} / ${w['1000']} | ${String(r.counted)} | ${yes(r.goalMet)} |`,
      );
    }
    out.push('');
  }
  for (const r of of('memory')) {
    const u = (k: string) => r[k] as { rssMiB: number; heapUsedMiB: number };
    out.push(
      '### Memory (goal: heap returns to its plateau after the churn soak)',
      '',
      '| process | RSS | heap used | met |',
      '| --- | --- | --- | --- |',
      `| before the bridge starts (Node + modules) | ${u('baseline').rssMiB} MiB | ${u('baseline').heapUsedMiB} MiB | |`,
      `| cold start, ${String(r.services)} services (${r.backend}) | ${u('coldStart').rssMiB} MiB | ${u('coldStart').heapUsedMiB} MiB | |`,
      `| right after ${String(r.soakEvents)} churn events (${String(r.soakSeconds)} s) | ${u('afterSoak').rssMiB} MiB | ${u('afterSoak').heapUsedMiB} MiB | |`,
      `| ${String(r.settleSeconds)} s later | ${u('settled').rssMiB} MiB | ${u('settled').heapUsedMiB} MiB | ${yes(r.goalMet)} |`,
      '',
    );
  }
  return out;
}
