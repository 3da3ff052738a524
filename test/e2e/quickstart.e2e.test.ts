// The README's first command, `bash scripts/quickstart`, end to end: it starts its own etcd (here on a free
// port), imports its demo image, runs registrar in the foreground, and on SIGINT stops registrar and that
// etcd and nothing else. It must not start a second Docker engine (REGISTRAR_QUICKSTART_DOCKERD=never) and
// it must find every tool already installed (it fails, rather than install anything: run scripts/bootstrap ci,
// as .ci/run does).
import { Etcd3 } from 'etcd3';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, until } from '@registrar/core/testing';
import { TEST_LABEL, uniqueName } from '../harness/containers.js';
import { docker, removeLabelled } from '../harness/docker.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const tag = randomBytes(3).toString('hex');
const runLabel = `${TEST_LABEL}.run=${tag}`;
const [labelKey, labelValue] = runLabel.split('=') as [string, string];
// A fresh image name, so that the script's import path runs and the test can remove what it created.
const image = `registrar-quickstart-test:${tag}`;

let script: ChildProcess | undefined;
let client: Etcd3 | undefined;
const pids: number[] = [];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

afterAll(async () => {
  client?.close();
  // Only if the test failed half-way: stop the script, then anything it left, by pid.
  const running = (p: ChildProcess) => p.exitCode === null && p.signalCode === null;
  if (script && running(script)) {
    script.kill('SIGINT');
    await until('quickstart to exit', () => !running(script!), 30_000).catch(() => script!.kill('SIGKILL'));
  }
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  await removeLabelled(runLabel);
  await docker
    .getImage(image)
    .remove({ force: true })
    .catch(() => undefined);
});

describe('bash scripts/quickstart', () => {
  it('runs registrar against an etcd it starts, and SIGINT stops both and only them', async () => {
    const wouldInstall = execFileSync('bash', ['scripts/bootstrap', '--dry-run', 'quickstart'], {
      cwd: ROOT,
      encoding: 'utf8',
    }).trim();
    expect(wouldInstall, 'scripts/bootstrap would install this first: run `bash scripts/bootstrap ci`').toBe(
      '',
    );

    const port = await freePort();
    const node = `qs-${tag}`;
    const child = spawn('bash', ['scripts/quickstart', '--', '--node-id', node, '--ttl', '5'], {
      cwd: ROOT,
      env: {
        ...process.env,
        REGISTRAR_QUICKSTART_ETCD_PORT: String(port),
        REGISTRAR_QUICKSTART_DOCKERD: 'never',
        REGISTRAR_QUICKSTART_IMAGE: image,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    script = child;
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      // 'close': the script's last lines are read by then ('exit' may come first).
      child.once('close', (code, signal) => resolve({ code, signal })),
    );

    // Bootstrap, pnpm install and build are no-ops on a prepared machine, but allow for a loaded one.
    await until(
      'the bridge to finish its first inventory',
      () => {
        if (child.exitCode !== null) throw new Error(`quickstart exited ${child.exitCode}:\n${output}`);
        return output.includes('docker inventory complete');
      },
      150_000,
    );
    expect(output).not.toContain('bootstrap: installing');
    expect(output).not.toContain('starting dockerd');
    expect(output).toContain(`importing the demo image ${image}`);
    expect(output).toContain(`etcdctl --endpoints 127.0.0.1:${port} get --prefix /services`);
    const started = /started etcd on 127\.0\.0\.1:(\d+), pid (\d+) \(data in (\S+)\/etcd,/.exec(output);
    expect(started?.[1]).toBe(String(port));
    const etcdPid = Number(started![2]);
    const tempDir = started![3]!;
    const registrarPid = Number(/INFO \((\d+)\): registrar starting/.exec(output)?.[1]);
    expect(registrarPid).toBeGreaterThan(0);
    pids.push(etcdPid, registrarPid);
    expect(alive(etcdPid)).toBe(true);
    expect(alive(registrarPid)).toBe(true);
    expect(output).toContain(`"node":"${node}"`); // the arguments after -- reached registrar

    // The line the script prints to try, with the image it imported (published on loopback here).
    const name = uniqueName('qs-web');
    const service = `qs-web-${tag}`;
    const container = await docker.createContainer({
      name,
      Image: image,
      Cmd: ['httpd', '-f', '-p', '80'],
      Env: [`SERVICE_NAME=${service}`],
      Labels: { [TEST_LABEL]: 'true', [labelKey]: labelValue },
      ExposedPorts: { '80/tcp': {} },
      HostConfig: { PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
    });
    await container.start();
    const hostPort = Number((await container.inspect()).NetworkSettings.Ports['80/tcp']?.[0]?.HostPort);

    client = new Etcd3({ hosts: `http://127.0.0.1:${port}` });
    const key = `/services/${service}/${node}:${name}:80`;
    let value: string | null = null;
    await until(`${key} in the quickstart's etcd`, async () => {
      value = await client!.get(key).string();
      return value !== null;
    });
    expect(JSON.parse(value!)).toMatchObject({ name: service, address: '127.0.0.1', port: hostPort, node });
    const page = await fetch(`http://127.0.0.1:${hostPort}/`);
    expect(await page.text()).toContain('hello from a container registered by registrar');
    client.close();
    client = undefined;

    // What the README's tour shows in the foreground: one INFO line per registration and per removal.
    const etcdTarget = `etcd://127.0.0.1:${port}/services`;
    const second = await docker.createContainer({
      name: uniqueName('qs-web'),
      Image: image,
      Cmd: ['httpd', '-f', '-p', '80'],
      Env: [`SERVICE_NAME=${service}`],
      Labels: { [TEST_LABEL]: 'true', [labelKey]: labelValue },
      ExposedPorts: { '80/tcp': {} },
      HostConfig: { PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
    });
    await second.start();
    const secondInfo = await second.inspect();
    const secondId = `${node}:${secondInfo.Name.replace(/^\//, '')}:80`;
    const secondPort = secondInfo.NetworkSettings.Ports['80/tcp']?.[0]?.HostPort;
    await until('the INFO line of its registration', () =>
      output.includes(
        `INFO (${registrarPid}): registered ${secondId} 127.0.0.1:${secondPort} in ${etcdTarget}`,
      ),
    );
    await second.remove({ force: true });
    await until('the INFO line of its removal', () =>
      output.includes(`INFO (${registrarPid}): deregistered ${secondId} from ${etcdTarget} (container died)`),
    );

    const dockerBefore = (await docker.info()) as { ID: string };
    child.kill('SIGINT');
    const { code, signal } = await exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(output).toContain(`stopped the etcd it started (pid ${etcdPid})`);
    expect(alive(etcdPid)).toBe(false);
    expect(alive(registrarPid)).toBe(false);
    expect(existsSync(tempDir)).toBe(false);
    // The engine it found running is still the same one, and the container still runs.
    expect(((await docker.info()) as { ID: string }).ID).toBe(dockerBefore.ID);
    expect((await container.inspect()).State.Running).toBe(true);
  }, 240_000);
});
