/**
 * The library packages installed the way a user installs them: `pnpm pack` each one, `npm install` the tarballs
 * into a fresh project outside the workspace (their dependencies come from the npm registry), compile a program
 * against them with `tsc --strict` and `skipLibCheck: false`, and run it against real etcd and ZooKeeper, the
 * packed Consul agent double and a bridge over a synthetic Docker engine (`consumer.ts`).
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdServer } from '../harness/etcd.js';
import { removeDir, tempDir } from '../harness/process.js';
import { startZookeeper, type ZookeeperServer } from '../harness/zookeeper.js';

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
    })(),
    (async () => {
      zookeeper = await startZookeeper();
    })(),
  ]);
  if (installed.code !== 0) throw new Error(show('npm install', installed));
}, 600_000);

afterAll(async () => {
  await Promise.all([etcd?.close(), zookeeper?.close()]);
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

    // The compiled program: register, list, deregister in etcd, ZooKeeper and Consul, and a bridge into etcd.
    const program = await run(process.execPath, ['out/consumer.js'], {
      cwd: project,
      timeoutMs: 120_000,
      env: userEnv({ ETCD_ENDPOINT: etcd!.endpoint, ZOOKEEPER_CONNECT: zookeeper!.connectString }),
    });
    expect(program.code, show('node out/consumer.js', program)).toBe(0);
    expect(program.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(/^ok etcd register list deregister close \(etcd:\/\/127\.0\.0\.1:\d+\/pack\)$/),
      expect.stringMatching(
        /^ok zookeeper register list deregister close \(zookeeper:\/\/127\.0\.0\.1:\d+\/pack\)$/,
      ),
      expect.stringMatching(/^ok consul register list deregister close \(http:\/\/127\.0\.0\.1:\d+\)$/),
      'ok follower saw pack-bridge:web:80 and planned its HAProxy slot',
      'ok render wrote the upstream of pack-bridge:web:80',
      'ok bridge registered pack-bridge:web:80 in etcd',
    ]);
    // It exited on its own (within run()'s bound): close() and bridge.stop() released every socket and timer.

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
