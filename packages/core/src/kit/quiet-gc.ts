// One memory-reducing garbage collection once a busy spell is over. V8 keeps the pages a burst of work grew its
// heap to (a cold start of 1,000 services, a churn of thousands of events) long after the objects on them died:
// a daemon that idles for hours holds its peak. A last-resort major GC compacts the heap and hands the free
// pages back, for 0.1-0.2 s of CPU; V8 runs one only when an allocation fails. So: wait until the event loop has
// been quiet for a while after being busy, and collect once if the heap grew enough since the last collection to
// be worth it (its used size is no guide: it counts the garbage no GC has marked yet). Start-up always is: module
// loading and compiling leave megabytes of garbage on pages V8 then keeps (a daemon idling with 30 services held
// 24 MiB of heap instead of 15, 8 MiB more of private memory). Never during a burst: a busy loop postpones it, and
// one collection per busy spell at most.
import { runInNewContext } from 'node:vm';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { performance } from 'node:perf_hooks';

export interface QuietGcOptions {
  /** How long the event loop must have been quiet before collecting; default 2000 ms. */
  readonly quietMs?: number;
  /** How often to look; default 500 ms. */
  readonly checkMs?: number;
  /** Event-loop utilisation (0-1) over a look above which the process counts as busy; default 0.05. */
  readonly busyAbove?: number;
  /**
   * Growth of the heap since the last collection below which one is not worth it; default 8 MiB. The first
   * quiet spell after start-up collects whatever the heap's size.
   */
  readonly minGrowthBytes?: number;
  /** Told of each collection: heap total before and after, and how long it took. */
  readonly onCollect?: (info: { beforeBytes: number; afterBytes: number; ms: number }) => void;
  /** For tests: what the process is doing and how it collects (defaults: this process, V8's GC). */
  readonly probe?: QuietGcProbe;
}

export interface QuietGcProbe {
  /** Event-loop utilisation since the previous call (0-1). */
  utilisation(): number;
  /** The heap's size (what V8 holds of the system's memory). */
  heapBytes(): number;
  collect(): void;
  /** Call `look` every `ms` without keeping the process alive; returns how to stop. */
  every(ms: number, look: () => void): () => void;
}

/** This process: its event-loop utilisation, V8's heap statistics and a last-resort major GC. */
export function processProbe(): QuietGcProbe {
  let last = performance.eventLoopUtilization();
  let gc: ((options: object) => void) | undefined;
  return {
    utilisation() {
      const now = performance.eventLoopUtilization();
      const delta = performance.eventLoopUtilization(now, last);
      last = now;
      return delta.utilization;
    },
    heapBytes: () => getHeapStatistics().total_heap_size,
    collect() {
      if (gc === undefined) {
        // `node --expose-gc` gives it for free. Without the flag, a context made after setting it has one:
        // that costs a few MiB of the node binary's pages (a context is deserialised from its snapshot).
        const exposed = (globalThis as { gc?: unknown }).gc;
        if (typeof exposed === 'function') gc = exposed as (options: object) => void;
        else {
          setFlagsFromString('--expose-gc');
          gc = runInNewContext('gc') as (options: object) => void;
        }
      }
      gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    },
    every(ms, look) {
      const timer = setInterval(look, ms);
      timer.unref();
      return () => clearInterval(timer);
    },
  };
}

/**
 * Start watching: after every busy spell, once the loop has been quiet for `quietMs` and the heap has grown by at
 * least `minGrowthBytes` since the last collection, one memory-reducing collection. Returns how to stop.
 */
export function startQuietGc(options: QuietGcOptions = {}): { stop(): void } {
  const quietMs = options.quietMs ?? 2_000;
  const checkMs = options.checkMs ?? 500;
  const busyAbove = options.busyAbove ?? 0.05;
  const minGrowth = options.minGrowthBytes ?? 8 * 2 ** 20;
  const probe = options.probe ?? processProbe();
  // Start-up itself is a busy spell (modules, the first inventory), and its garbage is always worth one
  // collection: the heap at start already holds it, so it is no floor to measure growth from.
  let floor = 0;
  let busySince = true;
  let quietFor = 0;
  const look = () => {
    if (probe.utilisation() > busyAbove) {
      busySince = true;
      quietFor = 0;
      return;
    }
    quietFor += checkMs;
    if (!busySince || quietFor < quietMs) return;
    busySince = false;
    const before = probe.heapBytes();
    if (before - floor < minGrowth) return;
    const started = performance.now();
    probe.collect();
    const ms = performance.now() - started;
    // The collection itself is not activity: the next look starts a fresh measurement.
    probe.utilisation();
    floor = probe.heapBytes();
    options.onCollect?.({ beforeBytes: before, afterBytes: floor, ms });
  };
  return { stop: probe.every(checkMs, look) };
}
