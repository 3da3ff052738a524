// The CLI as it ships: `packages/cli/bin/registrar.js`, one ESM bundle of the CLI, the adapters and their clients
// (the registry adapters, `lb`, `render`, `explain` and `check` stay chunks of their own, loaded only when
// used). A process that resolves, stats and reads a few files instead of ~900 opens its Docker event stream
// ~25 % sooner (docs/benchmarks.md). Run by `pnpm build` after `tsc -b`, from the compiled `dist/`.
//
// Left outside, resolved from the package's node_modules at run time: pino (and pino-pretty, loaded only for
// pretty output), and dockerode (loaded only for ssh:// engines).
import { chmodSync, cpSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
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

rmSync(out, { recursive: true, force: true });
await build({
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
});
chmodSync(join(out, 'registrar.js'), 0o755);

// etcd3 reads its gRPC definitions at load time from `${__dirname}/../proto`: beside `bin/`, in the package.
const etcdRequire = createRequire(join(cli, '../etcd/package.json'));
const etcd3 = dirname(etcdRequire.resolve('etcd3/package.json'));
const proto = join(cli, 'proto');
rmSync(proto, { recursive: true, force: true });
mkdirSync(proto);
cpSync(join(etcd3, 'proto'), proto, { recursive: true });
