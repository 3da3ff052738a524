import type { IKeyValue, IRangeRequest, IRangeResponse } from 'etcd3';

/**
 * About how many bytes one page of a range read carries. A single Range of a whole shared prefix fails for
 * good once its answer passes gRPC's receive limit (4 MiB by default: ~12,000 ordinary entries), and a
 * large answer costs the server and the network however rarely it changes; pages of ~1 MiB do neither.
 */
export const PAGE_BYTES = 1 << 20;
/** Most keys per page, whatever their size. */
const MAX_PAGE = 1000;

/** The page size after one of `count` key-values weighing `bytes` in all: about PAGE_BYTES' worth. */
export function nextLimit(bytes: number, count: number): number {
  if (count === 0) return MAX_PAGE;
  const perKey = Math.max(1, bytes / count);
  return Math.max(1, Math.min(MAX_PAGE, Math.floor(PAGE_BYTES / perKey)));
}

/** The smallest key after `key`: where the next page starts. */
export const keyAfter = (key: Buffer): Buffer => Buffer.concat([key, Buffer.from([0])]);

export interface RangeRead {
  readonly kvs: IKeyValue[];
  /** The revision every page was read at. */
  readonly revision: string;
}

export interface PagedRange {
  readonly key: Buffer;
  /** Exclusive end, as etcd's `range_end`. */
  readonly rangeEnd: Buffer;
  /** Keys (with their revisions and lease) but not values: a fraction of the bytes for a shared prefix. */
  readonly keysOnly?: boolean;
  /** Read as of this revision (another read's), instead of pinning the first page's. */
  readonly revision?: string;
  /** Keys in the first page; values of unknown size start small (the next pages adapt). */
  readonly firstPage?: number;
}

/**
 * Every key-value in [key, rangeEnd) read page by page, each page continuing after the last key of the one
 * before and sized to about PAGE_BYTES by the weight of the previous one. All pages are read at one revision
 * (the first page's, or `revision`), so together they are one consistent snapshot, as a single Range would be.
 * `range` performs one bounded call (the caller's timeout and error mapping apply to each page).
 */
export async function readRange(
  range: (request: IRangeRequest) => Promise<IRangeResponse>,
  request: PagedRange,
): Promise<RangeRead> {
  const kvs: IKeyValue[] = [];
  let revision = request.revision;
  let start = request.key;
  let limit = request.firstPage ?? (request.keysOnly ? MAX_PAGE : 16);
  for (;;) {
    const page = await range({
      key: start,
      range_end: request.rangeEnd,
      limit,
      ...(request.keysOnly && { keys_only: true }),
      ...(revision !== undefined && { revision }),
    });
    revision ??= page.header.revision;
    kvs.push(...page.kvs);
    const last = page.kvs.at(-1);
    if (!page.more || !last) return { kvs, revision };
    start = keyAfter(last.key);
    const bytes = page.kvs.reduce((sum, kv) => sum + kv.key.length + (kv.value?.length ?? 0), 0);
    limit = nextLimit(bytes, page.kvs.length);
  }
}

/**
 * The stretches of consecutive keys that `owned` accepts, in a sorted key list: each is read back with
 * values as one range `[first, keyAfter(last))` at the same revision, which holds exactly those keys. A
 * node's entries of one service are one stretch (`<prefix>/<name>/<node>:...`), so this costs about one
 * range per service the node offers, not one per key, and never reads another node's values.
 */
export function ownedRuns(
  keys: readonly Buffer[],
  owned: (key: Buffer) => boolean,
): { first: Buffer; last: Buffer }[] {
  const runs: { first: Buffer; last: Buffer }[] = [];
  let current: { first: Buffer; last: Buffer } | undefined;
  for (const key of keys) {
    if (!owned(key)) {
      current = undefined;
    } else if (current) {
      current.last = key;
    } else {
      current = { first: key, last: key };
      runs.push(current);
    }
  }
  return runs;
}
