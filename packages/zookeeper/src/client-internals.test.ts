// The node-zookeeper-client internals the adapter relies on, against a real ZooKeeper: if an update of the
// library moves them, these fail (and so does the adapter, at start-up, with the error checked below).
import { startZookeeper, type ZookeeperServer } from '@registrar/test-servers/zookeeper';
import { createRequire } from 'node:module';
import zookeeper from 'node-zookeeper-client';
import type { Client, Stat } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { clientInternals, ZookeeperClientInternalsError } from './client-internals.js';
import { createZookeeperRegistry } from './index.js';
import { createClient } from './session.js';
import { connectRaw, service, type Raw } from './testing/helpers.js';

const installed = (
  createRequire(import.meta.url)('node-zookeeper-client/package.json') as { version: string }
).version;

let server: ZookeeperServer;
let raw: Raw;
const clients: Client[] = [];

beforeAll(async () => {
  server = await startZookeeper();
  raw = await connectRaw(server.connectString, { sessionTimeout: 30_000 });
});

afterAll(async () => {
  for (const client of clients) client.close();
  raw?.close();
  await server?.close();
});

function fresh(sessionTimeout = 4000): Client {
  const client = zookeeper.createClient(server.connectString, { sessionTimeout, spinDelay: 100 });
  clients.push(client);
  return client;
}

/** Count the client's connected / disconnected events. */
function record(client: Client) {
  const seen: string[] = [];
  for (const event of ['connected', 'disconnected', 'expired']) client.on(event, () => seen.push(event));
  return seen;
}

async function connected(seen: string[], times = 1) {
  await vi.waitFor(() => expect(seen.filter((e) => e === 'connected')).toHaveLength(times), {
    timeout: 30_000,
    interval: 20,
  });
}

describe('node-zookeeper-client internals (real ZooKeeper)', () => {
  it(`the installed version (${installed}) passes the check and behaves as the adapter expects`, async () => {
    const client = fresh();
    const internals = clientInternals(client);
    expect(internals.isIdle()).toBe(true);
    const seen = record(client);
    client.connect();
    expect(internals.isIdle()).toBe(false);
    expect(internals.isConnecting()).toBe(true);
    await connected(seen);
    expect(internals.isConnecting()).toBe(false);
    const session = client.getSessionId().toString('hex');

    // Dropping the socket: the client reconnects by itself and keeps the session.
    internals.dropSocket();
    await connected(seen, 2);
    expect(seen.slice(0, 3)).toEqual(['connected', 'disconnected', 'connected']);
    expect(client.getSessionId().toString('hex')).toBe(session);

    // Abandoning: no closeSession (the ephemeral outlives the client) and no reconnect.
    await new Promise<void>((resolve, reject) =>
      client.create('/internals-abandoned', Buffer.from(''), zookeeper.CreateMode.EPHEMERAL, (error) =>
        error ? reject(new Error(error.toString())) : resolve(),
      ),
    );
    internals.abandon();
    await vi.waitFor(() => expect(seen.at(-1)).toBe('disconnected'), { timeout: 5000, interval: 20 });
    // A retry would have started connecting in the same tick the disconnect was reported.
    expect(internals.isConnecting()).toBe(false);
    expect(internals.isIdle()).toBe(false);
    expect((await raw.exists('/internals-abandoned'))?.ephemeralOwner.toString('hex')).toBe(session);
    expect(seen.filter((e) => e === 'connected')).toHaveLength(2);
  });

  // A fenced election leader: the successor took its session over, so the server closed its connection, and
  // the client schedules a reconnect that would take the session back. The leader abandons it then.
  let pendingCases = 0;
  it.each([
    ['in the disconnected event, before the reconnect starts', (abandon: () => void) => abandon()],
    ['just after it, the reconnect already scheduled', (abandon: () => void) => process.nextTick(abandon)],
  ])('abandoning %s: no ConnectRequest is sent, the session stays with its new holder', async (_, when) => {
    const path = `/internals-pending-${++pendingCases}`;
    const client = fresh(10_000);
    const internals = clientInternals(client);
    const seen = record(client);
    client.connect();
    await connected(seen);
    const resume = { sessionId: client.getSessionId(), sessionPassword: client.getSessionPassword() };
    await new Promise<void>((resolve, reject) =>
      client.create(path, Buffer.from(''), zookeeper.CreateMode.EPHEMERAL, (error) =>
        error ? reject(new Error(error.toString())) : resolve(),
      ),
    );
    client.once('disconnected', () => when(() => internals.abandon()));
    const holder = createClient(server.connectString, 10_000, undefined, resume);
    clients.push(holder);
    const seenHolder = record(holder);
    holder.connect();
    await connected(seenHolder);
    // A reconnect already scheduled still opens its socket, which is closed before it says who we are.
    await vi.waitFor(() => expect(internals.isStopped()).toBe(true), { timeout: 10_000, interval: 20 });
    expect(seen).toEqual(['connected', 'disconnected']);
    // Had a ConnectRequest gone out, the server would have closed the holder's connection for it.
    const check = await new Promise<Stat | null>((resolve, reject) =>
      holder.exists(path, (error, stat) => (error ? reject(new Error(error.toString())) : resolve(stat))),
    );
    expect(check?.ephemeralOwner.equals(resume.sessionId)).toBe(true);
    expect(seenHolder).toEqual(['connected']);
  });

  it('createClient resumes a saved session through the undocumented sessionId option', async () => {
    const holder = fresh(10_000);
    const seen = record(holder);
    holder.connect();
    await connected(seen);
    const resume = { sessionId: holder.getSessionId(), sessionPassword: holder.getSessionPassword() };
    clientInternals(holder).abandon();
    const resumed = createClient(server.connectString, 10_000, undefined, resume);
    clients.push(resumed);
    const seenResumed = record(resumed);
    resumed.connect();
    await connected(seenResumed);
    expect(resumed.getSessionId().equals(resume.sessionId)).toBe(true);
  });
});

describe('replies the client cannot read', () => {
  type Manager = { pendingBuffer: Buffer | null; onSocketData(buffer: Buffer): void };
  const managerOf = (client: Client) =>
    (client as unknown as { connectionManager: Manager }).connectionManager;
  const exists = (client: Client) =>
    new Promise<boolean>((resolve, reject) =>
      client.exists('/', (error, stat) =>
        error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(stat !== null),
      ),
    );

  it('a reply cut by a dropped socket is not read as the start of the next socket: the client reconnects', async () => {
    const client = fresh(10_000);
    const internals = clientInternals(client);
    const seen = record(client);
    client.connect();
    await connected(seen);
    // Half a reply (its length says 100 bytes, 2 came) when the socket goes.
    managerOf(client).pendingBuffer = Buffer.from([0, 0, 0, 100, 1, 2]);
    internals.dropSocket();
    await connected(seen, 2);
    expect(await exists(client)).toBe(true);
  });

  it('a reply it cannot parse drops the connection instead of throwing out of the socket handler', async () => {
    const client = fresh(10_000);
    clientInternals(client);
    const seen = record(client);
    client.connect();
    await connected(seen);
    // A watch notification (xid -1) without its event: the client's parser reads past the end.
    const frame = Buffer.alloc(20);
    frame.writeInt32BE(16, 0);
    frame.writeInt32BE(-1, 4);
    expect(() => managerOf(client).onSocketData(frame)).not.toThrow();
    await connected(seen, 2);
    expect(await exists(client)).toBe(true);
  });
});

describe('a client whose internals are not what the adapter expects', () => {
  const message = new RegExp(
    `^node-zookeeper-client ${installed.replaceAll('.', '\\.')} is not what @registrar/zookeeper was written against \\(.+\\); install the exact version`,
  );

  it('an object without a connection manager: the registry refuses it at creation', () => {
    const notAClient = { on: () => undefined, getState: () => undefined } as unknown as Client;
    expect(() => createZookeeperRegistry({ client: notAClient, nodeId: 'n1' })).toThrow(
      ZookeeperClientInternalsError,
    );
    expect(() => createZookeeperRegistry({ client: notAClient, nodeId: 'n1' })).toThrow(message);
    expect(() => clientInternals(notAClient)).toThrow(/client\.connectionManager is missing/);
  });

  it.each([
    ['state', 'connectionManager.state is not a number'],
    ['setState', 'connectionManager.setState() is missing'],
    ['connect', 'connectionManager.connect() is missing'],
    ['onSocketConnected', 'connectionManager.onSocketConnected() is missing'],
    ['constructor', 'ConnectionManager.STATES.DISCONNECTED is not a number'],
  ])('a connection manager without %s: refused, naming what is missing', (field, what) => {
    const client = zookeeper.createClient(server.connectString);
    const cm = (client as unknown as { connectionManager: Record<string, unknown> }).connectionManager;
    Object.defineProperty(cm, field, { value: undefined });
    expect(() => clientInternals(client)).toThrow(message);
    expect(() => clientInternals(client)).toThrow(what);
    // The registry fails the same way from a factory, before any session is opened.
    expect(() => createZookeeperRegistry({ client: () => client, nodeId: 'n1' })).toThrow(what);
  });

  it('a real client passes, and the registry built on it works', async () => {
    const registry = createZookeeperRegistry({
      client: () => fresh(),
      nodeId: 'n1',
      basePath: '/ok',
      ttl: 4,
    });
    await vi.waitFor(() => registry.register(service({ node: 'n1' })), { timeout: 30_000, interval: 100 });
    expect(await raw.children('/ok/web')).toEqual(['n1:web1:80']);
    await registry.close({ deregister: true });
  });
});
