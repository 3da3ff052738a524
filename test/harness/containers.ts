import type Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { docker, TEST_IMAGE } from './docker.js';

/** Every container a test run creates carries this label, so clean-up can find them. */
export const TEST_LABEL = 'registrar.test';

export const uniqueName = (prefix: string) => `${prefix}-${randomBytes(3).toString('hex')}`;

export interface ContainerSpec {
  name: string;
  env?: Record<string, string>;
  labels?: Record<string, string>;
  /** Container ports published on 127.0.0.1 with a random host port, e.g. `80/tcp`, `53/udp`. */
  publish?: string[];
  /** The host IP `publish` binds instead of 127.0.0.1 (`0.0.0.0`: all interfaces). */
  publishIp?: string;
  /** The host port `publish` binds (default: one Docker picks). */
  hostPort?: number;
  /** Exposed only (for --internal). */
  expose?: string[];
  cmd?: string[];
  network?: string;
  health?: { test: string[]; intervalMs: number };
  /** Seconds `docker stop` waits before SIGKILL (Docker's default: 10). */
  stopTimeout?: number;
  stopSignal?: string;
}

/** Create and start a container from the busybox test image. */
export async function runContainer(spec: ContainerSpec): Promise<Docker.Container> {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const port of spec.expose ?? []) exposed[port] = {};
  for (const port of spec.publish ?? []) {
    exposed[port] = {};
    bindings[port] = [{ HostIp: spec.publishIp ?? '127.0.0.1', HostPort: String(spec.hostPort ?? '') }];
  }
  const container = await docker.createContainer({
    name: spec.name,
    Image: TEST_IMAGE,
    Cmd: spec.cmd ?? ['httpd', '-f', '-p', '80', '-h', '/www'],
    Env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
    Labels: { [TEST_LABEL]: 'true', ...spec.labels },
    ExposedPorts: exposed,
    ...(spec.stopTimeout !== undefined && { StopTimeout: spec.stopTimeout }),
    ...(spec.stopSignal !== undefined && { StopSignal: spec.stopSignal }),
    ...(spec.health && {
      Healthcheck: {
        Test: spec.health.test,
        Interval: spec.health.intervalMs * 1e6,
        // Generous: on a loaded machine a 1 s probe timeout replaces the probe's own output.
        Timeout: 10e9,
        Retries: 1,
        StartPeriod: 0,
      },
    }),
    HostConfig: {
      PortBindings: bindings,
      ...(spec.network && { NetworkMode: spec.network }),
    },
  });
  await container.start();
  return container;
}

/** The host port Docker picked for a published container port. */
export async function hostPort(container: Docker.Container, port: string): Promise<number> {
  const info = await container.inspect();
  const binding = info.NetworkSettings.Ports[port]?.[0];
  if (!binding) throw new Error(`${port} is not published`);
  return Number(binding.HostPort);
}

/** Run a command in a container and wait for it to finish. */
export async function exec(container: Docker.Container, cmd: string[]) {
  const e = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await e.start({});
  await new Promise((resolve) => {
    stream.on('end', resolve);
    stream.resume();
  });
}
