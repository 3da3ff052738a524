/**
 * Hostile values through each format encoder. nginx and HAProxy (Debian's packages, on loopback) are given one
 * config holding every value, each in its own location / rule that answers with it: the config must load, and
 * each answer must be exactly its value (less what the format cannot carry), so no value closed its quotes,
 * ended its directive or reached into its neighbour's.
 */
import fc from 'fast-check';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { get } from '@registrar/test-servers/haproxy';
import { freePort, GiveUp, until } from '@registrar/core/testing';
import { startNginx, type NginxServer } from '@registrar/test-servers/nginx';
import { removeDir, startProcess, tempDir, type ServerProcess } from '@registrar/test-servers/process';
import { haproxy, hostname, integer, json, nginx, token } from './escape.js';

const SEED = 20_260_526;

// eslint-disable-next-line no-control-regex -- what the encoders must neutralise
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

const HOSTILE = [
  'plain',
  'a "quoted" value',
  "it's",
  'x; server 10.6.6.6:80;',
  '} server { listen 80; }',
  'two\nlines',
  'cr\rlf\r\n',
  '# not a comment',
  '$host ${HOME} $',
  'back\\slash\\',
  '\\"',
  "'\\''",
  'tab\there',
  'nul\u0000byte',
  'unicode é \u{1F600} \u2028 sep',
  '',
  ' ',
];

const nastyChar = fc.oneof(
  fc.integer({ min: 0, max: 0x1f }).map((n) => String.fromCharCode(n)),
  fc.constantFrom('"', "'", '\\', ';', '{', '}', '#', '$', ' ', '\n', '%', '[', ']', '\u0085', 'é', '\u2028'),
  fc.constantFrom('a', 'Z', '0', '-', '.', ':'),
);
const nasty = fc.string({ unit: nastyChar, maxLength: 24 });
const sample = (n: number) => fc.sample(nasty, { seed: SEED, numRuns: n });

/** What a format keeps of a value: everything but control characters (and nginx's `$`), as UTF-8 decodes it. */
const kept = (value: string, extra?: RegExp) => {
  let out = value.replace(CONTROL, '_');
  if (extra) out = out.replace(extra, '_');
  return Buffer.from(out, 'utf8').toString('utf8');
};

const values = [...HOSTILE, ...sample(150)];

describe('nginx encoder, read back by a real nginx', () => {
  let server: NginxServer | undefined;
  afterAll(() => server?.stop());

  it('every hostile value stays one quoted string: nginx loads the config and answers each value as written', async () => {
    server = await startNginx({
      http: (port) => `
  server {
    listen 127.0.0.1:${port};
    default_type text/plain;
    location = / { return 200 "up"; }
${values.map((value, i) => `    location = /v${i} { return 200 ${nginx(value)}; }  # ${nginx(value)}`).join('\n')}
  }`,
    });
    for (const [i, value] of values.entries()) {
      const answer = await get(`${server.url}/v${i}`);
      expect(answer, `value ${JSON.stringify(value)}`).toEqual({ status: 200, body: kept(value, /\$/g) });
    }
  });
});

describe('HAProxy encoder, read back by a real HAProxy', () => {
  let proc: ServerProcess | undefined;
  let dir: string | undefined;
  afterAll(async () => {
    await proc?.kill();
    if (dir) removeDir(dir);
  });

  it('every hostile value stays one word: HAProxy loads the config and answers each value as written', async () => {
    // `return ... string` refuses an empty word (a rule of that keyword, not of the quoting).
    const words = values.filter((value) => value !== '');
    dir = tempDir('haproxy-escape');
    const port = await freePort();
    const file = join(dir, 'haproxy.cfg');
    writeFileSync(
      file,
      `defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend f
  bind 127.0.0.1:${port}
${words.map((value, i) => `  http-request return status 200 content-type text/plain string ${haproxy(value)} if { path /v${i} }  # ${haproxy(value)}`).join('\n')}
  http-request return status 200 content-type text/plain string up
`,
    );
    const started = startProcess('haproxy', ['-db', '-f', file], { dir, name: 'haproxy' });
    proc = started;
    await until('haproxy up', async () => {
      if (started.child.exitCode !== null) throw new GiveUp(`haproxy exited (log: ${started.logFile})`);
      const answer = await get(`http://127.0.0.1:${port}/`);
      return 'status' in answer && answer.status === 200;
    });
    for (const [i, value] of words.entries()) {
      const answer = await get(`http://127.0.0.1:${port}/v${i}`);
      expect(answer, `value ${JSON.stringify(value)}`).toEqual({ status: 200, body: kept(value) });
    }
  });
});

describe('the other encoders', () => {
  it('json: any value is one JSON value that parses back to itself', () => {
    fc.assert(
      fc.property(fc.oneof(nasty, fc.string({ unit: 'grapheme' }), fc.integer(), fc.boolean()), (value) => {
        expect(JSON.parse(`[${json(value)}]`)).toEqual([value]);
      }),
      { seed: SEED, numRuns: 500 },
    );
    expect(json(undefined)).toBe('null');
  });

  it('hostname: any value is one valid host name (or `invalid`), never empty', () => {
    const label = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
    const valid = new RegExp(`^${label}(?:\\.${label})*$`);
    fc.assert(
      fc.property(fc.oneof(nasty, fc.string({ maxLength: 300 })), (value) => {
        const name = hostname(value);
        expect(name).toMatch(valid);
        expect(name.length).toBeLessThanOrEqual(253);
      }),
      { seed: SEED, numRuns: 1000 },
    );
    expect(hostname('node-1:Web_1:80')).toBe('node-1-web-1-80');
    expect(hostname('api.v1.example')).toBe('api.v1.example');
    expect(hostname(' ;# ')).toBe('invalid');
  });

  it('token: plain values pass, every other character becomes _', () => {
    expect(token('10.0.0.5:8080')).toBe('10.0.0.5:8080');
    expect(token('[fd00::1]:80')).toBe('[fd00::1]:80');
    expect(token('node-1:web_1:80')).toBe('node-1:web_1:80');
    expect(token(8080)).toBe('8080');
    expect(token(undefined)).toBe('');
    fc.assert(
      fc.property(nasty, (value) => {
        expect(token(value)).toMatch(/^[A-Za-z0-9._:/@+=,[\]-]*$/);
      }),
      { seed: SEED, numRuns: 1000 },
    );
  });

  it('integer: the value when it is a decimal integer, else the fallback, else nothing', () => {
    expect(integer('5', 1)).toBe(5);
    expect(integer(' -3 ', 1)).toBe(-3);
    expect(integer(7)).toBe(7);
    expect(integer('5;', 1)).toBe(1);
    expect(integer('1e3', 1)).toBe(1);
    expect(integer('} x', 'y')).toBe('');
    expect(integer(undefined)).toBe('');
    expect(integer('99999999999999999999', 2)).toBe(2);
  });
});
