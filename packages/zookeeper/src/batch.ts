/**
 * A batch of writes as ZooKeeper `multi`s: all-or-nothing transactions, so a refused one is written again op by
 * op, each write getting its own outcome.
 */
import type { Logger, RegistryWrite, RegistryWriteResult } from '@registrar/core';
import { roundsById, runPool, splitBatches } from '@registrar/core/kit';
import zookeeper from 'node-zookeeper-client';
import type { Transaction } from 'node-zookeeper-client';
import { isCode, toRegistryError, ZkCodeError } from './errors.js';
import type { ServiceNodes } from './nodes.js';
import type { Session } from './session.js';

const E = zookeeper.Exception;

/** Ops per `multi`, and its bytes: well inside ZooKeeper's default `jute.maxbuffer` of 1 MiB. */
const MULTI_OPS = 128;
const MULTI_BYTES = 512 * 2 ** 10;
/** `multi`s of one batch in flight at once (one session: ZooKeeper answers them in order). */
const MULTIS_IN_FLIGHT = 4;

/** One write of a batch as one op of a `multi`, and what it does to the bookkeeping once applied. */
export interface MultiOp {
  /** The write's index in its round. */
  readonly index: number;
  readonly queue: (multi: Transaction) => void;
  readonly bytes: number;
  /** The service node a create needs (cached in `ServiceNodes`). */
  readonly parent?: string;
  readonly done: () => void;
}

export interface BatchDeps {
  /** The session current when a round starts: all its `multi`s go there. */
  readonly session: () => Session;
  readonly nodes: ServiceNodes;
  readonly logger: Logger;
  /** The write as one op of a `multi`, when that is all it needs; undefined when it must go alone. */
  readonly opFor: (session: Session, index: number, write: RegistryWrite) => MultiOp | undefined;
  /** The write made alone, as `register` / `deregister` make it. */
  readonly alone: (write: RegistryWrite) => Promise<void>;
}

/**
 * Each round of distinct ids as `multi`s of up to 128 ops / 512 KiB: creates of new instances (their
 * service nodes made first, once, and cached) and versioned deletes of nodes this session wrote. What a
 * `multi` cannot say without a read (an update, a rename, a node written by someone else) goes the way
 * `register` / `deregister` go, beside it. A `multi` is all or nothing: when one op fails on the data (a
 * node that exists already, a service node reaped meanwhile, a version that moved, a permission) each of
 * its writes is made again alone, so each gets its own outcome; a lost connection or session fails them all.
 */
export async function applyBatch(
  writes: readonly RegistryWrite[],
  deps: BatchDeps,
): Promise<RegistryWriteResult[]> {
  const results = new Array<RegistryWriteResult>(writes.length);
  for (const round of roundsById(writes)) {
    await applyRound(
      round.map((index) => writes[index]),
      (i, result) => (results[round[i]] = result),
      deps,
    );
  }
  return results;
}

async function applyRound(
  writes: readonly RegistryWrite[],
  settle: (index: number, result: RegistryWriteResult) => void,
  { session: current, nodes, logger, opFor, alone: write }: BatchDeps,
): Promise<void> {
  const session = current();
  const single = async (index: number) => {
    try {
      await write(writes[index]);
      settle(index, { ok: true });
    } catch (error) {
      settle(index, { ok: false, error: toRegistryError(error, 'batch') });
    }
  };
  const ops: MultiOp[] = [];
  const alone: number[] = [];
  writes.forEach((write, index) => {
    const op = opFor(session, index, write);
    if (op) ops.push(op);
    else alone.push(index);
  });
  // Service nodes first, each once; a create under one that could not be made goes alone (and says why).
  const missing = [
    ...new Set(ops.flatMap((op) => (op.parent !== undefined && !nodes.has(op.parent) ? [op.parent] : []))),
  ];
  const unmade = new Set<string>();
  await runPool(missing, 16, (parent) => nodes.ensure(session, parent).catch(() => void unmade.add(parent)));
  const batched = ops.filter((op) => op.parent === undefined || !unmade.has(op.parent));
  for (const op of ops) if (op.parent !== undefined && unmade.has(op.parent)) alone.push(op.index);
  const multis = splitBatches(batched, MULTI_OPS, MULTI_BYTES, (op) => op.bytes);
  await Promise.all([
    runPool(alone, 16, single),
    runPool(multis, MULTIS_IN_FLIGHT, async (multi) => {
      try {
        await session.call('multi', (c, cb) => {
          const transaction = c.transaction();
          for (const op of multi) op.queue(transaction);
          transaction.commit(cb);
        });
      } catch (error) {
        if (
          !(error instanceof ZkCodeError) ||
          isCode(error, E.CONNECTION_LOSS, E.OPERATION_TIMEOUT, E.SESSION_EXPIRED)
        ) {
          for (const op of multi) settle(op.index, { ok: false, error: toRegistryError(error, 'batch') });
          return;
        }
        // NODE_EXISTS, NO_NODE, BAD_VERSION, a permission: one op's data, not the session. Each alone.
        if (isCode(error, E.NO_NODE))
          for (const op of multi) if (op.parent !== undefined) nodes.forget(op.parent);
        logger.debug({ err: error, ops: multi.length }, 'multi refused; writing its ops one by one');
        await runPool(multi, 16, (op) => single(op.index));
        return;
      }
      for (const op of multi) {
        op.done();
        settle(op.index, { ok: true });
      }
    }),
  ]);
}
