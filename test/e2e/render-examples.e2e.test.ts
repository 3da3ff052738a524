// The shipped templates in deploy/render/, rendered by the real `registrar render` from a real etcd, each read
// by its real consumer: nginx (`nginx -t`), HAProxy (`haproxy -c`), Prometheus (file_sd, its discovered
// targets), and glibc (`getent hosts` with the file as /etc/hosts, in a mount namespace of its own). One
// instance carries hostile values (quotes, newlines, `;`, `}` and `#` in its tags, metadata and id): each file
// must have exactly the structure the benign values give it, with no directive, server, target or host
// line more or less. The addresses are loopback ones: Prometheus tries to scrape what it discovers.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Registry } from '@registrar/core';
import { freePort, GiveUp, service, until } from '@registrar/core/testing';
import { createEtcdRegistry } from '@registrar/etcd';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { removeDir, startProcess, tempDir, type ServerProcess } from '@registrar/test-servers/process';
import { runCli, spawnBridge, type BridgeProcess } from '../harness/bridge.js';

const run = promisify(execFile);
const example = (name: string) => new URL(`../../deploy/render/${name}`, import.meta.url).pathname;

const HOSTILE_NAME = 'web"; }\n# x';
const HOSTILE_TAG = 'a "quoted"; } tag';
/** The hostile instance's id, as the registry holds it (`<node>:<container>:<port>`). */
const HOSTILE_ID = `node-1:${HOSTILE_NAME}:80`;

/**
 * nginx's config syntax, read the way nginx reads it: words (quoted ones with `\` escapes), `;`, `{`, `}`, and
 * `#` comments to the end of the line. Returns the directives, blocks nested.
 */
interface Directive {
  readonly words: string[];
  readonly block?: Directive[];
}
function parseNginx(text: string): Directive[] {
  const tokens: string[] = [];
  for (let i = 0; i < text.length;) {
    const c = text[i]!;
    if (/\s/.test(c)) i++;
    else if (c === '#') while (i < text.length && text[i] !== '\n') i++;
    else if (c === ';' || c === '{' || c === '}') tokens.push(text[i++]!);
    else if (c === '"' || c === "'") {
      let word = '';
      for (i++; text[i] !== c; i++) word += text[i] === '\\' ? text[++i] : text[i];
      i++;
      tokens.push(`"${word}`);
    } else {
      let word = '';
      while (i < text.length && !/[\s;{}#]/.test(text[i]!)) word += text[i++];
      tokens.push(word);
    }
  }
  const parse = (): Directive[] => {
    const out: Directive[] = [];
    let words: string[] = [];
    while (tokens.length > 0) {
      const token = tokens.shift()!;
      if (token === '}') return out;
      if (token === ';' || token === '{') {
        out.push(token === '{' ? { words, block: parse() } : { words });
        words = [];
      } else words.push(token);
    }
    return out;
  };
  return parse();
}

let etcd: EtcdServer;
let registry: Registry;
let dir: string;
let render: BridgeProcess;
let prometheus: ServerProcess | undefined;
const out = (name: string) => join(dir, 'out', name);

beforeAll(async () => {
  dir = tempDir('render-examples');
  mkdirSync(join(dir, 'out'));
  mkdirSync(join(dir, 'nginx-tmp'));
  etcd = await startEtcd();
  const prefix = '/examples';
  registry = createEtcdRegistry({ hosts: [etcd.endpoint], prefix, nodeId: 'node-1', ttl: 30 });
  const web = (container: string, address: string, extra: Parameters<typeof service>[0] = {}) =>
    service({
      name: 'web',
      node: 'node-1',
      address,
      port: 80,
      container: { id: container, name: container },
      ...extra,
    });
  await registry.register(web('web-1', '127.0.0.11', { tags: ['edge'], meta: { weight: '2' } }));
  await registry.register(
    web(HOSTILE_NAME, '127.0.0.12', {
      tags: [HOSTILE_TAG, 'backup'],
      meta: { weight: '3; }', note: 'line\n} server 10.6.6.6:80;' },
    }),
  );
  await registry.register(
    service({
      name: 'api',
      node: 'node-1',
      address: '::1',
      port: 8443,
      container: { id: 'api-1', name: 'api-1' },
      containerPort: 8443,
    }),
  );

  // What each check needs: a main nginx.conf including the upstreams, a main haproxy.cfg beside the servers.
  writeFileSync(
    join(dir, 'nginx.conf'),
    `pid ${dir}/nginx.pid;
events {}
http {
  client_body_temp_path ${dir}/nginx-tmp;
  proxy_temp_path ${dir}/nginx-tmp;
  fastcgi_temp_path ${dir}/nginx-tmp;
  uwsgi_temp_path ${dir}/nginx-tmp;
  scgi_temp_path ${dir}/nginx-tmp;
  include ${out('upstreams.conf')};
}
`,
  );
  writeFileSync(
    join(dir, 'haproxy.cfg'),
    // haproxy -c refuses a configuration without a listener (it "will not start"); -c binds nothing.
    'defaults\n  mode http\n  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\nfrontend f\n  bind 127.0.0.1:1\n  default_backend web\n',
  );
  const pairs = [
    [
      'nginx-upstreams.conf.liquid',
      'upstreams.conf',
      `nginx -t -q -p ${dir} -c ${dir}/nginx.conf -e ${dir}/nginx-error.log`,
    ],
    [
      'haproxy-servers.cfg.liquid',
      'servers.cfg',
      `haproxy -c -q -f ${dir}/haproxy.cfg -f ${out('servers.cfg')}`,
    ],
    ['prometheus-file-sd.json.liquid', 'targets.json', undefined],
    ['hosts.liquid', 'hosts', undefined],
  ] as const;
  render = spawnBridge([
    'render',
    ...pairs.flatMap(([template, file, check]) => [
      '--template',
      example(template),
      '--out',
      out(file),
      ...(check ? ['--check', check] : []),
    ]),
    `etcd://127.0.0.1:${etcd.port}${prefix}`,
  ]);
  for (const [, file] of pairs) {
    await render.waitForLog(`${file} written`, (l) => l.msg === `wrote ${out(file)}`);
  }
}, 60_000);

afterAll(async () => {
  await render?.kill();
  await prometheus?.kill();
  await registry?.close({ deregister: true });
  await etcd?.close();
  if (dir) removeDir(dir);
});

describe('deploy/render examples, rendered from etcd with a hostile instance among the benign ones', () => {
  it('nginx upstreams: nginx -t passed, and the servers are exactly the instances', () => {
    expect(parseNginx(readFileSync(out('upstreams.conf'), 'utf8'))).toEqual([
      {
        words: ['upstream', 'web'],
        block: [
          // In id order. The hostile instance: its weight is no integer (1), its tag `backup` a tag like any.
          { words: ['server', '127.0.0.12:80', 'weight=1', 'backup'] },
          { words: ['server', '127.0.0.11:80', 'weight=2'] },
        ],
      },
      { words: ['upstream', 'api'], block: [{ words: ['server', '[::1]:8443'] }] },
    ]);
    // The id went into a comment, whole and on one line.
    expect(readFileSync(out('upstreams.conf'), 'utf8')).toContain('# "node-1:web\\"; }_# x:80"\n');
  });

  it('HAProxy servers: haproxy -c passed, and the servers are exactly the instances', () => {
    const lines = readFileSync(out('servers.cfg'), 'utf8')
      .split('\n')
      .map((line) => line.replace(/#.*/, '').trim())
      .filter((line) => line !== '');
    expect(lines).toEqual([
      'backend web',
      'balance roundrobin',
      'server node-1-web-------x-80 127.0.0.12:80 check weight 1',
      'server node-1-web-1-80 127.0.0.11:80 check weight 2',
      'backend api',
      'balance roundrobin',
      'server node-1-api-1-8443 [::1]:8443 check',
    ]);
  });

  it('Prometheus file_sd: a real Prometheus discovers exactly the three targets, hostile labels as written', async () => {
    const port = await freePort();
    const promDir = join(dir, 'prometheus');
    mkdirSync(promDir);
    writeFileSync(
      join(promDir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1h\nscrape_configs:\n  - job_name: services\n    file_sd_configs:\n      - files: ['${out('targets.json')}']\n`,
    );
    const started = startProcess(
      'prometheus',
      [
        `--config.file=${join(promDir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(promDir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { dir: promDir, name: 'prometheus' },
    );
    prometheus = started;
    type Target = { discoveredLabels: Record<string, string> };
    let targets: Target[] = [];
    await until(
      'Prometheus listing three targets',
      async () => {
        if (started.child.exitCode !== null) throw new GiveUp(`prometheus exited (log: ${started.logFile})`);
        const answer = await fetch(`http://127.0.0.1:${port}/api/v1/targets?state=active`).catch(
          () => undefined,
        );
        if (!answer?.ok) return false;
        targets = ((await answer.json()) as { data: { activeTargets: Target[] } }).data.activeTargets;
        return targets.length === 3;
      },
      60_000,
    );
    const seen = targets
      .map(({ discoveredLabels: l }) => [l.__address__, l.service, l.instance_id, l.tags])
      .sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1));
    expect(seen).toEqual([
      ['127.0.0.11:80', 'web', 'node-1:web-1:80', 'edge'],
      ['127.0.0.12:80', 'web', HOSTILE_ID, `${HOSTILE_TAG},backup`],
      // Prometheus drops a label whose value is empty.
      ['[::1]:8443', 'api', 'node-1:api-1:8443', undefined],
    ]);
  }, 90_000);

  it('hosts lines: glibc resolves each service to its instances and each instance to itself, nothing more', async () => {
    const file = out('hosts');
    const names = [
      'web.service.internal',
      'node-1-web-1-80.web.service.internal',
      'node-1-web-------x-80.web.service.internal',
      'api.service.internal',
    ];
    // Its own mount namespace: /etc/hosts is the rendered file for getent only.
    const { stdout } = await run('unshare', [
      '--mount',
      'sh',
      '-c',
      `mount --bind ${file} /etc/hosts && for n in ${names.join(' ')}; do echo "$n: $(getent ahosts $n | awk '{print $1}' | sort -u | tr '\\n' ' ')"; done`,
    ]);
    expect(
      stdout
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => line.trimEnd()),
    ).toEqual([
      'web.service.internal: 127.0.0.11 127.0.0.12',
      'node-1-web-1-80.web.service.internal: 127.0.0.11',
      'node-1-web-------x-80.web.service.internal: 127.0.0.12',
      'api.service.internal: ::1',
    ]);
    const lines = readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'));
    expect(lines).toHaveLength(3);
  });

  it('a template that does not parse: exit 2 with one line naming the file and the line, nothing written', async () => {
    const template = join(dir, 'broken.liquid');
    writeFileSync(
      template,
      'upstream web {\n{% for i in services.web %}\n  server {{ i.endpoint | nginx_quote }};\n',
    );
    const result = await runCli([
      'render',
      '--template',
      template,
      '--out',
      out('broken.conf'),
      `etcd://127.0.0.1:${etcd.port}/examples`,
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toEqual([
      `registrar: template ${template}: undefined filter: nginx_quote, file:${template}, line:3, col:10`,
    ]);
    expect(existsSync(out('broken.conf'))).toBe(false);
  });
});
