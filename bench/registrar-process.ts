// The built `registrar` CLI as a child process, exactly as users start it (`node packages/cli/bin/registrar.js`),
// with what the process bench reads of it from outside: RSS from /proc/<pid>/status, CPU time from
// /proc/<pid>/stat, and the heap split from its own Prometheus endpoint.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { CLI as BUILT_CLI } from '../test/harness/bridge.js';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ: 100 on every Linux build we run). */
const USER_HZ = 100;

export interface Memory {
  /** VmRSS. */
  rssMiB: number;
  /** RssAnon: heap, stacks, malloc arenas. */
  anonMiB: number;
  /** RssFile: the mapped pages of the node binary and shared libraries. */
  fileMiB: number;
}

export interface HeapSplit {
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
}

export interface RegistrarProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything the process wrote to stderr (its JSON logs), for diagnosis. */
  readonly stderr: string[];
  memory(): Memory;
  /** utime + stime, seconds. */
  cpuSeconds(): number;
  /** The V8 heap and external memory as the process reports them on /metrics. */
  heap(): Promise<HeapSplit>;
  /** Resolves once its /readyz says ready (first inventory in, every registry answered a pass). */
  ready(timeoutMs?: number): Promise<void>;
  /** A gauge or counter from its /metrics, summed over its label sets; undefined when it has none. */
  metric(name: string): Promise<number | undefined>;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM and wait for the exit; SIGKILL after 15 s. */
  stop(): Promise<void>;
}

export interface Launch {
  /** Registry URIs and flags after the CLI path. */
  readonly args: readonly string[];
  /** Node flags before the CLI path (the V8 variants). */
  readonly nodeFlags?: readonly string[];
  /** Extra environment (MALLOC_ARENA_MAX…). */
  readonly env?: NodeJS.ProcessEnv;
}

/** `BENCH_CLI`: another build's `packages/cli/bin/registrar.js`, to compare two trees on one machine state. */
const CLI = process.env.BENCH_CLI ?? BUILT_CLI;

const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function spawnRegistrar(launch: Launch): Promise<RegistrarProcess> {
  const metricsPort = await freePort();
  // The runner's own NODE_OPTIONS (vitest, a debugger) must not reach the measured process.
  const { NODE_OPTIONS: _runnerOptions, ...inherited } = process.env;
  const child = spawn(
    process.execPath,
    [
      ...(launch.nodeFlags ?? []),
      ...(process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROF] : []),
      CLI,
      '--metrics-addr',
      `127.0.0.1:${metricsPort}`,
      ...launch.args,
    ],
    {
      env: { ...inherited, REGISTRAR_LOG_FORMAT: 'json', ...launch.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const stderr: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr.push(chunk.toString());
    if (stderr.length > 200) stderr.splice(0, stderr.length - 200);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${CLI}`);

  const status = () => {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
    return { rss: kib('VmRSS'), anon: kib('RssAnon'), file: kib('RssFile') };
  };
  const metric = (text: string, name: string) =>
    Number(new RegExp(`^registrar_${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN);

  return {
    child,
    pid,
    stderr,
    memory() {
      const s = status();
      return { rssMiB: mib(s.rss * 1024), anonMiB: mib(s.anon * 1024), fileMiB: mib(s.file * 1024) };
    },
    cpuSeconds() {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command name, which is in parentheses and may itself contain spaces.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
    },
    async heap() {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      return {
        heapUsedMiB: mib(metric(text, 'nodejs_heap_size_used_bytes')),
        heapTotalMiB: mib(metric(text, 'nodejs_heap_size_total_bytes')),
        externalMiB: mib(metric(text, 'nodejs_external_memory_bytes')),
      };
    },
    async ready(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`registrar exited before it was ready: ${stderr.join('').slice(-300)}`);
        const res = await fetch(`http://127.0.0.1:${metricsPort}/readyz`).catch(() => undefined);
        if (res !== undefined) {
          const body = (await res.json().catch(() => ({}))) as { ready?: boolean };
          if (body.ready === true) return;
        }
        if (Date.now() > deadline) throw new Error(`registrar not ready within ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
    async metric(name) {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const values = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].map((m) =>
        Number(m[1]),
      );
      return values.length === 0 ? undefined : values.reduce((a, b) => a + b, 0);
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Whatever serves a Docker socket the process is started on: resolves when a bridge subscribes to its events. */
export interface EventSource {
  nextSubscriber(): Promise<void>;
}

export interface Launched {
  readonly p: RegistrarProcess;
  /** performance.now() just before the spawn. */
  readonly t0: number;
  /** performance.now() when its event stream was open. */
  readonly subscribedAt: number;
}

/**
 * Spawn `registrar` with `launch` against `source`; resolves once its event stream is open. Rejects (and stops
 * the process) if it exits first or does not subscribe within `startTimeoutMs`.
 */
export async function launchOn(
  source: EventSource,
  launch: Launch,
  startTimeoutMs = 30_000,
): Promise<Launched> {
  const subscribed = source.nextSubscriber();
  const t0 = performance.now();
  const p = await spawnRegistrar(launch);
  const exited = new Promise<never>((_, reject) =>
    p.child.once('exit', (code) => {
      // The line that says why: a crash prints its error after pages of the module's source.
      const lines = p.stderr.join('').split('\n');
      const why = lines.filter((l) => /error/i.test(l)).at(-1) ?? lines.at(-1) ?? '';
      reject(new Error(`registrar exited (${code}): ${why.trim().slice(0, 300)}`));
    }),
  );
  exited.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no event stream within ${startTimeoutMs / 1000} s`)),
      startTimeoutMs,
    );
  });
  try {
    await Promise.race([subscribed, exited, late]);
  } catch (error) {
    await p.stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return { p, t0, subscribedAt: performance.now() };
}
