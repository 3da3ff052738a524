// The README and docs/ stay true to the code: the README fits on a few screens and answers "what happens when
// the host dies" early in its section; every relative link (file and #anchor) resolves; docs/cli.md lists
// exactly the options and variables each command's --help lists, and its exit code table is the one --help
// prints; every environment variable the docs name is one something here reads.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CLI } from '../harness/bridge.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

const DOCS = readdirSync(join(ROOT, 'docs'))
  .filter((f) => f.endsWith('.md'))
  .map((f) => `docs/${f}`);
const PACKAGE_READMES = readdirSync(join(ROOT, 'packages'))
  .map((p) => `packages/${p}/README.md`)
  .filter((p) => existsSync(join(ROOT, p)));
const PAGES = ['README.md', ...DOCS, ...PACKAGE_READMES];

/** Markdown without its fenced code blocks (links and headings inside them are not links or headings). */
const prose = (text: string) => text.replace(/^```[\s\S]*?^```$/gm, '');

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const match of prose(markdown).matchAll(/^#{1,6} (.+)$/gm)) {
    const base = match[1]!
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    result.add(n === 0 ? base : `${base}-${n}`);
  }
  return result;
}

function help(...args: string[]): string {
  return execFileSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, DOCKER_HOST: 'unix:///nonexistent.sock' },
  });
}

/** The options and variables of one `--help`: `--ttl`, `-h`, `REGISTRAR_TTL`... */
function helpOptions(text: string) {
  const block = text.slice(text.indexOf('Options:')).split('\n\n')[0] ?? '';
  const flags = new Set<string>();
  for (const m of block.matchAll(/^ {2}(?:(-\w), )?(--[a-z-]+)/gm)) {
    if (m[1] !== undefined) flags.add(m[1]);
    flags.add(m[2]!);
  }
  const variables = new Set(
    [...block.replace(/\s+/g, ' ').matchAll(/env: (REGISTRAR_[A-Z_]+)/g)].map((m) => m[1]!),
  );
  return { flags, variables };
}

/** The rows of the options table in one `## ` section of docs/cli.md: flags and variables. */
function documentedOptions(section: string) {
  const rows = section.split('\n').filter((l) => /^\| `-/.test(l));
  const flags = new Set(
    rows.flatMap((row) => [...row.split('|')[1]!.matchAll(/`(--?[a-z-]+)/g)].map((m) => m[1]!)),
  );
  const variables = new Set(
    rows.flatMap((row) => [...(row.split('|')[2] ?? '').matchAll(/REGISTRAR_[A-Z_]+/g)].map((m) => m[0])),
  );
  return { flags, variables };
}

function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  expect(start, `docs/cli.md has a section "## ${heading}"`).toBeGreaterThan(0);
  const end = markdown.indexOf('\n## ', start + 1);
  return markdown.slice(start, end < 0 ? undefined : end);
}

describe('README', () => {
  it('fits in about 200 lines, each at most 110 characters outside tables and code', () => {
    const readme = read('README.md');
    expect(readme.split('\n').length).toBeLessThanOrEqual(200);
    const long = prose(readme)
      .split('\n')
      .filter((l) => !l.startsWith('|') && [...l].length > 110);
    expect(long).toEqual([]);
  });

  it('answers "what happens when the host dies, at default settings" in the first screenful of its section', () => {
    const readme = read('README.md');
    const start = readme.indexOf('## What happens when');
    expect(start).toBeGreaterThan(0);
    const screenful = readme.slice(start).split('\n').slice(0, 40).join('\n');
    expect(screenful).toContain('default settings');
    expect(screenful).toMatch(/\*\*The host dies\*\*/);
  });

  it('keeps the quick start to its two commands', () => {
    const quick = section(read('README.md'), 'Quick start');
    const commands = /```sh\n([\s\S]*?)```/
      .exec(quick)?.[1]
      ?.split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(commands).toEqual(['bash scripts/quickstart', 'bash .ci/run']);
  });
});

describe('links', () => {
  it.each(PAGES)('every relative link in %s resolves, anchors included', (page) => {
    const markdown = read(page);
    const broken: string[] = [];
    for (const match of prose(markdown).matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = match[1]!;
      if (/^[a-z]+:/i.test(link)) continue;
      const [path = '', anchor] = link.split('#');
      const target = path === '' ? join(ROOT, page) : resolve(dirname(join(ROOT, page)), path);
      if (!existsSync(target)) {
        broken.push(`${link} (no ${relative(ROOT, target)})`);
        continue;
      }
      if (
        anchor !== undefined &&
        !(
          target.endsWith('.md') &&
          statSync(target).isFile() &&
          anchors(readFileSync(target, 'utf8')).has(anchor)
        )
      ) {
        broken.push(`${link} (no heading #${anchor} in ${relative(ROOT, target)})`);
      }
    }
    expect(broken).toEqual([]);
  });
});

describe('docs/cli.md and --help', () => {
  const cli = read('docs/cli.md');
  it.each([
    ['Options', ['--help']],
    ['`registrar explain`', ['explain', '--help']],
    ['`registrar lb`', ['lb', '--help']],
    ['`registrar render`', ['render', '--help']],
  ])('the table of "## %s" lists exactly the options and variables of registrar %j', (heading, args) => {
    const fromHelp = helpOptions(help(...args));
    const documented = documentedOptions(section(cli, heading));
    expect([...documented.flags].sort()).toEqual([...fromHelp.flags].sort());
    expect([...documented.variables].sort()).toEqual([...fromHelp.variables].sort());
  });

  it('registrar check takes the bridge’s options, as the docs say', () => {
    expect(helpOptions(help('check', '--help'))).toEqual(helpOptions(help('--help')));
  });

  it('the exit code table is the one --help prints', () => {
    const printed = help('--help');
    const rows = [...printed.slice(printed.indexOf('Exit codes:')).matchAll(/^ {2}(\d) {2}(.+)$/gm)].map(
      (m) => [m[1], m[2]],
    );
    expect(rows.map(([code]) => code)).toEqual(['0', '1', '2']);
    const documented = [...section(cli, 'Exit codes').matchAll(/^\| (\d) \| (.+) \|$/gm)].map((m) => [
      m[1],
      m[2],
    ]);
    expect(documented).toEqual(rows);
  });
});

describe('environment variables named in the docs', () => {
  const docs = PAGES.map(read).join('\n');
  const files = (dirs: string[]) =>
    dirs
      .flatMap((dir) => walk(join(ROOT, dir)))
      .filter((f) => !/\.test\.ts$/.test(f))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
  const code = files(['packages']);
  const deploy = files(['deploy', 'scripts', '.ci']) + read('Dockerfile') + read('docker-compose.yml');

  it('every REGISTRAR_* variable is an option’s (in some --help) or one the scripts, deploy files or CI read', () => {
    const inHelp = [['--help'], ['explain', '--help'], ['lb', '--help'], ['render', '--help']]
      .map((args) => help(...args))
      .join('\n')
      .replace(/\s+/g, ' ');
    const named = new Set([...docs.matchAll(/\bREGISTRAR_[A-Z][A-Z0-9_]*[A-Z0-9]\b/g)].map((m) => m[0]));
    expect([...named].filter((v) => !inHelp.includes(v) && !deploy.includes(v))).toEqual([]);
    // And every option's variable is documented.
    const options = new Set([...inHelp.matchAll(/env: (REGISTRAR_[A-Z_]+)/g)].map((m) => m[1]!));
    expect([...options].filter((v) => !named.has(v))).toEqual([]);
  });

  it('every ETCD_*, ZOOKEEPER_*, CONSUL_* variable is one the packages read, and each the adapters read is in docs/cli.md', () => {
    const name = '(?:ETCD|ZOOKEEPER|CONSUL)_[A-Z][A-Z_]*[A-Z]';
    const readByCode = new Set(
      [...code.matchAll(new RegExp(`'(${name})'|env\\.(${name})\\b`, 'g'))].map((m) => m[1] ?? m[2]!),
    );
    // A secret read with readSecret(env, NAME) also comes from NAME_FILE.
    for (const v of [...readByCode]) readByCode.add(`${v}_FILE`);
    // The Consul double's CONSUL_DOUBLE_<OPTION> variables come from its options, as REGISTRAR_<OPTION> do.
    const named = new Set(
      [...docs.matchAll(new RegExp(`\\b${name}\\b`, 'g'))]
        .map((m) => m[0])
        .filter((v) => !v.startsWith('CONSUL_DOUBLE_')),
    );
    expect([...named].filter((v) => !readByCode.has(v))).toEqual([]);
    const adapters = files(['packages/etcd/src', 'packages/zookeeper/src', 'packages/consul/src']);
    const cliDoc = read('docs/cli.md');
    const readByAdapters = [...adapters.matchAll(new RegExp(`'(${name})'|env\\.(${name})\\b`, 'g'))].map(
      (m) => m[1] ?? m[2]!,
    );
    expect([...new Set(readByAdapters)].filter((v) => !cliDoc.includes(v))).toEqual([]);
  });

  it('every DOCKER_* variable is one Docker’s client library (docker-modem), registrar or a deploy file reads', () => {
    const require = createRequire(join(ROOT, 'packages/cli/package.json'));
    const dockerode = dirname(require.resolve('dockerode/package.json'));
    const modem = readFileSync(
      join(dirname(createRequire(dockerode + '/').resolve('docker-modem/package.json')), 'lib/modem.js'),
      'utf8',
    );
    const named = new Set([...docs.matchAll(/\bDOCKER_[A-Z][A-Z_]*[A-Z]\b/g)].map((m) => m[0]));
    expect([...named].filter((v) => !modem.includes(v) && !code.includes(v) && !deploy.includes(v))).toEqual(
      [],
    );
  });
});

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name === 'dist' ? [] : walk(path);
    return [path];
  });
}
