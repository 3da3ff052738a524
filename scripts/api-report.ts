// The public API of every package, one report per entry point of its `exports` (packages/<name>/etc/*.api.md),
// made by Microsoft's API Extractor from the built .d.ts files.
//
//   node scripts/api-report.ts            # check (in `pnpm lint`): fails when an API differs from its report
//   node scripts/api-report.ts --update   # rewrite the reports after an intended change (`pnpm api-report`)
//
// A check fails on any difference: a new export, a removed one, a changed signature, a new entry point
// without a report, or a type the API uses but does not export. Review the diff of etc/ in the commit.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Extractor, ExtractorConfig, ExtractorLogLevel } from '@microsoft/api-extractor';

const update = process.argv.includes('--update');
const root = new URL('../', import.meta.url).pathname;
const temp = join(tmpdir(), `registrar-api-report-${process.pid}`);
mkdirSync(temp, { recursive: true });

interface Manifest {
  readonly name: string;
  readonly private?: boolean;
  readonly exports?: Record<string, string | { readonly types?: string }>;
}

/** `@registrar/core` + `./testing/fuzz` → `core-testing-fuzz`. */
const reportName = (name: string, subpath: string) =>
  [name.replace(/^@registrar\//, ''), ...subpath.replace(/^\.\/?/, '').split('/')].filter(Boolean).join('-');

let failed = 0;
let checked = 0;
const expected = new Set<string>();
for (const dir of readdirSync(join(root, 'packages')).sort()) {
  const folder = join(root, 'packages', dir);
  const manifest = JSON.parse(readFileSync(join(folder, 'package.json'), 'utf8')) as Manifest;
  for (const [subpath, target] of Object.entries(manifest.exports ?? {})) {
    const types = typeof target === 'string' ? undefined : target.types;
    if (types === undefined) continue; // package.json and other non-code entries
    const name = reportName(manifest.name, subpath);
    if (update) mkdirSync(join(folder, 'etc'), { recursive: true });
    expected.add(join(folder, 'etc', `${name}.api.md`));
    const config = ExtractorConfig.prepare({
      configObject: {
        projectFolder: folder,
        mainEntryPointFilePath: join(folder, types),
        compiler: { tsconfigFilePath: join(folder, 'tsconfig.json') },
        apiReport: {
          enabled: true,
          reportFileName: name,
          reportFolder: join(folder, 'etc'),
          reportTempFolder: join(temp, dir),
        },
        docModel: { enabled: false },
        dtsRollup: { enabled: false },
        tsdocMetadata: { enabled: false },
        messages: {
          compilerMessageReporting: { default: { logLevel: ExtractorLogLevel.Warning } },
          extractorMessageReporting: {
            default: { logLevel: ExtractorLogLevel.Warning, addToApiReportFile: true },
            // No release tags (@public/@beta): the entry point itself says what is public.
            'ae-missing-release-tag': { logLevel: ExtractorLogLevel.None },
            'ae-undocumented': { logLevel: ExtractorLogLevel.None },
            // A subpath may use the root's types (`Service` in /kit): only the root must name all it uses.
            ...(subpath !== '.' && { 'ae-forgotten-export': { logLevel: ExtractorLogLevel.None } }),
          },
          // The comments are written for people, not for TSDoc's parser.
          tsdocMessageReporting: { default: { logLevel: ExtractorLogLevel.None } },
        },
      },
      configObjectFullPath: join(folder, 'api-extractor.json'),
      packageJsonFullPath: join(folder, 'package.json'),
    });
    const result = Extractor.invoke(config, {
      localBuild: update,
      messageCallback: (message) => {
        // Warnings are written into the report itself, where a reviewer sees them; only errors are shown.
        if (message.logLevel !== ExtractorLogLevel.Error) message.logLevel = ExtractorLogLevel.None;
      },
    });
    checked += 1;
    if (!result.succeeded || (!update && result.apiReportChanged)) {
      failed += 1;
      const committed = join(folder, 'etc', `${name}.api.md`);
      const current = join(temp, dir, `${name}.api.md`);
      if (existsSync(current)) {
        spawnSync('diff', ['-u', existsSync(committed) ? committed : '/dev/null', current], {
          stdio: 'inherit',
        });
      }
      console.error(
        `${manifest.name}${subpath === '.' ? '' : subpath.slice(1)}: its API differs from packages/${dir}/etc/${name}.api.md (see the diff above); if intended, run pnpm api-report and commit the report`,
      );
    }
  }
}
// A report whose entry point is gone is stale.
for (const dir of readdirSync(join(root, 'packages'))) {
  let files: string[] = [];
  try {
    files = readdirSync(join(root, 'packages', dir, 'etc')).filter((file) => file.endsWith('.api.md'));
  } catch {
    continue;
  }
  for (const file of files) {
    const path = join(root, 'packages', dir, 'etc', file);
    if (expected.has(path)) continue;
    if (update) rmSync(path);
    else {
      failed += 1;
      console.error(
        `packages/${dir}/etc/${file} belongs to no entry point in exports: remove it (pnpm api-report)`,
      );
    }
  }
}
rmSync(temp, { recursive: true, force: true });
if (failed > 0) process.exit(1);
console.log(`api-report: ${checked} entry points ${update ? 'written' : 'match their reports'}`);
