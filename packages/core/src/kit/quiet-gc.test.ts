import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startQuietGc, type QuietGcProbe } from './quiet-gc.js';

/** A process whose event-loop utilisation the test scripts, one value per look. */
function scripted() {
  const loads: number[] = [];
  /** The heap's size: 20 MiB at the start, grown to 100 by each burst, back to 20 by a collection. */
  const heap = { bytes: 20 * 2 ** 20 };
  let look: () => void = () => undefined;
  const collected: number[] = [];
  let looks = 0;
  const probe: QuietGcProbe = {
    utilisation: () => {
      const load = loads.shift() ?? 0;
      if (load > 0.05) heap.bytes = 100 * 2 ** 20;
      return load;
    },
    heapBytes: () => heap.bytes,
    collect: () => {
      collected.push(looks);
      heap.bytes = 20 * 2 ** 20;
    },
    every: (_ms, fn) => {
      look = fn;
      return () => (look = () => undefined);
    },
  };
  /** Run one look per utilisation value. */
  const run = (...values: number[]) => {
    for (const value of values) {
      loads.push(value);
      looks += 1;
      look();
    }
  };
  return { probe, run, collected, heap };
}

describe('quiet GC', () => {
  it('collects once, after a busy spell, when the loop has been quiet for quietMs', () => {
    const { probe, run, collected } = scripted();
    const gc = startQuietGc({ quietMs: 2000, checkMs: 500, probe });
    run(0.9, 0.8, 0.01, 0.02, 0.0); // three quiet looks: 1.5 s
    expect(collected).toEqual([]);
    run(0.01); // 2 s
    expect(collected).toEqual([6]);
    run(0, 0, 0, 0, 0, 0, 0, 0); // quiet for long: still once
    expect(collected).toEqual([6]);
    run(0.5, 0, 0, 0, 0); // another burst, then quiet: once more
    expect(collected).toEqual([6, 19]);
    gc.stop();
  });

  it('never during a burst, however long: a busy look starts the quiet time again', () => {
    const { probe, run, collected } = scripted();
    startQuietGc({ quietMs: 2000, checkMs: 500, probe });
    for (let i = 0; i < 50; i++) run(0.6, 0, 0, 0); // short pauses inside a long burst
    expect(collected).toEqual([]);
  });

  it('after start-up, the first quiet spell collects whatever the heap grew since the start', () => {
    // Module loading left its garbage before the watch began: the heap has not grown since, yet it holds it.
    const { probe, run, collected } = scripted();
    startQuietGc({ quietMs: 1000, checkMs: 500, minGrowthBytes: 8 * 2 ** 20, probe });
    run(0, 0);
    expect(collected).toEqual([2]);
    run(0, 0, 0, 0);
    expect(collected).toEqual([2]);
  });

  it('not when the heap has not grown by minGrowthBytes since the last collection', () => {
    const { probe, run, collected, heap } = scripted();
    startQuietGc({ quietMs: 1000, checkMs: 500, minGrowthBytes: 8 * 2 ** 20, probe });
    run(0.9, 0, 0);
    expect(collected).toEqual([3]);
    // A burst that left the heap as it was (4 MiB more): nothing to give back.
    run(0.9);
    heap.bytes = 24 * 2 ** 20;
    run(0, 0);
    expect(collected).toEqual([3]);
  });

  it('in a real process: after a burst the heap gives its free pages back', () => {
    // A fresh node: 150k objects built and dropped, then quiet; the module must collect by itself.
    const module = fileURLToPath(new URL('../../dist/kit/quiet-gc.js', import.meta.url));
    const script = `
      const { startQuietGc } = await import(${JSON.stringify(module)});
      const { getHeapStatistics } = await import('node:v8');
      const done = new Promise((resolve) => startQuietGc({ quietMs: 500, checkMs: 100, onCollect: resolve }));
      let garbage = [];
      for (let i = 0; i < 150000; i++) garbage.push({ i, text: 'x'.repeat(200), list: [i, i + 1] });
      const peak = getHeapStatistics().total_heap_size;
      garbage = undefined;
      const timeout = new Promise((resolve) => setTimeout(() => resolve(undefined), 10000));
      const info = await Promise.race([done, timeout]);
      console.log(JSON.stringify({ peak, info, after: getHeapStatistics().total_heap_size }));
      process.exit(0);`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    const { peak, info, after } = JSON.parse(out) as {
      peak: number;
      info?: { beforeBytes: number; afterBytes: number };
      after: number;
    };
    expect(info).toBeDefined();
    expect(info!.afterBytes).toBeLessThan(info!.beforeBytes / 2);
    expect(after).toBeLessThan(peak / 2);
  });
});
