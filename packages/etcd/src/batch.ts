/**
 * A batch of writes as etcd transactions: all or nothing, so a transaction the server refuses is written again
 * op by op, each write getting its own outcome.
 */
import type { Logger } from '@registrar/core';
import { RegistryRejectedError, RegistrySessionLostError } from '@registrar/core';
import { runPool, splitBatches } from '@registrar/core/kit';
import type { ICompare, IRequestOp } from 'etcd3';

/** etcd's defaults: `--max-txn-ops` 128 (ops per branch, and compares), `--max-request-bytes` 1.5 MiB. */
const MAX_TXN_OPS = 128;
const MAX_TXN_BYTES = 1.5 * 2 ** 20 - 16 * 2 ** 10;
/** Transactions of one batch in flight at once. */
const TXNS_IN_FLIGHT = 4;

/** One write of a batch as part of a transaction: what it adds to each part, and its effect on the index. */
export interface TxnWrite {
  readonly index: number;
  /** What must hold if the transaction landed already (a register: its record, on its lease). */
  readonly compare: ICompare[];
  /** Sent whatever the compare says (removals). */
  readonly always: IRequestOp[];
  /** Sent unless the compare holds (the put). */
  readonly unlessThere: IRequestOp[];
  readonly bytes: number;
  /** The write's effect on the id → keys index once the transaction succeeded. */
  readonly done: () => void;
}

export interface TxnDeps {
  /** One transaction, bounded and mapped onto core's errors. */
  readonly txn: (request: {
    compare: ICompare[];
    success: IRequestOp[];
    failure: IRequestOp[];
  }) => Promise<unknown>;
  /** The write made alone, as `register` / `deregister` make it, settling its own outcome. */
  readonly alone: (write: TxnWrite) => Promise<void>;
  readonly ok: (index: number) => void;
  readonly fail: (index: number, error: unknown) => void;
  /** etcd said the puts' lease is gone. */
  readonly leaseLost?: () => void;
  readonly logger: Logger;
}

/** `ops` as transactions of up to 128 ops and compares and 1.5 MiB, a few in flight; each write settled. */
export async function applyTxns(ops: readonly TxnWrite[], deps: TxnDeps): Promise<void> {
  const { alone, ok, fail } = deps;
  // A record too large for a transaction of its own (its value goes twice) is put as register puts it.
  const txns = splitBatches(
    ops.filter((op) => op.bytes <= MAX_TXN_BYTES),
    MAX_TXN_OPS,
    MAX_TXN_BYTES,
    (op) => op.bytes,
    (op) => Math.max(op.compare.length, op.always.length + op.unlessThere.length, 1),
  );
  // A record too large for a transaction of its own is put as register puts it.
  await runPool([...ops.filter((op) => op.bytes > MAX_TXN_BYTES)], 4, alone);
  await runPool(txns, TXNS_IN_FLIGHT, async (txn) => {
    const always = txn.flatMap((w) => w.always);
    try {
      await deps.txn({
        compare: txn.flatMap((w) => w.compare),
        success: always,
        failure: [...txn.flatMap((w) => w.unlessThere), ...always],
      });
    } catch (error) {
      if (error instanceof RegistryRejectedError && txn.length > 1) {
        // One write the server refuses must not fail the others: each alone, with its own outcome.
        await runPool(txn, 16, alone);
        return;
      }
      if (error instanceof RegistrySessionLostError) deps.leaseLost?.();
      for (const w of txn) fail(w.index, error);
      return;
    }
    for (const w of txn) {
      w.done();
      ok(w.index);
    }
  });
  if (txns.length > 0) deps.logger.debug({ writes: ops.length, txns: txns.length }, 'batch applied');
}
