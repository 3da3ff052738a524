import zookeeper from 'node-zookeeper-client';
import type { ACL, Client, Stat } from 'node-zookeeper-client';
import type { Service } from '@registrar/core';
import { resumeOptions } from '../client-internals.js';
import { service as testService } from '@registrar/core/testing';

/** A plain client for looking at what the adapter wrote, with promise wrappers. */
export interface Raw {
  readonly client: Client;
  getData(path: string): Promise<{ data: string; stat: Stat }>;
  exists(path: string): Promise<Stat | null>;
  children(path: string): Promise<string[]>;
  create(path: string, data?: string, acls?: ACL[], mode?: number): Promise<string>;
  setData(path: string, data: string): Promise<Stat>;
  remove(path: string): Promise<void>;
  getACL(path: string): Promise<ACL[]>;
  close(): void;
}

function promised<T>(
  fn: (cb: (error: unknown, ...results: unknown[]) => void) => void,
  pick = 0,
): Promise<T> {
  return new Promise((resolve, reject) => {
    // Reject with the client's own Exception so tests can assert its name (NO_AUTH...).
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
    fn((error, ...results) => (error ? reject(error) : resolve(results[pick] as T)));
  });
}

export async function connectRaw(
  connectString: string,
  options: { auth?: string; sessionTimeout?: number; sessionId?: Buffer; sessionPassword?: Buffer } = {},
): Promise<Raw> {
  const attempt = () => {
    const client = zookeeper.createClient(connectString, {
      sessionTimeout: options.sessionTimeout ?? 10_000,
      spinDelay: 100,
      ...resumeOptions(
        options.sessionId &&
          options.sessionPassword && {
            sessionId: options.sessionId,
            sessionPassword: options.sessionPassword,
          },
      ),
    });
    if (options.auth) client.addAuthInfo('digest', Buffer.from(options.auth));
    return client;
  };
  // Generous: a JVM on a loaded 2-core machine can take a while to accept its first session. A fresh client
  // per try: the library waits a whole session timeout on a handshake the server never answered (a server
  // that answers `ruok` before it serves sessions), which was one CI run's "no connection".
  let client: Client | undefined;
  for (let tries = 1; client === undefined; tries++) {
    const candidate = attempt();
    const connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 10_000);
      candidate.once('connected', () => {
        clearTimeout(timer);
        resolve(true);
      });
      candidate.connect();
    });
    if (connected) client = candidate;
    else {
      candidate.close();
      if (tries === 4) throw new Error('raw client: no connection after 4 tries of 10 s');
    }
  }
  return {
    client,
    getData: async (path) => {
      const [data, stat] = await promised<[Buffer | undefined, Stat]>((cb) =>
        client.getData(path, (e, d, s) => cb(e, [d, s])),
      );
      return { data: data?.toString('utf8') ?? '', stat };
    },
    exists: (path) => promised((cb) => client.exists(path, cb)),
    children: (path) => promised((cb) => client.getChildren(path, cb)),
    create: (path, data, acls, mode) =>
      promised((cb) =>
        client.create(
          path,
          Buffer.from(data ?? ''),
          acls ?? [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('world', 'anyone'))],
          mode ?? zookeeper.CreateMode.PERSISTENT,
          cb,
        ),
      ),
    setData: (path, data) => promised((cb) => client.setData(path, Buffer.from(data), cb)),
    remove: (path) => promised((cb) => client.remove(path, cb)),
    getACL: (path) => promised((cb) => client.getACL(path, cb)),
    close: () => client.close(),
  };
}

/**
 * Core's test service with the values the expected ZooKeeper documents of these tests spell out (Curator's
 * instance JSON, registrator's): the container, its published port, tags and metadata.
 */
export function service(overrides: Partial<Service> & { node: string }): Service {
  return testService({
    port: 32768,
    tags: ['blue', 'v1'],
    meta: { version: '1.2', env: 'test' },
    container: { id: '0123456789abcdef0123456789abcdef', name: 'web1' },
    ...overrides,
  });
}

/** Name the error a raw call failed with (node-zookeeper-client's Exception#getName). */
export async function zkErrorName(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'OK';
  } catch (error) {
    return (error as { getName?: () => string }).getName?.() ?? String(error);
  }
}
