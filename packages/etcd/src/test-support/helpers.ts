import { startEtcd, type EtcdServer } from '@registrar/test-servers/etcd';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll } from 'vitest';

/** A plain client for reading what the adapter wrote, bypassing the adapter. */
export function plainClient(endpoint: string): Etcd3 {
  return new Etcd3({ hosts: [endpoint] });
}

export interface StoredKey {
  readonly key: string;
  readonly value: string;
  readonly lease: string;
}

/** Every key under `prefix` with its raw value and lease id, plus the store's revision (moves on any write). */
export async function dump(client: Etcd3, prefix: string): Promise<{ keys: StoredKey[]; revision: string }> {
  const response = await client.getAll().prefix(prefix).exec();
  return {
    keys: response.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString(), lease: kv.lease })),
    revision: response.header.revision,
  };
}

/** The lease id a fingerprint was computed with (`lease=<id>` is its last line). */
export function leaseOf(fingerprint: string): string {
  return /lease=(\S+)$/.exec(fingerprint)?.[1] ?? '';
}

/** A real etcd for one test file and a plain client on it (both there from the file's `beforeAll` on). */
export interface FileEtcd {
  readonly etcd: EtcdServer;
  readonly plain: Etcd3;
}

/** Start a real etcd and a plain client before the calling file's tests; close both after them. */
export function etcdForFile(): FileEtcd {
  const file = {} as { etcd: EtcdServer; plain: Etcd3 };
  beforeAll(async () => {
    file.etcd = await startEtcd();
    file.plain = plainClient(file.etcd.endpoint);
  });
  afterAll(async () => {
    file.plain?.close();
    await file.etcd?.close();
  });
  return file;
}
