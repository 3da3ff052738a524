import type { RegistryWrite } from '../registry.js';

/**
 * `items` cut, in order, into runs whose `slots` add up to at most `maxSlots` and whose `size` adds up to at
 * most `maxBytes`: the requests of one batch a server accepts (etcd refuses a txn of more than 128 ops or
 * compares or 1.5 MiB, ZooKeeper a packet over its `jute.maxbuffer`). An item that alone exceeds a limit makes
 * a run of its own: the server, not this function, says whether it fits.
 */
export function splitBatches<T>(
  items: readonly T[],
  maxSlots: number,
  maxBytes: number,
  size: (item: T) => number,
  slots: (item: T) => number = () => 1,
): T[][] {
  if (!(maxSlots >= 1)) throw new RangeError(`splitBatches: maxSlots must be at least 1, got ${maxSlots}`);
  const runs: T[][] = [];
  let run: T[] = [];
  let used = 0;
  let bytes = 0;
  for (const item of items) {
    const itemBytes = size(item);
    const itemSlots = slots(item);
    if (run.length > 0 && (used + itemSlots > maxSlots || bytes + itemBytes > maxBytes)) {
      runs.push(run);
      run = [];
      used = 0;
      bytes = 0;
    }
    run.push(item);
    used += itemSlots;
    bytes += itemBytes;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/** The id a batch write is about. */
export const writeId = (write: RegistryWrite): string =>
  write.type === 'register' ? write.service.id : write.id;

/**
 * The indexes of `writes` in rounds where no id comes twice: a second write of an id goes to the next round,
 * so that rounds applied one after the other keep each id's writes in order (`Registry.applyBatch`).
 */
export function roundsById(writes: readonly RegistryWrite[]): number[][] {
  const rounds: number[][] = [];
  const seen: Set<string>[] = [];
  writes.forEach((write, index) => {
    const id = writeId(write);
    let round = 0;
    while (seen[round]?.has(id)) round += 1;
    (seen[round] ??= new Set()).add(id);
    (rounds[round] ??= []).push(index);
  });
  return rounds;
}
