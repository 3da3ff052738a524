/**
 * The library packages installed the way a user installs them: `pnpm pack` each one, `npm install` the tarballs
 * into a fresh project outside the workspace (their dependencies come from the npm registry), compile a program
 * against them with `tsc --strict` and `skipLibCheck: false`, and run it against real etcd and ZooKeeper, the
 * packed Consul agent double and a bridge over a synthetic Docker engine (`consumer.ts`).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConsulDouble, type ConsulDouble } from '@registrar/consul-double';
import zk from 'node-zookeeper-client';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { until } from '@registrar/core/testing';
import { removeDir, tempDir } from '@registrar/test-servers/process';
import { startTcpProxy, type TcpProxy } from '@registrar/test-servers/proxy';
import { connectedClient, startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';

const root = fileURLToPath(new URL('../../', import.meta.url));
const LIBRARIES = ['core', 'etcd', 'zookeeper', 'consul', 'consul-double', 'lb', 'render'] as const;
/** The version of a tool the workspace has installed (its manifest names only `catalog:`). */
const installedVersion = (name: string): string =>
  (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string })
    .version;

interface Result {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * The environment a user's shell would give npm and node: without what `pnpm test` adds (`npm_config_*`,
 * `npm_package_*`, `PNPM_*`), which would otherwise configure the npm run inside the temp project.
 */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_|pnpm_)/i.test(key) || key === 'NODE_ENV' || key === 'NODE_OPTIONS') continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

/** Run a command to its end; on `timeoutMs` the child (by its pid) gets SIGKILL. */
function run(
  command: string,
  args: readonly string[],
  options: { cwd: string; timeoutMs: number; env?: NodeJS.ProcessEnv },
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? userEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: options.timeoutMs,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', reject);
    // 'close' comes after both pipes are drained.
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function show(what: string, result: Result): string {
  return `${what}: exit ${result.code ?? result.signal}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)).split(sep).join('/'))
    .sort();
}

/** What a published library may contain. */
const publishable = (path: string) =>
  path.startsWith('dist/') || path === 'README.md' || path === 'LICENSE' || path === 'package.json';

let work: string | undefined;
let project: string;
const tarballs = new Map<string, string>();
let etcd: EtcdServer | undefined;
let zookeeper: ZookeeperServer | undefined;
/** The consumer reaches ZooKeeper through it, so the test can cut it off until its session expires. */
let zookeeperProxy: TcpProxy | undefined;
let consul: ConsulDouble | undefined;
/** Clients of the test's own, reading what the consumer stored. */
let etcdReader: Etcd3 | undefined;
let zookeeperReader: zk.Client | undefined;
/** The TTL (s) the consumer gives every adapter. */
const TTL = 3;

/**
 * One registry seen from outside the consumer: what it stores under an id, whether a consumer of it would
 * route to that id, and how its liveness is taken away the way an operator or an outage would.
 */
interface Outside {
  readonly name: 'etcd' | 'zookeeper' | 'consul';
  /** The stored record (JSON), or undefined when there is none. */
  stored(id: string): Promise<string | undefined>;
  /** Stored and, where the registry has health (Consul), passing. */
  serving(id: string): Promise<boolean>;
  /** Resolves once `id` no longer serves and the registry answers the consumer again. */
  loseLiveness(id: string): Promise<void>;
}

function exec(command: string, args: readonly string[]): Promise<Result> {
  return run(command, args, { cwd: root, timeoutMs: 20_000, env: process.env });
}

const OUTSIDE: Outside[] = [
  {
    name: 'etcd',
    async stored(id) {
      return (await etcdReader!.get(`/pack/api/${id}`).string()) ?? undefined;
    },
    async serving(id) {
      return (await this.stored(id)) !== undefined;
    },
    async loseLiveness(id) {
      const endpoints = `--endpoints=${etcd!.endpoint}`;
      const got = await exec('etcdctl', [endpoints, 'get', `/pack/api/${id}`, '-w', 'json']);
      expect(got.code, show('etcdctl get', got)).toBe(0);
      // An int64: JSON.parse would round it.
      const lease = /"lease":(\d+)/.exec(got.stdout)?.[1];
      expect(lease, got.stdout).toBeDefined();
      const revoked = await exec('etcdctl', [endpoints, 'lease', 'revoke', BigInt(lease!).toString(16)]);
      expect(revoked.code, show('etcdctl lease revoke', revoked)).toBe(0);
    },
  },
  {
    name: 'zookeeper',
    stored(id) {
      return new Promise<string | undefined>((resolve, reject) =>
        zookeeperReader!.getData(`/pack/api/${id}`, (error, data) => {
          if (!error) resolve(data?.toString('utf8') ?? '');
          else if (error instanceof zk.Exception && error.getCode() === zk.Exception.NO_NODE)
            resolve(undefined);
          else reject(new Error(String(error)));
        }),
      );
    },
    async serving(id) {
      return (await this.stored(id)) !== undefined;
    },
    async loseLiveness(id) {
      // Cut the consumer off until ZooKeeper has expired its session (its ephemeral node is gone).
      await zookeeperProxy!.down();
      await until('the session to expire', async () => !(await this.serving(id)), 30_000);
      await zookeeperProxy!.up();
    },
  },
  {
    name: 'consul',
    async stored(id) {
      const services = (await (await fetch(`${consul!.url}/v1/agent/services`)).json()) as Record<
        string,
        unknown
      >;
      return id in services ? JSON.stringify(services[id]) : undefined;
    },
    async serving(id) {
      const entries = (await (await fetch(`${consul!.url}/v1/health/service/api?passing`)).json()) as {
        Service: { ID: string };
      }[];
      return entries.some((entry) => entry.Service.ID === id);
    },
    async loseLiveness(id) {
      // The TTL check every service of the node aliases, failed from outside.
      const res = await fetch(`${consul!.url}/v1/agent/check/fail/service:registrar:pack-consul`, {
        method: 'PUT',
      });
      expect(res.status).toBe(200);
      expect(await this.serving(id)).toBe(false);
    },
  },
];

/** Waits until `probe` holds; how long that took (ms), or a failure after `timeoutMs`. */
async function within(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = performance.now();
  await until(what, probe, timeoutMs);
  return performance.now() - started;
}

/** The compiled consumer, driven through its stdin and stdout (see consumer.ts). */
function startProgram(cwd: string, extra: Record<string, string>) {
  const child = spawn(process.execPath, ['out/consumer.js'], {
    cwd,
    env: userEnv(extra),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exit = new Promise<Result>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  const state = () => `--- stdout so far\n${stdout}--- stderr so far\n${stderr}`;
  /** The next line, which must match `pattern`. */
  const line = async (pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> => {
    let timer: NodeJS.Timeout | undefined;
    const next = await Promise.race([
      lines.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no line matching ${pattern} in ${timeoutMs} ms\n${state()}`)),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    if (next.done === true)
      throw new Error(`the program ended before a line matching ${pattern}\n${state()}`);
    stdout += `${next.value}\n`;
    const match = pattern.exec(next.value);
    if (!match) throw new Error(`line ${JSON.stringify(next.value)} does not match ${pattern}\n${state()}`);
    return match;
  };
  const say = (word: string) => void child.stdin.write(`${word}\n`);
  return {
    line,
    exit,
    kill: () => child.kill('SIGKILL'),
    /** Nothing more to say. */
    done: () => child.stdin.end(),
    /** One registry's part of the program; the figures it measured go to the test's output. */
    async lifecycle(outside: Outside) {
      const { name } = outside;
      await line(
        new RegExp(`^refused ${name} invalid service address: address "localhost" is not an IP address`),
      );
      const [, id] = await line(new RegExp(`^registered ${name} (\\S+)$`));
      expect(id).toBe(`${name === 'zookeeper' ? 'pack-zk' : `pack-${name}`}:api:9000`);
      expect(await outside.serving(id!)).toBe(true);
      // A neutral record: nothing about Docker is stored.
      const record = (await outside.stored(id!))!;
      // (ZooKeeper's default payload `none` carries no metadata, so that every Curator consumer can read it.)
      if (name !== 'zookeeper') expect(record).toContain('"zone"');
      expect(record).not.toMatch(/container/i);

      await outside.loseLiveness(id!);
      const backMs = await within(`${id} to serve again`, () => outside.serving(id!), (TTL + 2) * 1000);
      say('abort');
      const [, states] = await line(new RegExp(`^states ${name} (\\S+)$`));
      expect(states!.split(',').at(-1)).toBe('registered');
      // etcd and ZooKeeper lost every entry and wrote it again; Consul's next heartbeat passed the check again.
      if (name !== 'consul') expect(states).toBe('registered,lost,registered');
      await line(new RegExp(`^aborted ${name}$`));
      const goneMs = await within(
        `${id} to be deregistered`,
        async () => (await outside.stored(id!)) === undefined,
        1000,
      );

      say('using');
      const [, scoped] = await line(new RegExp(`^using ${name} (\\S+)$`));
      expect(await outside.stored(scoped!)).toBeDefined();
      say('leave');
      await line(new RegExp(`^left ${name}$`));
      expect(await outside.stored(scoped!)).toBeUndefined();
      console.log(
        `${name}: back ${(backMs / 1000).toFixed(2)} s after the liveness was taken (bound ttl + 2 = ${TTL + 2} s); gone ${Math.round(goneMs)} ms after abort (bound 1000 ms)`,
      );
    },
  };
}

beforeAll(async () => {
  work = tempDir('packaging');
  const packDir = join(work, 'pack');
  project = join(work, 'app');
  mkdirSync(packDir);
  mkdirSync(project);

  // `pnpm test` has run `tsc -b`: dist/ is current. pnpm rewrites `workspace:*` to the packed versions.
  for (const name of LIBRARIES) {
    const packed = await run('pnpm', ['pack', '--pack-destination', packDir, '--json'], {
      cwd: join(root, 'packages', name),
      timeoutMs: 60_000,
      env: process.env,
    });
    if (packed.code !== 0) throw new Error(show(`pnpm pack ${name}`, packed));
    const { filename } = JSON.parse(packed.stdout) as { filename: string };
    tarballs.set(name, filename);
  }

  // A user's project: ESM, its own TypeScript (the workspace's exact version) and @types/node.
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify(
      {
        name: 'registrar-consumer',
        version: '1.0.0',
        private: true,
        type: 'module',
        devDependencies: {
          '@types/node': installedVersion('@types/node'),
          typescript: installedVersion('typescript'),
        },
      },
      null,
      2,
    ),
  );
  const [installed] = await Promise.all([
    run('npm', ['install', '--no-audit', '--no-fund', ...tarballs.values()], {
      cwd: project,
      timeoutMs: 480_000, // the registry may be slow
    }),
    (async () => {
      etcd = await startEtcd();
      etcdReader = new Etcd3({ hosts: etcd.endpoint });
    })(),
    (async () => {
      zookeeper = await startZookeeper();
      zookeeperProxy = await startTcpProxy(zookeeper.port);
      zookeeperReader = await connectedClient(zookeeper.connectString);
    })(),
    (async () => {
      consul = await startConsulDouble({ reapIntervalMs: 200, minDeregisterAfterMs: 1000 });
    })(),
  ]);
  if (installed.code !== 0) throw new Error(show('npm install', installed));
}, 600_000);

afterAll(async () => {
  etcdReader?.close();
  zookeeperReader?.close();
  await Promise.all([etcd?.close(), zookeeperProxy?.close().then(() => zookeeper?.close()), consul?.close()]);
  if (work) removeDir(work);
});

describe('the library packages, packed and installed with npm outside the workspace', () => {
  it.each(LIBRARIES)('%s: npm pack lists only dist/**, README.md, LICENSE and package.json', async (name) => {
    const dir = join(root, 'packages', name);
    const dry = await run('npm', ['pack', '--dry-run', '--json'], { cwd: dir, timeoutMs: 60_000 });
    expect(dry.code, show('npm pack --dry-run', dry)).toBe(0);
    const [listing] = JSON.parse(dry.stdout) as [{ files: { path: string }[] }];
    const paths = listing.files.map((file) => file.path);
    expect(paths.filter((path) => !publishable(path))).toEqual([]);
    expect(paths).toEqual(expect.arrayContaining(['package.json', 'README.md', 'LICENSE', 'dist/index.js']));
    expect(paths).toContain('dist/index.d.ts');
    expect(readFileSync(join(dir, 'LICENSE'), 'utf8')).toBe(readFileSync(join(root, 'LICENSE'), 'utf8'));

    // What pnpm packed and npm unpacked holds the same kind of files.
    const installed = join(project, 'node_modules', '@registrar', name);
    const files = filesUnder(installed);
    expect(files.filter((path) => !publishable(path))).toEqual([]);
    expect(files).toEqual(
      expect.arrayContaining(['package.json', 'README.md', 'LICENSE', 'dist/index.d.ts']),
    );
    // Source maps carry their sources (src/ is not shipped); no declaration maps point at it.
    expect(files.filter((path) => path.endsWith('.d.ts.map'))).toEqual([]);
    const maps = files.filter((path) => path.endsWith('.js.map'));
    expect(maps.length).toBeGreaterThan(0);
    for (const path of maps) {
      const map = JSON.parse(readFileSync(join(installed, path), 'utf8')) as {
        sources: string[];
        sourcesContent?: (string | null)[];
      };
      expect(map.sourcesContent?.filter((content) => typeof content === 'string').length, path).toBe(
        map.sources.length,
      );
    }
  });

  it('every @registrar package came from its tarball, rxjs once as a peer, no runtime dockerode', () => {
    const lock = JSON.parse(readFileSync(join(project, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { resolved?: string; version?: string }>;
    };
    for (const name of LIBRARIES) {
      expect(lock.packages[`node_modules/@registrar/${name}`]?.resolved).toBe(
        `file:../pack/${basename(tarballs.get(name)!)}`,
      );
      const manifest = readFileSync(
        join(project, 'node_modules', '@registrar', name, 'package.json'),
        'utf8',
      );
      expect(manifest).not.toContain('workspace:');
    }
    const copies = (dep: string) =>
      Object.keys(lock.packages).filter((key) => key.endsWith(`node_modules/${dep}`));
    // One copy of each, at the top: the adapters share the core and the rxjs the user's code subscribes with.
    expect(copies('@registrar/core')).toEqual(['node_modules/@registrar/core']);
    expect(copies('rxjs')).toEqual(['node_modules/rxjs']);
    // Core uses only dockerode's types; the user brings a Docker client (or none, as here).
    expect(copies('dockerode')).toEqual([]);
  });

  it('a strict TypeScript program compiles against them (every type from the project) and runs against real servers', async () => {
    copyFileSync(join(root, 'test', 'packaging', 'consumer.ts'), join(project, 'consumer.ts'));
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2023',
          lib: ['es2023'],
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          skipLibCheck: false,
          noEmitOnError: true, // a type error leaves nothing to run
          types: ['node'],
          rootDir: '.',
          outDir: 'out',
        },
        files: ['consumer.ts'],
      }),
    );
    const tsc = join(project, 'node_modules', 'typescript', 'bin', 'tsc');
    const compiled = await run(process.execPath, [tsc, '-p', '.', '--listFiles'], {
      cwd: project,
      timeoutMs: 180_000,
    });
    expect(compiled.code, show('tsc', compiled)).toBe(0);
    const read = compiled.stdout.split('\n').filter((line) => line.startsWith('/'));
    expect(read.length).toBeGreaterThan(10);
    expect(read.filter((file) => !file.startsWith(`${project}/`))).toEqual([]);
    for (const name of LIBRARIES) {
      expect(read).toContain(join(project, 'node_modules', '@registrar', name, 'dist', 'index.d.ts'));
    }
    expect(read).toContain(join(project, 'node_modules', '@types', 'dockerode', 'index.d.ts'));
    expect(existsSync(join(project, 'out', 'consumer.js'))).toBe(true);

    // The compiled program, driven line by line: for each registry, what the README promises (see consumer.ts).
    const program = startProgram(project, {
      ETCD_ENDPOINT: etcd!.endpoint,
      ZOOKEEPER_HOSTS: `127.0.0.1:${zookeeperProxy!.port}`,
      CONSUL_AGENT: `127.0.0.1:${consul!.port}`,
    });
    try {
      for (const backend of OUTSIDE) await program.lifecycle(backend);
      program.done();
      await program.line(/^ok consul-double held pack-double:web:8080$/);
      await program.line(/^ok follower saw pack-bridge:web:80 and planned its HAProxy slot$/);
      await program.line(/^ok render wrote the upstream of pack-bridge:web:80$/);
      await program.line(/^ok bridge registered pack-bridge:web:80 in etcd$/);
      const exit = await Promise.race([
        program.exit,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('the program did not exit in 60 s: a handle left open')), 60_000),
        ),
      ]);
      expect(exit.code, show('node out/consumer.js', exit)).toBe(0);
    } finally {
      program.kill();
    }
    // It exited on its own: registrations, registries and the bridge released every socket and timer.

    // Read back from etcd itself: the bridge stopped without deregistering, so the key lives until its lease ends.
    const client = new Etcd3({ hosts: etcd!.endpoint });
    try {
      const deregistered = await client.getAll().prefix('/pack/').keys();
      expect(deregistered).toEqual([]);
      const bridged = await client.getAll().prefix('/pack-bridge/').strings();
      expect(Object.keys(bridged)).toEqual(['/pack-bridge/web/pack-bridge:web:80']);
      expect(JSON.parse(bridged['/pack-bridge/web/pack-bridge:web:80']!)).toMatchObject({
        name: 'web',
        address: '127.0.0.1',
        port: 32768,
      });
    } finally {
      client.close();
    }
  }, 350_000);
});
