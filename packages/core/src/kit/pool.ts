/**
 * `task` over `items` with at most `limit` running at once; resolves with the results in item order. After a
 * task rejects no further item starts, and the pool rejects with that first error once the running tasks have
 * settled, so nothing it started is still running when the caller moves on.
 */
export async function runPool<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  if (!(limit >= 1)) throw new RangeError(`runPool: limit must be at least 1, got ${limit}`);
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await task(items[index], index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.floor(limit), items.length) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}

/**
 * A gate that lets at most `limit` tasks run at once, for tasks that arrive one by one (runPool is for a list
 * known up front). A finished task hands its slot straight to the next waiting one, so the limit holds exactly.
 */
export function concurrencyLimit(limit: number): <R>(task: () => Promise<R>) => Promise<R> {
  if (!(limit >= 1)) throw new RangeError(`concurrencyLimit: limit must be at least 1, got ${limit}`);
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (running < limit) running += 1;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running -= 1;
    }
  };
}
