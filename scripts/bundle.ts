// The CLI as it ships: `packages/cli/bin/registrar.js`, one ESM bundle of the CLI, the adapters and their clients
// (the registry adapters, `lb`, `render`, `explain` and `check` stay chunks of their own, loaded only when
// used). A process that resolves, stats and reads a few files instead of ~900 opens its Docker event stream
// ~25 % sooner (docs/benchmarks.md). Run by `pnpm build` after `tsc -b`, from the compiled `dist/`.
//
// Left outside, resolved from the package's node_modules at run time: pino (and pino-pretty, loaded only for
// pretty output), and dockerode (loaded only for ssh:// engines).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const cli = fileURLToPath(new URL('../packages/cli/', import.meta.url));
const out = join(cli, 'bin');

// What CommonJS dependencies expect of their module scope, which an ESM chunk does not have.
const banner = [
  "import { createRequire as __registrarRequire } from 'node:module';",
  "import { dirname as __registrarDirname } from 'node:path';",
  "import { fileURLToPath as __registrarPath } from 'node:url';",
  'const require = __registrarRequire(import.meta.url);',
  'const __filename = __registrarPath(import.meta.url);',
  'const __dirname = __registrarDirname(__filename);',
].join(' ');

/**
 * Replace `dir`'s files with `files` without a moment where a file is missing or half written: a registrar
 * started meanwhile (the suite runs `bash scripts/quickstart`, which builds, while other tests start the CLI)
 * reads either the old file or the new one. Unchanged files are not touched; files no longer produced go last.
 */
function writeAtomically(
  dir: string,
  files: readonly { path: string; contents: Uint8Array }[],
  executable?: string,
): void {
  mkdirSync(dir, { recursive: true });
  const produced = new Set<string>();
  for (const { path, contents } of files) {
    produced.add(basename(path));
    if (existsSync(path) && Buffer.compare(readFileSync(path), contents) === 0) continue;
    const temporary = `${path}.${process.pid}.tmp`;
    writeFileSync(temporary, contents, { mode: basename(path) === executable ? 0o755 : 0o644 });
    renameSync(temporary, path);
  }
  for (const name of readdirSync(dir)) if (!produced.has(name)) rmSync(join(dir, name), { recursive: true });
}

const bundled = await build({
  entryPoints: { registrar: join(cli, 'dist/main.js') },
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  external: ['pino', 'pino-pretty', 'dockerode'],
  banner: { js: banner },
  logLevel: 'warning',
  write: false,
});
writeAtomically(out, bundled.outputFiles, 'registrar.js');

// etcd3 reads its gRPC definitions at load time from `${__dirname}/../proto`: beside `bin/`, in the package.
const etcdRequire = createRequire(join(cli, '../etcd/package.json'));
const protoSource = join(dirname(etcdRequire.resolve('etcd3/package.json')), 'proto');
writeAtomically(
  join(cli, 'proto'),
  readdirSync(protoSource).map((name) => ({
    path: join(cli, 'proto', name),
    contents: readFileSync(join(protoSource, name)),
  })),
);
