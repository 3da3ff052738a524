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
      '### Event-to-visible latency (goal: the bridge adds ≤ 1 ms to a start at the median, ≤ 3 ms at p95, over Docker delivery + inspect + raw write; worst start ≤ raw + inspect + 20 ms)',
      '',
      '| backend | start | stop | limit: raw write-to-visible | limit: Docker event delivery (start / die, median) | limit: Docker inspect | bridge adds (start / stop, median; start p95) | worst start (limit) | met |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const r of latency) {
      const d = r.dockerEventDelivery as { start: S; die: S };
      const o = r.bridgeOverheadMedianMs as { start: number; stop: number };
      const inspect = r.dockerInspect as S | undefined;
      out.push(
        `| ${r.backend} | ${ms(r.start as S)} | ${ms(r.stop as S)} | ${ms(r.rawWriteToVisible as S)} | ` +
          `${d.start.median} / ${d.die.median} ms | ${inspect ? ms(inspect) : '—'} | ` +
          `${o.start} / ${o.stop} ms; ${String((r.bridgeOverheadStartP95Ms as number | undefined) ?? '—')} ms | ` +
          `${String((r.worstStartMs as number | undefined) ?? '—')} ms (${String((r.worstStartLimitMs as number | undefined) ?? '—')} ms) | ${yes(r.goalMet)} |`,
      );
    }
    out.push('');
  }
  const tput = of('throughput');
  if (tput.length > 0) {
    out.push(
      '### Throughput (goal: ≥ 95 % of the raw client at the same concurrency)',
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
  out.push(...processTables(rows), ...swarmTables(rows));
  return out;
}

interface ScaleUp {
  fromLastRunningSeconds: number;
  fromUpdateEventSeconds: number;
  lastRunningAfterEventSeconds: number;
  serverWrites: number;
  taskLists: number;
}

/** `registrar --swarm` on the synthetic Swarm manager (swarm.bench.ts). */
function swarmTables(rows: readonly Row[]): string[] {
  const cold = rows.filter((r) => r.suite === 'swarm-cold');
  const scale = rows.filter((r) => r.suite === 'swarm-scale');
  const failover = rows.filter((r) => r.suite === 'swarm-failover');
  if (cold.length === 0 && scale.length === 0) return [];
  const out: string[] = [
    "### Swarm mode (the built `registrar --swarm --swarm-mode tasks --network <overlay>` on the synthetic engine's Swarm manager API)",
    '',
    '| scenario | backend | figure | limit: raw client writes (same run, 16 in flight) | goal | met |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of cold) {
    out.push(
      `| cold start, ${String(r.tasks)} tasks (${String(r.services)} services on ${String(r.nodes)} nodes): spawn → registry exact | ${r.backend} | ` +
        `${String(r.coldStartSeconds)} s (${String(r.coldStartFromSubscribeSeconds)} s from the event stream open; the manager answered the inventory ${r.inventoryAnsweredSeconds === undefined ? '?' : String(r.inventoryAnsweredSeconds as number)} s after the spawn; ${String(r.serverWrites)} server writes) | ` +
        `${String(r.tasks)} puts in ${String(r.rawPutSeconds)} s (${String(r.rawPutsPerSec)} puts/s, ${String(r.rawRemovesPerSec)} removes/s) | ≤ 2 s | ${yes(r.goalMet)} |`,
    );
  }
  for (const r of scale) {
    const spread = r.spread as ScaleUp;
    const atOnce = r.atOnce as ScaleUp;
    const cell = (x: ScaleUp) =>
      `${x.fromLastRunningSeconds} s (${x.fromUpdateEventSeconds} s from the update event; ${x.serverWrites} writes, ${x.taskLists} task lists)`;
    const limit = `48 puts ≈ ${String(r.rawSecondsFor48Puts)} s (${String(r.rawPutsPerSec)} puts/s)`;
    out.push(
      `| scale ${String(r.from)} → ${String(r.to)}, new tasks running over ${String(r.spreadMs)} ms: last running → all visible | ${r.backend} | ${cell(spread)} | ${limit} | ≤ 1 s | ${yes(spread.fromLastRunningSeconds <= 1)} |`,
      `| scale ${String(r.from)} → ${String(r.to)}, all running at once ${String(r.atOnceAfterMs)} ms after the event: last running → all visible | ${r.backend} | ${cell(atOnce)} | ${limit} | ≤ 1 s | ${yes(atOnce.fromLastRunningSeconds <= 1)} |`,
      `| scale ${String(r.to)} → ${String(r.from)} (surplus shut down with the event): event → registry exact | ${r.backend} | ${String(r.scaleDownSeconds)} s | | | |`,
    );
  }
  for (const r of failover) {
    if (r.supported !== true) {
      out.push(
        `| leader failover (SIGKILL the elected bridge) | ${r.backend} | not measured: ${String(r.why)} (the bridge writes unconditionally and warns) | | 0 writes, ≤ TTL + 2 s | — |`,
      );
      continue;
    }
    out.push(
      `| leader failover, ${String(r.tasks)} tasks, two managers' bridges (SIGKILL the leader): kill → the other elected / registry exact | ${r.backend} | ` +
        `${String(r.electedSeconds)} s / ${String(r.exactSeconds)} s; ${String(r.unchangedWrites)} writes for unchanged entries (${String(r.serverWritesDuringFailover)} server writes, election keys included); ` +
        `fewest entries meanwhile ${String(r.fewestEntriesDuringFailover)}; the new leader then writes a scale-up in ${String(r.newLeaderScaleSeconds)} s | ` +
        `the dead leader's election lease / session: TTL ${String(r.ttlSeconds)} s | 0 writes, exact within TTL + 2 s | ${yes(r.goalMet)} |`,
    );
  }
  out.push('');
  if (!failover.some((r) => r.supported === true)) {
    out.push(
      '**Leader failover was not measured:** no adapter of this run has `elect()`, so two `registrar --swarm`',
      'bridges would both write; swarm.bench.ts measures it on every adapter that elects.',
      '',
    );
  }
  out.push(
    'Swarm emits no task events: after the service update event the bridge re-lists the service while its tasks are not all',
    "running (every 500 ms for its first 30 s, then backing off), and on the container events of tasks on the manager's own",
    'node (1 of the 5 synthetic nodes): a spread scale-up is seen at the next of those looks after its last task runs.',
    'Writes: etcd revision (lease grant included), ZooKeeper zxid (refused creates and parents included), Consul PUTs without',
    "heartbeats. The raw limit is the backend's own client writing as many registration-shaped entries at 16 in flight.",
    '',
  );
  return out;
}

interface Reading {
  rssMiB: number;
  anonMiB: number;
  fileMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
}
const rss = (m: Reading) => `${m.rssMiB} MiB`;
const split = (m: Reading) =>
  `${m.rssMiB} MiB (${m.anonMiB} anon + ${m.fileMiB} file) | ${m.heapUsedMiB} / ${m.heapTotalMiB} / ${m.externalMiB} MiB`;

/** The `registrar` process itself (process.bench.ts): memory, per-event CPU, cold start, the variants tried. */
function processTables(rows: readonly Row[]): string[] {
  const of = (suite: string) => rows.filter((r) => r.suite === suite);
  const out: string[] = [];
  const proc = of('process');
  if (proc.length > 0) {
    const services = String(proc[0].services);
    const cells = (f: (r: Row) => string) => proc.map(f).join(' | ');
    const met = (k: string) => proc.map((r) => yes(r[k])).join(' / ');
    out.push(
      "### The process users run (the built `registrar` CLI on the synthetic engine's unix socket; RSS from /proc)",
      '',
      `| figure | ${proc.map((r) => r.backend).join(' | ')} | goal | met (${proc.map((r) => r.backend).join(' / ')}) |`,
      `| --- | ${proc.map(() => '---').join(' | ')} | --- | --- |`,
      `| RSS idle, one backend | ${cells((r) => rss(r.idle as Reading))} | ≤ 60 MiB | ${met('idleGoalMet')} |`,
      `| RSS at ${services} services (after the cold start) | ${cells((r) => rss(r.atServices as Reading))} | ≤ 80 MiB | ${met('servicesGoalMet')} |`,
      `| cold start of ${services} services, event stream open → all visible | ${cells((r) => `${String(r.coldStartSeconds)} s`)} | ≤ 0.3 s | ${met('coldStartGoalMet')} |`,
      `| … of which until the last container inspect | ${cells((r) => `${String(r.coldStartLastInspectSeconds)} s`)} | | |`,
      `| … from spawning the process | ${cells((r) => `${String(r.coldStartFromSpawnSeconds)} s`)} | | |`,
      '',
    );
  }
  for (const r of of('process-cpu')) {
    const scale = String(r.scale);
    const small = r.at100 as { cpuMsPerEvent: number; batchSeconds: number };
    const large = r[`at${scale}`] as { cpuMsPerEvent: number; batchSeconds: number };
    out.push(
      `### Per-event CPU of the process, ${scale} vs 100 tracked services (goal ≤ 1.3×; etcd)`,
      '',
      '| tracked services | CPU time per event | batch of events: wall time | ratio | met |',
      '| --- | --- | --- | --- | --- |',
      `| 100 | ${small.cpuMsPerEvent} ms | ${String(r.eventsPerBatch)} events: ${small.batchSeconds} s | | |`,
      `| ${scale} | ${large.cpuMsPerEvent} ms | ${String(r.eventsPerBatch)} events: ${large.batchSeconds} s | ${String(r.ratio)} | ${yes(r.goalMet)} |`,
      '',
      `utime + stime from /proc/<pid>/stat around each batch (half starts, half dies), median of ${String(r.batches)} batches; ` +
        `the idle process uses ${String(r.idleCpuMsPerSecond)} ms of CPU per second.`,
      '',
    );
  }
  const soaks = of('process-soak');
  if (soaks.length > 0) {
    out.push(
      '### Churn soak of the process (goal ≤ 120 MiB right after, < 90 MiB within 60 s; heap back at its plateau; etcd)',
      '',
      '| node | RSS at the start | events (s, CPU per event) | RSS right after | RSS after the wait | heap used: start / after / after the wait | met (RSS / heap) |',
      '| --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const r of soaks) {
      const [b, a, s2] = (['before', 'afterSoak', 'recovered'] as const).map((k) => r[k] as Reading);
      out.push(
        `| \`${String(r.node)}\` | ${rss(b)} | ${String(r.soakEvents)} (${String(r.soakSeconds)} s, ${String(r.soakCpuMsPerEvent)} ms) | ${rss(a)} | ` +
          `${rss(s2)} (${String(r.recoverySeconds)} s) | ${b.heapUsedMiB} / ${a.heapUsedMiB} / ${s2.heapUsedMiB} MiB | ${yes(r.goalMet)} / ${yes(r.heapGoalMet)} |`,
      );
    }
    out.push('');
  }
  for (const r of of('process-variants')) {
    const variants = r.variants as ({ variant: string; failed?: string } & Record<string, unknown>)[];
    out.push(
      `### What holds the RSS: Node and allocator variants (etcd; idle, then ${String(r.services)} start events)`,
      '',
      `| variant | idle RSS | idle heap used / total / external | RSS at ${String(r.services)} | heap used / total / external | ${String(r.services)} starts registered in | CPU per start |`,
      '| --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const v of variants) {
      if (v.failed !== undefined)
        out.push(`| \`${v.variant}\` | fails: ${v.failed.replaceAll('|', '\\|')} | | | | | |`);
      else
        out.push(
          `| \`${v.variant}\` | ${split(v.idle as Reading)} | ${split(v.atServices as Reading)} | ${String(v.registerSeconds)} s | ${String(v.cpuMsPerStart)} ms |`,
        );
    }
    out.push(
      '',
      'anon: heap, stacks and malloc; file: mapped pages of the node binary and libraries (bare `node` idles at ~42 MiB, 34 of them file).',
      '',
    );
  }
  return out;
}
