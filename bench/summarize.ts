// Turns bench/results/latest.jsonl into bench/RESULTS.md (vitest global teardown of `pnpm bench`).
import { cpus, totalmem } from 'node:os';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import type { DockerClientProbe } from './docker-client-probe.js';
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

/** An unchanged resync writes nothing; a drift of n services writes at most n (fewer: batched). */
const resyncMet = (r: Row) =>
  r.idleResyncWrites === 0 &&
  Number(r.driftResyncWrites) > 0 &&
  Number(r.driftResyncWrites) <= Number(r.driftedContainers);

/** One table per goal: the figure, the backend's own limit beside it, and whether the goal is met. */
function headline(rows: readonly Row[]): string[] {
  const of = (suite: string) => rows.filter((r) => r.suite === suite);
  const out: string[] = [...goalTable(rows), '## By suite', ''];
  const latency = of('latency');
  if (latency.length > 0) {
    out.push(
      '### Event-to-visible latency on the real Docker engine (the shipped process; one backend per process, then all three in one)',
      '',
      '| backend | scenario | start | stop | limit: raw write-to-visible | limit: Docker event delivery (start / die, median) | limit: Docker inspect | bridge adds (start / stop, median; start p95) | first starts after ready (limit) | spawn → ready |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const r of latency) {
      const d = r.dockerEventDelivery as { start: S; die: S };
      const o = r.bridgeOverheadMedianMs as { start: number; stop: number };
      out.push(
        `| ${r.backend} | ${String(r.scenario)} | ${ms(r.start as S)} | ${ms(r.stop as S)} | ${ms(r.rawWriteToVisible as S)} | ` +
          `${d.start.median} / ${d.die.median} ms | ${ms(r.dockerInspect as S)} | ` +
          `${o.start} / ${o.stop} ms; ${String(r.bridgeOverheadStartP95Ms)} ms | ` +
          `${(r.firstStartsMs as number[]).join(', ')} ms (${String(r.firstStartLimitMs)} ms) | ${ms(r.spawnToReadyMs as S)} |`,
      );
    }
    out.push(
      '',
      "Start and stop: from the Docker event's own time to the registry's watcher seeing the change. First starts: the first",
      'container after /readyz of a fresh process, after its own event delivery; the limit is raw + inspect + 3 ms.',
      '',
    );
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
      '| backend | containers | cold start: time / writes (limit: at most 1 write per service) | idle resync: time / writes | drift resync: drifted / time / writes | met |',
      '| --- | --- | --- | --- | --- | --- |',
    );
    for (const r of resync) {
      out.push(
        `| ${r.backend} | ${String(r.containers)} | ${String(r.coldStartSeconds)} s / ${String(r.coldStartWrites)} | ` +
          `${String(r.idleResyncSeconds)} s / ${String(r.idleResyncWrites)} | ${String(r.driftedContainers)} / ${String(r.driftResyncSeconds)} s / ` +
          `${String(r.driftResyncWrites)} | ${yes(resyncMet(r))} |`,
      );
    }
    out.push(
      '',
      'Writes are counted by the server: etcd revisions (one per transaction: the bridge sends a pass of many writes as transactions of up to 64 puts), ZooKeeper zxids (one per multi; refused writes and session/parent creation included), Consul agent PUTs without heartbeats.',
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
const heap = (m: Reading) => `${m.heapUsedMiB} / ${m.heapTotalMiB} / ${m.externalMiB} MiB`;
const split = (m: Reading) =>
  `${m.rssMiB} MiB (${m.anonMiB} anon + ${m.fileMiB} file) | ${m.heapUsedMiB} / ${m.heapTotalMiB} / ${m.externalMiB} MiB`;

const mib = (m: Reading) => `${m.anonMiB} / ${m.rssMiB} MiB`;

/**
 * The goals of the lean-and-fast issue, one row each (per backend where the goal is), every figure beside the
 * limit measured in the same run.
 */
function goalTable(rows: readonly Row[]): string[] {
  const of = (suite: string) => rows.filter((r) => r.suite === suite);
  const alone = of('latency').filter((r) => r.scenario === 'alone');
  const proc = of('process');
  const cpu = of('process-cpu')[0];
  const soak = of('process-soak').find((r) => r.shipped === true);
  const etcd = proc.find((r) => r.backend === 'etcd');
  const out = [
    '## Goals',
    '',
    `The built \`registrar\`, run as the image runs it (${proc[0] ? `\`${String(proc[0].node)}\`` : 'see below'}); every limit measured in the same run.`,
    '',
    '| measure | backend | figure | limit (same run) | goal | met |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of alone) {
    const o = r.bridgeOverheadMedianMs as { start: number };
    out.push(
      `| bridge-added start latency, median (p95), each backend alone | ${r.backend} | ${o.start} ms (${String(r.bridgeOverheadStartP95Ms)} ms) | ` +
        `over Docker delivery ${(r.dockerEventDelivery as { start: S }).start.median} + inspect ${(r.dockerInspect as S).median} + raw write-to-visible ${(r.rawWriteToVisible as S).median} ms | ≤ 1 ms; p95 ≤ 2 ms | ${yes(r.startGoalMet)} |`,
    );
  }
  for (const r of alone) {
    out.push(
      `| first start after ready (median of ${(r.firstStartsMs as number[]).length} fresh processes) | ${r.backend} | ${String(r.firstStartMedianMs)} ms | ` +
        `${String(r.firstStartLimitMs)} ms = raw ${(r.rawWriteToVisible as S).median} + inspect ${(r.dockerInspect as S).median} + 3 | ≤ limit | ${yes(r.firstStartGoalMet)} |`,
    );
  }
  for (const r of proc) {
    out.push(
      `| burst throughput: ${String(r.burst)} starts at once → all visible (inspect included) | ${r.backend} | ${String(r.burstSeconds)} s (${String(r.burstCpuSeconds)} s CPU): ${String(r.burstRatio)}× the raw client | ` +
        `raw client, single writes, 16 in flight: ${String(r.rawBurstSeconds)} s; inspecting the ${String(r.burst)} alone (lean client): ${String(r.burstInspectFloorSeconds)} s, so at most ${String(r.burstRatioCeiling)}× for any bridge that inspects | ≥ ${String(r.burstGoal)}× | ${yes(r.burstGoalMet)} |`,
    );
  }
  for (const r of proc) {
    const ref = r.coldStartReference as {
      listInspectSeconds: number;
      writeSeconds: number;
      totalSeconds: number;
      writes: string;
    };
    out.push(
      `| cold start, ${String(r.services)} services: event stream open → all visible | ${r.backend} | ${String(r.coldStartSeconds)} s (${String(r.coldStartCpuSeconds)} s CPU): ${String(r.coldStartRatio)}× | ` +
        `lean list + inspect-all ${ref.listInspectSeconds} s + ${ref.writes} writes ${ref.writeSeconds} s = ${ref.totalSeconds} s | ≤ 1.2× | ${yes(r.coldStartGoalMet)} |`,
    );
  }
  /** `inspects / lists` the bridge asked of the engine. */
  const asked = (requests: unknown) => {
    const { inspect, list } = requests as { inspect: number; list: number };
    return `${String(inspect)} inspects, ${String(list)} lists`;
  };
  for (const r of proc) {
    const lo = r.labelsOnly as Record<string, unknown> | undefined;
    if (lo === undefined) continue;
    out.push(
      `| burst, --labels-only | ${r.backend} | ${String(lo.burstSeconds)} s (${String(lo.burstCpuSeconds)} s CPU): ${String(lo.burstRatio)}× the raw client; ${asked(lo.burstDockerRequests)} (by default ${asked(r.burstDockerRequests)}) | ` +
        `raw client, single writes, 16 in flight: ${String(r.rawBurstSeconds)} s | ≥ ${String(r.burstGoal)}× | ${yes(lo.burstGoalMet)} |`,
    );
  }
  for (const r of proc) {
    const lo = r.labelsOnly as Record<string, unknown> | undefined;
    if (lo === undefined) continue;
    const ref = r.coldStartReference as { totalSeconds: number };
    out.push(
      `| cold start, ${String(r.services)} services, --labels-only | ${r.backend} | ${String(lo.coldStartSeconds)} s (${String(lo.coldStartCpuSeconds)} s CPU): ${String(lo.coldStartRatio)}×; ${asked(lo.coldStartDockerRequests)} (by default ${asked(r.coldStartDockerRequests)}) | ` +
        `the same lean reference: ${ref.totalSeconds} s | ≤ 1.2× | ${yes(lo.coldStartGoalMet)} |`,
    );
  }
  for (const r of proc) {
    const s = r.spawnToStreamSeconds as S & { n: number };
    out.push(
      `| spawn → event stream open (median of ${s.n} spawns) | ${r.backend} | ${s.median} ms (max ${s.max}) | — | ≤ 150 ms | ${yes(r.spawnToStreamGoalMet)} |`,
    );
  }
  if (etcd) {
    const idle = etcd.idle as Reading;
    const at = etcd.atServices as Reading;
    const after = soak?.afterWait as Reading | undefined;
    const g = etcd.memoryGoals as { anonMiB: Record<string, number>; rssMiB: Record<string, number> };
    const points = [
      [`idle with ${String(etcd.idleServices)}`, idle, 'idle'],
      [`at ${String(etcd.services)}`, at, 'services'],
      [`10 s after ${soak ? String(soak.soakEvents as number) : '?'} events`, after, 'soak'],
    ] as const;
    out.push(
      `| private memory (RssAnon): ${points.map((p) => p[0]).join(' / ')} | etcd | ${points.map((p) => (p[1] ? `${p[1].anonMiB}` : '—')).join(' / ')} MiB | — | ` +
        `≤ ${points.map((p) => g.anonMiB[p[2]]).join(' / ')} MiB | ${points.map((p) => yes(p[1] !== undefined && p[1].anonMiB <= g.anonMiB[p[2]])).join(' / ')} |`,
      `| RSS, same points | etcd | ${points.map((p) => (p[1] ? `${p[1].rssMiB}` : '—')).join(' / ')} MiB | — | ` +
        `≤ ${points.map((p) => g.rssMiB[p[2]]).join(' / ')} MiB | ${points.map((p) => yes(p[1] !== undefined && p[1].rssMiB <= g.rssMiB[p[2]])).join(' / ')} |`,
    );
    for (const r of proc.filter((x) => x.backend !== 'etcd')) {
      out.push(
        `| RssAnon / RSS idle with ${String(r.idleServices)} · at ${String(r.services)} | ${r.backend} | ${mib(r.idle as Reading)} · ${mib(r.atServices as Reading)} | — | ≤ ${g.anonMiB.idle} / ${g.rssMiB.idle} · ≤ ${g.anonMiB.services} / ${g.rssMiB.services} MiB | ` +
          `${yes((r.idle as Reading).anonMiB <= g.anonMiB.idle && (r.idle as Reading).rssMiB <= g.rssMiB.idle)} · ${yes((r.atServices as Reading).anonMiB <= g.anonMiB.services && (r.atServices as Reading).rssMiB <= g.rssMiB.services)} |`,
      );
    }
  }
  if (cpu) {
    const scale = String(cpu.scale);
    const small = cpu.at100 as { cpuMsPerEvent: number };
    const large = cpu[`at${scale}`] as { cpuMsPerEvent: number };
    out.push(
      `| per-event CPU, ${scale} vs 100 tracked | etcd | ${large.cpuMsPerEvent} vs ${small.cpuMsPerEvent} ms: ${String(cpu.ratio)}× | the same process at 100 | ≤ 1.3× | ${yes(cpu.goalMet)} |`,
    );
  }
  out.push('');
  return out;
}

/** The `registrar` process itself (process.bench.ts): memory, per-event CPU, cold start, the variants tried. */
function processTables(rows: readonly Row[]): string[] {
  const of = (suite: string) => rows.filter((r) => r.suite === suite);
  const out: string[] = [];
  const proc = of('process');
  if (proc.length > 0) {
    const cells = (f: (r: Row) => string) => proc.map(f).join(' | ');
    out.push(
      `### The process users run (\`${String(proc[0].node)}\` on the synthetic engine's unix socket; RssAnon / RSS from /proc)`,
      '',
      `| figure | ${proc.map((r) => r.backend).join(' | ')} |`,
      `| --- | ${proc.map(() => '---').join(' | ')} |`,
      `| idle with ${String(proc[0].idleServices)} services: RssAnon / RSS; heap used / total / external | ${cells((r) => `${mib(r.idle as Reading)}; ${heap(r.idle as Reading)}`)} |`,
      `| at ${String(proc[0].services)} services | ${cells((r) => `${mib(r.atServices as Reading)}; ${heap(r.atServices as Reading)}`)} |`,
      `| cold start of ${String(proc[0].services)}, event stream open → all visible (CPU) | ${cells((r) => `${String(r.coldStartSeconds)} s (${String(r.coldStartCpuSeconds)} s)`)} |`,
      `| … of which until the last container inspect | ${cells((r) => `${String(r.coldStartLastInspectSeconds)} s`)} |`,
      `| … from spawning the process | ${cells((r) => `${String(r.coldStartFromSpawnSeconds)} s`)} |`,
      `| lean reference: list + inspect-all / writes | ${cells((r) => {
        const ref = r.coldStartReference as {
          listInspectSeconds: number;
          writeSeconds: number;
          writes: string;
        };
        return `${ref.listInspectSeconds} / ${ref.writeSeconds} s (${ref.writes})`;
      })} |`,
      `| burst of ${String(proc[0].burst)} starts → all visible (CPU) / raw single writes | ${cells((r) => `${String(r.burstSeconds)} s (${String(r.burstCpuSeconds)} s) / ${String(r.rawBurstSeconds)} s`)} |`,
      `| spawn → event stream open, median / max | ${cells((r) => {
        const x = r.spawnToStreamSeconds as S;
        return `${x.median} / ${x.max} ms`;
      })} |`,
      '',
    );
  }
  for (const r of of('docker-client')) {
    const clients = r.clients as DockerClientProbe[];
    out.push(
      `### Docker client: dockerode vs the lean node:http client (\`${String(r.node)}\`, ${String(r.containers)} containers listed and inspected 16 in flight; median of ${String(r.runs)} fresh processes)`,
      '',
      '| client | load time (CPU) | + RssAnon on load | CPU per inspect | RssAnon / RSS after the inspects |',
      '| --- | --- | --- | --- | --- |',
      ...clients.map(
        (c) =>
          `| ${c.client} | ${c.loadMs} ms (${c.loadCpuMs} ms) | ${c.anonLoadMiB} MiB | ${c.cpuMsPerInspect} ms | ${c.anonAfterMiB} / ${c.rssAfterMiB} MiB |`,
      ),
      '',
    );
  }
  for (const r of of('process-modules')) {
    const modules = r.modules as {
      module: string;
      loadMs: number;
      cpuMs: number;
      anonMiB: number;
      rssMiB: number;
      nodeBootMs: number;
    }[];
    out.push(
      `### Start-up: each module imported alone into a fresh \`${String(r.node)}\` (median of 3)`,
      '',
      '| module | load time | CPU | + RssAnon | + RSS |',
      '| --- | --- | --- | --- | --- |',
      ...modules.map(
        (m) =>
          `| \`${m.module}\` | ${m.module === '(bare node)' ? `boot ${m.nodeBootMs}` : m.loadMs} ms | ${m.cpuMs} ms | ${m.anonMiB} MiB | ${m.rssMiB} MiB |`,
      ),
      '',
      'Each counts its own dependencies (shared ones in each row); `./dist/run.js` is the whole daemon up to its start.',
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
      '### Churn soak of the process (etcd; goal 10 s after: RssAnon ≤ 70 MiB, RSS ≤ 120 MiB)',
      '',
      '| node | at the start: RssAnon / RSS | events (s, CPU per event) | right after | 10 s after | heap used / total: start / right after / 10 s after | met |',
      '| --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const r of soaks) {
      const [b, a, w] = (['before', 'rightAfter', 'afterWait'] as const).map((k) => r[k] as Reading);
      out.push(
        `| \`${String(r.node)}\` | ${mib(b)} | ${String(r.soakEvents)} (${String(r.soakSeconds)} s, ${String(r.soakCpuMsPerEvent)} ms) | ${mib(a)} | ${mib(w)} | ` +
          `${b.heapUsedMiB} / ${b.heapTotalMiB} · ${a.heapUsedMiB} / ${a.heapTotalMiB} · ${w.heapUsedMiB} / ${w.heapTotalMiB} MiB | ${yes(r.goalMet)} |`,
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
