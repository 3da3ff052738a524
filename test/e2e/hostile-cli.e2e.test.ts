/**
 * Hostile command lines and credential files through the built CLI (issue 5, scenario 8): exit code 2,
 * exactly one stderr line naming the problem, and no credential value in any output.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../harness/bridge.js';

const SECRET = 's3cr3t-Pa55-9f8e7d';
const dir = mkdtempSync(join(tmpdir(), 'registrar-hostile-'));
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const empty = file('empty', '');
const missing = join(dir, 'missing');
const unreadable = file('unreadable', `user:${SECRET}\n`);
chmodSync(unreadable, 0o000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Credentials that could leak must not come from the developer's environment either.
const clean: NodeJS.ProcessEnv = {
  ETCD_USERNAME: '',
  ETCD_PASSWORD: '',
  ETCD_PASSWORD_FILE: '',
  ZOOKEEPER_AUTH: '',
  ZOOKEEPER_AUTH_FILE: '',
  CONSUL_HTTP_TOKEN: '',
  CONSUL_HTTP_TOKEN_FILE: '',
};

interface Case {
  readonly name: string;
  readonly args: string[];
  readonly env?: NodeJS.ProcessEnv;
  /** What the one line must say. */
  readonly says: RegExp;
}

const NODE = ['--node-id', 'x'];
const cases: Case[] = [
  // URIs
  { name: 'unknown scheme', args: ['redis://localhost:6379'], says: /unknown registry URI/ },
  { name: 'no URI at all', args: [], says: /missing required argument/ },
  { name: 'port out of range', args: ['etcd://localhost:99999/x'], says: /port "99999"/ },
  { name: 'bad percent-encoding', args: ['etcd://localhost:2379/%zz'], says: /percent-encoding/ },
  { name: 'credentials in the URI', args: [`etcd://root:${SECRET}@localhost:2379`], says: /credentials/ },
  { name: 'credentials in a zk URI', args: [`zk://u:${SECRET}@localhost:2181`], says: /credentials/ },
  { name: 'newline in a URI', args: ['etcd://local\nhost:2379/x'], says: /not a valid host name/ },
  { name: 'huge URI', args: [`etcd://${'h,'.repeat(20_000)}h`], says: /longer than 4096/ },
  { name: 'consul host', args: [...NODE, 'consul://%zz'], says: /not a valid host/ },
  { name: 'etcd layout', args: [...NODE, 'etcd://localhost:2379/x?layout=nope'], says: /unknown layout/ },
  { name: 'zk IPv6 literal', args: [...NODE, 'zk://[::1]:2181/x'], says: /IPv6/ },
  // Option values
  {
    name: '--ttl not a number',
    args: ['--ttl', 'abc', 'etcd://localhost:2379'],
    says: /invalid --ttl "abc"/,
  },
  {
    name: '--resync overflows timers',
    args: ['--resync', '1e12', 'etcd://h:2379'],
    says: /invalid --resync/,
  },
  { name: '--ip unspecified', args: ['--ip', '0.0.0.0', 'etcd://h:2379'], says: /unspecified address/ },
  {
    name: '--ip garbage',
    args: ['--ip', 'not\nan ip', 'etcd://h:2379'],
    says: /invalid --ip "not\\u000aan ip"/,
  },
  {
    name: '--tags control chars',
    args: ['--tags', 'a,b\u0007', 'etcd://h:2379'],
    says: /control characters/,
  },
  {
    name: '--deregister',
    args: ['--deregister', 'sometimes', 'etcd://h:2379'],
    says: /invalid --deregister/,
  },
  { name: '--metrics-addr', args: ['--metrics-addr', 'nowhere', 'etcd://h:2379'], says: /--metrics-addr/ },
  { name: 'unknown option', args: ['--bogus\nline', 'etcd://h:2379'], says: /unknown option/ },
  {
    name: 'bad boolean in the environment',
    args: ['etcd://h:2379'],
    env: { REGISTRAR_CLEANUP: 'maybe' },
    says: /REGISTRAR_CLEANUP/,
  },
  // Credentials files
  {
    name: 'ETCD_PASSWORD_FILE missing',
    args: [...NODE, 'etcd://127.0.0.1:1/x'],
    env: { ETCD_USERNAME: 'root', ETCD_PASSWORD_FILE: missing },
    says: /ETCD_PASSWORD_FILE.*ENOENT/,
  },
  {
    name: 'ETCD_PASSWORD_FILE is a directory',
    args: [...NODE, 'etcd://127.0.0.1:1/x'],
    env: { ETCD_USERNAME: 'root', ETCD_PASSWORD_FILE: dir },
    says: /ETCD_PASSWORD_FILE.*EISDIR/,
  },
  {
    name: 'ETCD_PASSWORD_FILE empty',
    args: [...NODE, 'etcd://127.0.0.1:1/x'],
    env: { ETCD_USERNAME: 'root', ETCD_PASSWORD_FILE: empty },
    says: /ETCD_PASSWORD_FILE.*empty/,
  },
  {
    name: 'ETCD_PASSWORD without a user',
    args: [...NODE, 'etcd://127.0.0.1:1/x'],
    env: { ETCD_PASSWORD: SECRET },
    says: /ETCD_USERNAME/,
  },
  {
    name: 'ETCD_CACERT missing',
    args: [...NODE, 'etcds://127.0.0.1:1/x'],
    env: { ETCD_CACERT: missing },
    says: /ETCD_CACERT.*ENOENT/,
  },
  {
    name: 'ZOOKEEPER_AUTH_FILE is a directory',
    args: [...NODE, 'zk://127.0.0.1:1/x'],
    env: { ZOOKEEPER_AUTH_FILE: dir },
    says: /ZOOKEEPER_AUTH_FILE.*EISDIR/,
  },
  {
    name: 'ZOOKEEPER_AUTH_FILE empty',
    args: [...NODE, 'zk://127.0.0.1:1/x'],
    env: { ZOOKEEPER_AUTH_FILE: empty },
    says: /ZOOKEEPER_AUTH_FILE.*empty/,
  },
  {
    name: 'ZOOKEEPER_AUTH malformed',
    args: [...NODE, 'zk://127.0.0.1:1/x'],
    env: { ZOOKEEPER_AUTH: `${SECRET}\nsecond` },
    says: /user:password/,
  },
  {
    name: 'CONSUL_HTTP_TOKEN_FILE empty',
    args: [...NODE, 'consul://127.0.0.1:1'],
    env: { CONSUL_HTTP_TOKEN_FILE: empty },
    says: /CONSUL_HTTP_TOKEN_FILE.*empty/,
  },
  {
    name: 'CONSUL_HTTP_TOKEN_FILE missing',
    args: [...NODE, 'consul://127.0.0.1:1'],
    env: { CONSUL_HTTP_TOKEN_FILE: missing },
    says: /CONSUL_HTTP_TOKEN_FILE.*ENOENT/,
  },
  {
    name: 'CONSUL_CACERT missing',
    args: [...NODE, 'consul-tls://127.0.0.1:1'],
    env: { CONSUL_CACERT: missing, CONSUL_HTTP_TOKEN: SECRET },
    says: /CONSUL_CACERT.*ENOENT/,
  },
];
if (process.getuid?.() !== 0) {
  // Root reads a mode-000 file anyway, so this case only means something for other users.
  cases.push({
    name: 'ZOOKEEPER_AUTH_FILE unreadable',
    args: [...NODE, 'zk://127.0.0.1:1/x'],
    env: { ZOOKEEPER_AUTH_FILE: unreadable },
    says: /ZOOKEEPER_AUTH_FILE.*EACCES/,
  });
}

describe('hostile command lines and credentials: exit 2 with one line', () => {
  it.concurrent.each(cases)('$name', async ({ args, env, says }) => {
    const result = await runCli(args, { ...clean, ...env });
    expect(result.code, JSON.stringify(result)).toBe(2);
    expect(result.stderr, JSON.stringify(result)).toHaveLength(1);
    const line = result.stderr[0] ?? '';
    expect(line).toMatch(/^registrar: /);
    expect(line).toMatch(says);
    expect(line.length).toBeLessThanOrEqual(700);
    expect(result.stdout).toEqual([]);
    const everything = JSON.stringify(result);
    expect(everything).not.toContain(SECRET);
  });
});
