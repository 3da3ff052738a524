// deploy/nomad/registrar.nomad.hcl. Nomad itself cannot run here: it is not in Debian's archive (`apt-cache
// policy nomad` has no candidate), HashiCorp's own apt repository and release downloads are out of reach, and
// no npm package ships it. So the job is read with HashiCorp's HCL parser (@cdktf/hcl2json: hashicorp/hcl
// compiled to WebAssembly), its Nomad interpolations are filled in the way a client node would (variables as
// `nomad job run -var` gives them, node attributes, the group's port), and the real registrar CLI runs on the
// resulting args and env: a flag renamed or removed in the CLI, a bad value, a mistyped interpolation or a
// service check on a path registrar does not serve fails here.
import { parse } from '@cdktf/hcl2json';
import type Docker from 'dockerode';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, until } from '@registrar/core/testing';
import { startBackend, type Backend } from '../harness/backends.js';
import { spawnBridge, runCli } from '../harness/bridge.js';
import { runContainer, uniqueName } from '../harness/containers.js';

const JOB_FILE = fileURLToPath(new URL('../../deploy/nomad/registrar.nomad.hcl', import.meta.url));

/** Attributes of the docker driver's `config` block (Nomad's drivers/docker/config.go, taskConfigSpec). */
const DOCKER_CONFIG_KEYS = new Set([
  ...['image', 'advertise_ipv6_address', 'args', 'auth', 'auth_soft_fail', 'cap_add', 'cap_drop', 'command'],
  ...['cpuset_cpus', 'cpu_hard_limit', 'cpu_cfs_period', 'devices', 'dns_search_domains', 'dns_options'],
  ...[
    'dns_servers',
    'entrypoint',
    'extra_hosts',
    'force_pull',
    'group_add',
    'healthchecks',
    'hostname',
    'init',
  ],
  ...['interactive', 'ipc_mode', 'ipv4_address', 'ipv6_address', 'isolation', 'labels', 'load', 'logging'],
  ...['mac_address', 'memory_hard_limit', 'mount', 'mounts', 'network_aliases', 'network_mode', 'runtime'],
  ...['pids_limit', 'pid_mode', 'ports', 'port_map', 'privileged', 'image_pull_timeout', 'readonly_rootfs'],
  ...['security_opt', 'shm_size', 'storage_opt', 'sysctl', 'tty', 'ulimit', 'uts_mode', 'userns_mode'],
  ...['volumes', 'volume_driver', 'work_dir'],
]);

// hcl2json's shape: every block is a list (labelled blocks a map of lists), every expression that is not a
// literal its source as a "${...}" template.
type Body = Record<string, unknown>;
const blocks = (body: Body, key: string) => (body[key] ?? []) as Body[];
const labelled = (body: Body, key: string) =>
  Object.entries((body[key] ?? {}) as Record<string, Body[]>).map(([label, [b]]) => ({ label, body: b! }));

interface Job {
  variables: { name: string; default?: string }[];
  job: Body;
  group: Body;
  task: Body;
  config: Body;
  env: Record<string, string>;
}

async function readJob(): Promise<Job> {
  const hcl = (await parse('registrar.nomad.hcl', readFileSync(JOB_FILE, 'utf8'))) as Body;
  const variables = labelled(hcl, 'variable').map(({ label, body }) => ({
    name: label,
    ...(typeof body.default === 'string' && { default: body.default }),
  }));
  const jobs = labelled(hcl, 'job');
  expect(jobs.map((j) => j.label)).toEqual(['registrar']);
  const job = jobs[0]!.body;
  const groups = labelled(job, 'group');
  expect(groups).toHaveLength(1);
  const group = groups[0]!.body;
  const tasks = labelled(group, 'task');
  expect(tasks).toHaveLength(1);
  const task = tasks[0]!.body;
  const [config] = blocks(task, 'config');
  const [env] = blocks(task, 'env');
  return { variables, job, group, task, config: config ?? {}, env: (env ?? {}) as Record<string, string> };
}

/** A Nomad duration ("15s", "2m", "1h30m") in seconds. */
function seconds(text: unknown): number {
  const parts = [...String(text).matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  expect(parts.map((p) => p[0]).join(''), `duration ${String(text)}`).toBe(String(text));
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600 } as const;
  return parts.reduce((sum, p) => sum + Number(p[1]) * unit[p[2] as keyof typeof unit], 0);
}

interface Node {
  /** `nomad job run -var name=value`. */
  vars: Record<string, string>;
  name: string;
  ip: string;
  /** Host port for each of the group's port labels (Nomad's static port, or one free here). */
  ports: Record<string, number>;
}

/**
 * The job's interpolations as Nomad fills them on `node`: `var.*` from -var or the variable's default (a
 * variable without either, or a -var nobody declared, is an error, as in Nomad), the node attributes this job
 * uses and NOMAD_{ADDR,IP,PORT}_<label> for the group's ports. Anything else is an error here.
 */
function interpolator(job: Job, node: Node) {
  const declared = new Map(job.variables.map((v) => [v.name, v.default]));
  for (const name of Object.keys(node.vars))
    expect(declared.has(name), `-var ${name} is declared`).toBe(true);
  const runtime: Record<string, string> = {
    'node.unique.name': node.name,
    'attr.unique.network.ip-address': node.ip,
  };
  for (const [label, port] of Object.entries(node.ports)) {
    runtime[`NOMAD_ADDR_${label}`] = `${node.ip}:${port}`;
    runtime[`NOMAD_IP_${label}`] = node.ip;
    runtime[`NOMAD_PORT_${label}`] = String(port);
  }
  return (value: unknown): string =>
    String(value).replace(/\$\{([^}]*)\}/g, (_, ref: string) => {
      if (ref.startsWith('var.')) {
        const name = ref.slice(4);
        const v = node.vars[name] ?? declared.get(name);
        if (v === undefined) throw new Error(`variable ${name} has no value: pass -var ${name}=...`);
        return v;
      }
      const v = runtime[ref];
      if (v === undefined)
        throw new Error(`\${${ref}} is not an interpolation this test knows Nomad to fill`);
      return v;
    });
}

/** The task's argv and environment on `node`. */
function resolve(job: Job, node: Node) {
  const fill = interpolator(job, node);
  const args = (job.config.args as unknown[]).map(fill);
  const env = Object.fromEntries(Object.entries(job.env).map(([k, v]) => [k, fill(v)]));
  return {
    args,
    env,
    image: fill(job.config.image),
    groupAdd: (job.config.group_add as unknown[]).map(fill),
  };
}

/** The group's port labels with their static ports. */
function staticPorts(job: Job): Record<string, number> {
  const [network] = blocks(job.group, 'network');
  return Object.fromEntries(
    labelled(network ?? {}, 'port').map(({ label, body }) => [label, Number(body.static)]),
  );
}

const OPERATOR_VARS = { image: 'registry.example.com/registrar:0.1.0', docker_gid: '998' };

let job: Job;
beforeAll(async () => {
  job = await readJob();
});

describe('deploy/nomad/registrar.nomad.hcl', () => {
  it('is a system job whose docker task mounts the socket read-only, hardened, with room to shut down', () => {
    expect(job.job.type).toBe('system');
    expect(job.task.driver).toBe('docker');
    const unknown = Object.keys(job.config).filter((k) => !DOCKER_CONFIG_KEYS.has(k));
    expect(unknown, 'keys the docker driver does not know').toEqual([]);

    const mounts = blocks(job.config, 'mount');
    expect(mounts).toEqual([
      { type: 'bind', source: '/var/run/docker.sock', target: '/var/run/docker.sock', readonly: true },
    ]);
    expect(job.config.readonly_rootfs).toBe(true);
    expect(job.config.cap_drop).toEqual(['ALL']);
    expect(job.config.security_opt).toContain('no-new-privileges');
    expect(job.config.privileged ?? false).toBe(false);
    // The socket's group comes from the operator: no default, so no silent fallback to gid 0.
    expect(job.config.group_add).toEqual(['${var.docker_gid}']);
    expect(job.variables.find((v) => v.name === 'docker_gid')).toEqual({ name: 'docker_gid' });
    expect(() => resolve(job, { vars: {}, name: 'n', ip: '10.0.0.7', ports: staticPorts(job) })).toThrow(
      /pass -var image=|pass -var docker_gid=/,
    );
    expect(
      resolve(job, { vars: OPERATOR_VARS, name: 'n', ip: '10.0.0.7', ports: staticPorts(job) }).groupAdd,
    ).toEqual(['998']);

    // The graceful shutdown is bounded to 10 s: Nomad must wait longer before it kills (its default is 5 s).
    expect(job.task.kill_signal).toBe('SIGTERM');
    expect(seconds(job.task.kill_timeout)).toBeGreaterThan(10);
    const [resources] = blocks(job.task, 'resources');
    expect(Number(resources?.cpu)).toBeGreaterThan(0);
    expect(Number(resources?.memory)).toBeGreaterThanOrEqual(64);
    const [restart] = blocks(job.group, 'restart');
    expect(restart).toMatchObject({ mode: 'delay' });
    const [update] = blocks(job.job, 'update');
    expect(update).toMatchObject({ max_parallel: 1, health_check: 'checks' });

    // The service check probes a port the group declares.
    const [service] = blocks(job.group, 'service');
    const [check] = blocks(service ?? {}, 'check');
    expect(Object.keys(staticPorts(job))).toContain(service?.port);
    expect(check).toMatchObject({ type: 'http' });
  });

  describe('its args and env, as a node fills them, run the real CLI', () => {
    let backend: Backend;
    let demo: Docker.Container | undefined;
    beforeAll(async () => {
      backend = await startBackend('consul');
    });
    afterAll(async () => {
      await demo?.remove({ force: true }).catch(() => undefined);
      await backend?.close();
    });

    it('registers a container under the node name and address, serves the check path, stops on SIGTERM', async () => {
      // The registry is the operator's -var (no Consul agent on this machine's 127.0.0.1:8500), and the metrics
      // port a free one rather than the static 9105; the rest is the job's. The node's address is one of
      // loopback's that is not the container's published 127.0.0.1, so the advertised one shows it came from
      // the job's env.
      const metricsPort = await freePort();
      const node: Node = {
        vars: { ...OPERATOR_VARS, registry: backend.uri('nomad') },
        name: 'nomad-client-1',
        ip: '127.0.0.2',
        ports: { ...staticPorts(job), metrics: metricsPort },
      };
      const { args, env } = resolve(job, node);
      expect(args).toContain(backend.uri('nomad'));
      // --dry-run: the registry is read, never written. The socket: the host's, mounted at the same path.
      const bridge = spawnBridge([...args, '--dry-run'], env);
      try {
        const started = await bridge.waitForLog('startup', (l) => l.msg === 'registrar starting');
        expect(started.node).toBe(node.name);

        const name = uniqueName('nomad-demo');
        demo = await runContainer({ name, env: { SERVICE_NAME: name }, publish: ['80/tcp'] });
        const hostPort = (await demo.inspect()).NetworkSettings.Ports['80/tcp']?.[0]?.HostPort;
        const line = `+ ${node.name}:${name}:80 ${name} ${node.ip}:${hostPort} `;
        await until('the dry run plans the demo container', () =>
          bridge.stdout.some((l) => l.includes(line)),
        );

        const [service] = blocks(job.group, 'service');
        const [check] = blocks(service ?? {}, 'check');
        const url = `http://${node.ip}:${metricsPort}${String(check?.path)}`;
        await until(`${url} answers 200`, async () => (await fetch(url)).status === 200);

        const stopping = Date.now();
        await bridge.kill('SIGTERM');
        expect((await bridge.exited).code).toBe(0);
        expect(Date.now() - stopping).toBeLessThan(seconds(job.task.kill_timeout) * 1000);
      } finally {
        await bridge.kill();
      }
    });

    it('would fail on a job whose flag the CLI does not know (this test can fail)', async () => {
      const { args, env } = resolve(job, {
        vars: { ...OPERATOR_VARS, registry: backend.uri('nomad') },
        name: 'nomad-client-1',
        ip: '127.0.0.1',
        ports: staticPorts(job),
      });
      const flag = args.find((a) => a.startsWith('--'));
      expect(flag).toBeDefined();
      const renamed = `${flag!.split('=')[0]}-renamed`;
      const broken = await runCli(
        args.map((a) => (a === flag ? renamed : a)),
        env,
      );
      expect(broken.code).toBe(2);
      expect(broken.stderr.join('\n')).toContain(renamed);
      const badEnv = await runCli(args, { ...env, REGISTRAR_NODE_ID: 'not a node id' });
      expect(badEnv.code).toBe(2);
    });
  });
});
