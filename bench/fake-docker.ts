// A synthetic Docker engine implementing core's `DockerApi` in-process, for the suites that measure the pipeline
// alone: containers are realistic inspect documents (cloned from core's recorded `published.json` fixture),
// events are JSON lines pushed into the open event streams. The process suite serves the same over a unix
// socket instead (synthetic-engine.ts).
import type { DockerApi } from '@registrar/core';
import type { ContainerInfo, ContainerInspectInfo, GetEventsOptions } from 'dockerode';
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';

const template = readFileSync(
  new URL('../packages/core/src/fixtures/published.json', import.meta.url),
  'utf8',
);

export interface FakeContainer {
  /** Container name without the leading slash. */
  readonly name: string;
  /** SERVICE_NAME label; default `svc`. */
  readonly service?: string;
  /** SERVICE_TAGS label. */
  readonly tags?: string;
}

class NotFound extends Error {
  readonly statusCode = 404;
}

export class FakeDocker implements DockerApi {
  /** id → the inspect document as the engine would send it (parsed per inspect, as dockerode does). */
  readonly containers = new Map<string, string>();
  /** Number of inspect calls answered. */
  inspects = 0;
  private readonly streams = new Set<PassThrough>();
  private serial = 0;

  /** Create a running container (no event); returns its id. */
  add(spec: FakeContainer): string {
    this.serial += 1;
    const id = `${this.serial.toString(16).padStart(12, '0')}${'f'.repeat(52)}`;
    const info = JSON.parse(template) as ContainerInspectInfo;
    info.Id = id;
    info.Name = `/${spec.name}`;
    info.Config.Hostname = id.slice(0, 12);
    info.Config.Labels = {
      SERVICE_NAME: spec.service ?? 'svc',
      ...(spec.tags && { SERVICE_TAGS: spec.tags }),
    };
    info.NetworkSettings.Ports = {
      // Wraps so a long soak never makes an invalid port (which derivation rightly refuses).
      '80/tcp': [{ HostIp: '127.0.0.1', HostPort: String(20000 + (this.serial % 40000)) }],
    };
    this.containers.set(id, JSON.stringify(info));
    return id;
  }

  /** Create a container and announce its `start`. */
  start(spec: FakeContainer): string {
    const id = this.add(spec);
    this.emit(id, 'start');
    return id;
  }

  /** The container exits and is removed; announces `die` with exit code 0. */
  die(id: string): void {
    const json = this.containers.get(id);
    if (json === undefined) return;
    this.containers.delete(id);
    const info = JSON.parse(json) as ContainerInspectInfo;
    this.emit(id, 'die', { exitCode: '0', name: info.Name.slice(1) });
  }

  /** Change a container's labels behind the bridge's back (drift only a resync can see). */
  setTags(id: string, tags: string): void {
    const json = this.containers.get(id);
    if (json === undefined) return;
    const info = JSON.parse(json) as ContainerInspectInfo;
    info.Config.Labels = { ...info.Config.Labels, SERVICE_TAGS: tags };
    this.containers.set(id, JSON.stringify(info));
  }

  emit(id: string, action: string, attributes: Record<string, string> = {}): void {
    const timeNano = Math.round((performance.timeOrigin + performance.now()) * 1e6);
    const line = `${JSON.stringify({
      Type: 'container',
      Action: action,
      id,
      Actor: { ID: id, Attributes: attributes },
      time: Math.floor(timeNano / 1e9),
      timeNano,
    })}\n`;
    for (const stream of this.streams) stream.write(line);
  }

  getEvents(options?: GetEventsOptions): Promise<NodeJS.ReadableStream> {
    const stream = new PassThrough();
    // A bounded query (stall check, replay window) has nothing to replay here.
    if (options?.until !== undefined) stream.end();
    else {
      this.streams.add(stream);
      stream.on('close', () => this.streams.delete(stream));
    }
    return Promise.resolve(stream);
  }

  listContainers(): Promise<ContainerInfo[]> {
    return Promise.resolve([...this.containers.keys()].map((Id) => ({ Id }) as ContainerInfo));
  }

  getContainer(id: string): { inspect(): Promise<ContainerInspectInfo> } {
    return {
      inspect: () => {
        this.inspects += 1;
        const json = this.containers.get(id);
        return json !== undefined
          ? Promise.resolve(JSON.parse(json) as ContainerInspectInfo)
          : Promise.reject(new NotFound(`no such container: ${id}`));
      },
    };
  }

  close(): void {
    for (const stream of this.streams) stream.end();
  }
}
