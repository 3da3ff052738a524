// A shared prefix far above grpc-js's 4 MiB receive limit: 20,000 entries of other nodes (~900 B each, 18 MB)
// under the very prefix and service name the adapter uses. One Range of the whole prefix fails for good with
// RESOURCE_EXHAUSTED; the adapter and the follower must read it in pages.
import type { Registry, ServiceFollower } from '@registrar/core';
import { service } from '@registrar/core/testing';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createEtcdFollower, createEtcdRegistry } from './index.js';
import { compacted, toRegistryError } from './errors.js';
import { jsonRecord } from './layout.js';
import { keyAfter, readRange } from './range.js';
import { etcdForFile } from './test-support/helpers.js';
import { watchFollow } from '@registrar/test-servers/follow';
import type { Subscription } from 'rxjs';

const shared = etcdForFile();
const PREFIX = '/large';
const FOREIGN = 20_000;
/** Foreign entries of `fat`: few, but 100 KB each, so that even a short page of them passes 4 MiB. */
const FAT = 60;

const open: { close(): Promise<void> }[] = [];
const subscriptions: Subscription[] = [];
afterEach(async () => {
  subscriptions.splice(0).forEach((s) => s.unsubscribe());
  await Promise.all(open.splice(0).map((x) => x.close()));
});

const padding = (bytes: number) => 'x'.repeat(bytes);

/** What another node's bridge stores: a json record of its own node, padded to about `bytes`. */
function foreign(i: number, name: string, bytes: number) {
  const node = `other${i % 100}`;
  const record = jsonRecord(
    service({
      node,
      name,
      address: '10.1.0.1',
      port: 1000 + (i % 50_000),
      container: { id: `c${i}`, name: `w${i}` },
      meta: { pad: padding(bytes) },
    }),
  );
  return { key: `${PREFIX}/${name}/${node}:w${i}:80`, value: record };
}

beforeAll(async () => {
  const seed = [
    ...Array.from({ length: FOREIGN }, (_, i) => foreign(i, 'web', 700)),
    ...Array.from({ length: FAT }, (_, i) => foreign(i, 'fat', 100_000)),
  ];
  // Batches well under etcd's 1.5 MiB request limit and 128 operations per transaction.
  for (let i = 0; i < seed.length;) {
    const batch: typeof seed = [];
    let bytes = 0;
    while (i < seed.length && batch.length < 100 && bytes < 1_000_000) {
      bytes += seed[i]!.value.length;
      batch.push(seed[i++]!);
    }
    await shared.plain.kv.txn({
      compare: [],
      success: batch.map(({ key, value }) => ({
        request_put: { key: Buffer.from(key), value: Buffer.from(value) },
      })),
      failure: [],
    });
  }
  const total = await shared.plain.kv.range({
    key: Buffer.from(`${PREFIX}/`),
    range_end: Buffer.from(`${PREFIX}0`),
    count_only: true,
  });
  expect(Number(total.count)).toBe(FOREIGN + FAT);
}, 120_000);

/**
 * The adapter's own client (which also accepts larger messages), or the caller's plain etcd3 client with
 * gRPC's default 4 MiB limit: with that one only reading in pages can work.
 */
const CLIENTS = ['own client', "caller's client"] as const;
type ClientKind = (typeof CLIENTS)[number];
const connection = (kind: ClientKind) =>
  kind === 'own client' ? { hosts: [shared.etcd.endpoint] } : { client: shared.plain };

function registry(kind: ClientKind, nodeId: string): Registry {
  const r = createEtcdRegistry({ ...connection(kind), nodeId, prefix: PREFIX, ttl: 10 });
  open.push({ close: () => r.close({ deregister: true }) });
  return r;
}

function follower(kind: ClientKind): ServiceFollower {
  const f = createEtcdFollower({ ...connection(kind), prefix: PREFIX });
  open.push(f);
  return f;
}

describe.each(CLIENTS)(`etcd: ${FOREIGN} foreign entries (18 MB) under the adapter's prefix (%s)`, (kind) => {
  it('the registry lists exactly its own entries, matching, and deregisters one it never wrote', async () => {
    const ours = registry(kind, 'n1');
    const web = service({ node: 'n1', name: 'web' });
    const api = service({ node: 'n1', name: 'api', container: { id: 'c2', name: 'api-1' } });
    // Our own records can be large too (labels become metadata): they are read in pages as well.
    const heavy = Array.from({ length: 50 }, (_, i) =>
      service({
        node: 'n1',
        name: 'fat',
        container: { id: `h${i}`, name: `heavy-${i}` },
        meta: { pad: padding(100_000) },
      }),
    );
    for (const s of [web, api, ...heavy]) await ours.register(s);

    const listed = await ours.list();
    expect(listed.map((e) => e.id).sort()).toEqual([web, api, ...heavy].map((s) => s.id).sort());
    // Fingerprints match what the adapter would write: a resync writes nothing.
    for (const s of [web, api, ...heavy]) {
      expect(listed.find((e) => e.id === s.id)?.fingerprint).toBe(ours.fingerprint(s));
    }

    // A fresh adapter of the same node has no index: it must find the key by reading the prefix.
    const fresh = registry(kind, 'n1');
    await fresh.deregister(web.id);
    const left = await shared.plain.kv.range({ key: Buffer.from(`${PREFIX}/web/${web.id}`) });
    expect(left.kvs).toHaveLength(0);
    expect((await fresh.list()).map((e) => e.id).sort()).toEqual([api, ...heavy].map((s) => s.id).sort());
  }, 60_000);

  it('the follower reads every instance of a service, then follows changes', async () => {
    const f = follower(kind);
    const web = watchFollow(f, 'web', subscriptions);
    const fat = watchFollow(f, 'fat', subscriptions);
    await vi.waitFor(() => expect(web.last()?.length).toBe(FOREIGN), { timeout: 30_000, interval: 50 });
    await vi.waitFor(() => expect(fat.last()?.length).toBe(FAT), { timeout: 30_000, interval: 50 });
    expect(web.unreachable() + fat.unreachable()).toBe(0);

    const ours = registry(kind, 'n2');
    const mine = service({ node: 'n2', name: 'web' });
    await ours.register(mine);
    // Seen by the watch that continues the paged read.
    await vi.waitFor(
      () => {
        expect(web.last()?.length).toBe(FOREIGN + 1);
        expect(web.last()?.some((i) => i.id === mine.id)).toBe(true);
      },
      { timeout: 10_000, interval: 50 },
    );
  }, 60_000);
});

describe('a paged read at a revision etcd compacted meanwhile', () => {
  it('fails with the error the scan recognises, to read again at the newest revision', async () => {
    const key = Buffer.from('/compacted/k');
    const first = await shared.plain.kv.put({ key, value: Buffer.from('1') });
    const second = await shared.plain.kv.put({ key, value: Buffer.from('2') });
    await shared.plain.kv.compact({ revision: second.header.revision, physical: true });
    const failure = await readRange((request) => shared.plain.kv.range(request), {
      key,
      rangeEnd: keyAfter(key),
      revision: first.header.revision,
    }).catch((error: unknown) => toRegistryError(error, 'range'));
    expect(compacted(failure)).toBe(true);
    expect(compacted(toRegistryError(new Error('deadline exceeded'), 'range'))).toBe(false);
  });
});
