import type { ContainerInfo } from 'dockerode';
import { PassThrough } from 'node:stream';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DockerApi } from '../../docker-calls.js';
import { dockerHints, readEvent, type DockerHint, type DockerSourceOptions } from './events.js';
import type { Logger } from '../../logger.js';
import { SIGTERM } from '../../signals.js';
import { SyntheticDocker } from '../../testing/index.js';

/** A Docker API whose `/events` answers are scripted per call: 'hold' never answers until aborted. */
function scriptedDocker(answers: ('hold' | PassThrough)[], containers: string[]) {
  const calls: { aborted: () => boolean }[] = [];
  const docker: DockerApi = {
    getEvents(options) {
      const signal = options?.abortSignal;
      calls.push({ aborted: () => signal?.aborted ?? false });
      const answer = answers.shift() ?? 'hold';
      if (answer !== 'hold') return Promise.resolve(answer);
      return new Promise((_, reject) =>
        signal?.addEventListener('abort', () => reject(new Error('aborted'))),
      );
    },
    listContainers: () => Promise.resolve(containers.map((Id) => ({ Id }) as ContainerInfo)),
    getContainer: () => ({ inspect: () => Promise.reject(new Error('not used')) }),
  };
  return { docker, calls };
}

function recordingLogger() {
  const lines: { level: string; msg: string }[] = [];
  const at =
    (level: string) =>
    (...args: unknown[]) =>
      lines.push({ level, msg: String(args.find((a) => typeof a === 'string')) });
  const logger: Logger = {
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: () => logger,
  };
  return { logger, lines };
}

describe('dockerHints', () => {
  it('an /events response that never begins: lists containers anyway, logs why once, and keeps trying', async () => {
    const live = new PassThrough();
    const { docker, calls } = scriptedDocker(['hold', 'hold', live], ['c1', 'c2']);
    const { logger, lines } = recordingLogger();
    const hints: DockerHint[] = [];
    const subscription = dockerHints({
      docker,
      logger,
      stallCheckMs: 0,
      streamStartMs: 30,
      backoff: { initialMs: 10, maxMs: 10, jitter: 0 },
    }).subscribe((hint) => hints.push(hint));
    try {
      await vi.waitFor(() => expect(hints).toContainEqual({ kind: 'connection', connected: true }));
      // Two held attempts, each aborted, each followed by an inventory; then the stream that answered.
      expect(calls).toHaveLength(3);
      expect(calls.slice(0, 2).every((c) => c.aborted())).toBe(true);
      const inventories = hints.filter((h) => h.kind === 'inventory');
      await vi.waitFor(() => expect(hints.filter((h) => h.kind === 'inventory')).toHaveLength(3));
      expect(inventories[0]).toMatchObject({ kind: 'inventory', ids: ['c1', 'c2'] });
      const late = lines.filter((l) => l.msg.includes('did not start within 30 ms'));
      expect(late.map((l) => l.level)).toEqual(['warn', 'debug']);
      expect(lines.some((l) => l.msg === 'docker event stream connected again')).toBe(true);

      live.write(`${JSON.stringify({ Type: 'container', Action: 'start', id: 'c3', timeNano: 1e18 })}\n`);
      await vi.waitFor(() =>
        expect(hints).toContainEqual({ kind: 'event', id: 'c3', action: 'start', timeNano: 1e18 }),
      );
    } finally {
      subscription.unsubscribe();
    }
  });

  it('a stream that answers in time is used without any warning', async () => {
    const live = new PassThrough();
    const { docker, calls } = scriptedDocker([live], ['c1']);
    const { logger, lines } = recordingLogger();
    const hints: DockerHint[] = [];
    const subscription = dockerHints({ docker, logger, stallCheckMs: 0, streamStartMs: 1_000 }).subscribe(
      (hint) => hints.push(hint),
    );
    try {
      await vi.waitFor(() =>
        expect(hints).toContainEqual(expect.objectContaining({ kind: 'inventory', ids: ['c1'] })),
      );
      expect(hints[0]).toEqual({ kind: 'connection', connected: true });
      expect(calls).toHaveLength(1);
      expect(lines.filter((l) => l.level === 'warn')).toEqual([]);
    } finally {
      subscription.unsubscribe();
    }
  });
});

/**
 * Timelines on fake clocks: the source's timers and `Date` are virtual, so every reconnect lands at an exact
 * millisecond. (Not rxjs marbles: between its timers the source awaits the engine's promises, which a
 * TestScheduler flush cannot wait for.) Real `setImmediate` lets streams and promises settle between steps.
 */
describe('dockerHints against the synthetic engine, on a fake clock', () => {
  const START = Date.parse('2026-01-01T00:00:00Z');
  const backoff = { initialMs: 100, maxMs: 400, jitter: 0 };

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    vi.setSystemTime(START);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const settle = async () => {
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
  };
  const advance = async (ms: number) => {
    await vi.advanceTimersByTimeAsync(ms);
    await settle();
  };

  /** Subscribes and records each hint with the virtual millisecond it arrived at, and each `/events` call. */
  function watch(docker: SyntheticDocker, options: Partial<DockerSourceOptions> = {}) {
    const { logger, lines } = recordingLogger();
    const requests: { at: number; since?: number; until?: number }[] = [];
    const getEvents = docker.getEvents.bind(docker);
    docker.getEvents = (query) => {
      requests.push({
        at: Date.now() - START,
        ...(query?.since !== undefined && { since: Number(query.since) }),
        ...(query?.until !== undefined && { until: Number(query.until) }),
      });
      return getEvents(query);
    };
    const seen: { at: number; hint: DockerHint }[] = [];
    const subscription = dockerHints({ docker, logger, backoff, stallCheckMs: 0, ...options }).subscribe(
      (hint) => seen.push({ at: Date.now() - START, hint }),
    );
    const kinds = () =>
      seen.map(({ at, hint }) =>
        hint.kind === 'connection'
          ? `${at} ${hint.connected ? 'connected' : 'disconnected'}`
          : hint.kind === 'inventory'
            ? `${at} inventory ${hint.ids.length}`
            : `${at} ${hint.action} ${hint.id.slice(0, 12)}`,
      );
    return { seen, kinds, requests, lines, subscription };
  }

  it('subscribes before it lists, then passes each container event on with its exit code or signal', async () => {
    const docker = new SyntheticDocker();
    const a = docker.add({ name: 'a' });
    const { seen, kinds, subscription } = watch(docker);
    await settle();
    expect(kinds()).toEqual(['0 connected', '0 inventory 1']);
    expect(seen[1]?.hint).toMatchObject({ kind: 'inventory', ids: [a] });

    const b = docker.start({ name: 'b' });
    docker.kill(a, SIGTERM);
    docker.exit(a, 143);
    docker.remove(a);
    await settle();
    const events = seen.slice(2).map(({ hint }) => hint);
    expect(events).toMatchObject([
      { kind: 'event', id: b, action: 'start' },
      { kind: 'event', id: a, action: 'kill', signal: SIGTERM },
      { kind: 'event', id: a, action: 'die', exitCode: 143 },
      { kind: 'event', id: a, action: 'destroy' },
    ]);
    expect(events[0]).not.toHaveProperty('exitCode');
    expect(events[0]).not.toHaveProperty('signal');
    subscription.unsubscribe();
  });

  it('an engine that cannot be reached: retries with exponential backoff up to its cap, then connects', async () => {
    const docker = new SyntheticDocker();
    docker.add({ name: 'a' });
    docker.failEvents(4);
    const { kinds, requests, lines, subscription } = watch(docker);
    await advance(2_000);
    // 100, 200, 400, then the 400 ms cap.
    expect(requests.map((r) => r.at)).toEqual([0, 100, 300, 700, 1100]);
    expect(kinds()).toEqual(['1100 connected', '1100 inventory 1']);
    // One warning for the outage, then debug lines, and one line when it is over.
    expect(lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
      'docker event stream unavailable; reconnecting',
    ]);
    expect(lines.some((l) => l.level === 'info' && l.msg === 'docker event stream connected again')).toBe(
      true,
    );
    subscription.unsubscribe();
  });

  it('a dropped stream: reports the outage, reconnects after the first backoff step, replays what it missed', async () => {
    const docker = new SyntheticDocker();
    const a = docker.start({ name: 'a' });
    const { seen, kinds, requests, subscription } = watch(docker);
    await settle();
    await advance(1_500);
    docker.restart(a);
    await settle();
    const lastSeenSecond = Math.floor((START + 1_500) / 1000);

    docker.disconnect(new Error('read ECONNRESET'));
    await settle();
    docker.exit(a, 0);
    await advance(100);
    expect(kinds().slice(0, 5)).toEqual([
      '0 connected',
      '0 inventory 1',
      `1500 start ${a.slice(0, 12)}`,
      '1500 disconnected',
      '1600 connected',
    ]);
    // The replayed event and the new inventory, in either order: both are hints to look again.
    expect(kinds().slice(5).sort()).toEqual([`1600 die ${a.slice(0, 12)}`, '1600 inventory 0']);
    // Replayed from the second of the last event seen (Docker's `since` is inclusive).
    expect(requests.at(-1)).toEqual({ at: 1600, since: lastSeenSecond });
    expect(seen.map((s) => s.hint)).toContainEqual(
      expect.objectContaining({ id: a, action: 'die', exitCode: 0 }),
    );

    // Every later outage starts again at the first backoff step.
    docker.disconnect();
    await advance(100);
    expect(kinds().slice(-3)).toEqual(['1600 disconnected', '1700 connected', '1700 inventory 0']);
    subscription.unsubscribe();
  });

  it('an engine that holds /events: lists the running containers after the start bound, and keeps asking', async () => {
    const docker = new SyntheticDocker();
    docker.add({ name: 'a' });
    docker.holdEvents = true;
    const { kinds, requests, subscription } = watch(docker, { streamStartMs: 50 });
    await advance(200);
    // Held 50 ms, listed; retried 100 ms later, held again, listed.
    expect(kinds()).toEqual(['50 inventory 1', '200 inventory 1']);
    expect(requests.map((r) => r.at)).toEqual([0, 150]);
    docker.holdEvents = false;
    await advance(200);
    expect(kinds().slice(2)).toEqual(['400 connected', '400 inventory 1']);
    subscription.unsubscribe();
  });

  it('a container list that fails: the connection is dropped and both are tried again', async () => {
    const docker = new SyntheticDocker();
    docker.add({ name: 'a' });
    docker.failLists(1);
    const { kinds, subscription } = watch(docker);
    await advance(100);
    expect(kinds()).toEqual(['0 connected', '0 disconnected', '100 connected', '100 inventory 1']);
    expect(docker.lists).toBe(2);
    subscription.unsubscribe();
  });

  it('a stream that stays open but stops delivering: the stall check finds the missed event and reconnects', async () => {
    const docker = new SyntheticDocker();
    const { kinds, lines, requests, subscription } = watch(docker, { stallCheckMs: 1_000 });
    await settle();
    docker.stall();
    const b = docker.start({ name: 'b' });
    // Query windows end 2 s in the past: the first that covers the event is asked at 3 s.
    await advance(2_999);
    expect(kinds()).toEqual(['0 connected', '0 inventory 0']);
    await advance(1);
    expect(requests.filter((r) => r.until !== undefined)).toEqual([
      { at: 3000, since: START / 1000, until: START / 1000 + 1 },
    ]);
    expect(lines).toContainEqual({
      level: 'warn',
      msg: 'docker event stream stalled: events were not delivered',
    });
    await advance(100);
    expect(kinds().slice(0, 4)).toEqual([
      '0 connected',
      '0 inventory 0',
      '3000 disconnected',
      '3100 connected',
    ]);
    expect(kinds().slice(4).sort()).toEqual([`3100 inventory 1`, `3100 start ${b.slice(0, 12)}`]);
    expect(docker.openStreams).toBe(1);
    subscription.unsubscribe();
  });

  it('the stall check leaves a healthy stream alone', async () => {
    const docker = new SyntheticDocker();
    const { kinds, requests, subscription } = watch(docker, { stallCheckMs: 1_000 });
    await settle();
    const b = docker.start({ name: 'b' });
    await advance(10_000);
    expect(kinds()).toEqual(['0 connected', '0 inventory 0', `0 start ${b.slice(0, 12)}`]);
    expect(requests.filter((r) => r.until !== undefined).length).toBeGreaterThanOrEqual(7);
    subscription.unsubscribe();
  });

  it('unsubscribing closes the stream and cancels a pending reconnect', async () => {
    const docker = new SyntheticDocker();
    const { requests, subscription } = watch(docker);
    await settle();
    expect(docker.openStreams).toBe(1);
    docker.disconnect();
    await settle();
    subscription.unsubscribe();
    await advance(10_000);
    expect(requests).toHaveLength(1);
    expect(docker.openStreams).toBe(0);

    const again = watch(docker);
    await settle();
    again.subscription.unsubscribe();
    await settle();
    expect(docker.openStreams).toBe(0);
  });
});

describe('readEvent: every field of an event is untrusted', () => {
  const NOW = Date.parse('2026-06-01T00:00:00Z');
  const id = 'a'.repeat(64);
  const base = { Type: 'container', Action: 'start', Actor: { ID: id, Attributes: {} }, timeNano: NOW * 1e6 };

  it('reads a well-formed event, with the detail of health_status dropped', () => {
    expect(readEvent(base, NOW)).toMatchObject({ id, action: 'start', timeNano: NOW * 1e6 });
    expect(readEvent({ ...base, Action: 'health_status: unhealthy' }, NOW)?.action).toBe('health_status');
    const network = { Type: 'network', Action: 'connect', Actor: { ID: 'n', Attributes: { container: id } } };
    expect(readEvent(network, NOW)).toMatchObject({ id, action: 'connect' });
  });

  it('gives up on malformed fields without throwing', () => {
    const hostile: unknown[] = [
      null,
      5,
      'text',
      [],
      { ...base, Action: 5 },
      { ...base, Action: { toString: 1 } },
      { ...base, Actor: 'x' },
      { ...base, Actor: { ID: '../../info' } },
      { ...base, Actor: { ID: 'x'.repeat(1_000) } },
      { ...base, Type: 'network', Actor: { Attributes: { container: 7 } } },
      // Unknown actions do not reach the bridge (nor the metrics' labels).
      { ...base, Action: 'exec_create: sh' },
      { ...base, Action: `weird-${'z'.repeat(50)}` },
    ];
    for (const event of hostile) expect(readEvent(event, NOW)).toBeUndefined();
  });

  it('stamps a malformed or future time with now, so no replay is moved by it', () => {
    for (const timeNano of ['abc', NaN, Infinity, -1, 1e30, null]) {
      expect(readEvent({ ...base, timeNano, time: undefined }, NOW)?.timeNano).toBe(NOW * 1e6);
    }
    expect(readEvent({ ...base, timeNano: undefined, time: NOW / 1000 - 5 }, NOW)?.timeNano).toBe(
      (NOW / 1000 - 5) * 1e9,
    );
  });
});

describe('dockerHints: the stall check against a broken engine', () => {
  /** A Docker API whose live stream opens and whose bounded queries the test decides. */
  function engine(query: () => Promise<NodeJS.ReadableStream>) {
    const live = new PassThrough();
    const queries: PassThrough[] = [];
    const docker: DockerApi = {
      getEvents: (options) => {
        if (options?.until === undefined) return Promise.resolve(live);
        return query().then((stream) => {
          queries.push(stream as PassThrough);
          return stream;
        });
      },
      listContainers: () => Promise.resolve([]),
      getContainer: () => ({ inspect: () => Promise.reject(new Error('not used')) }),
    };
    return { docker, live, queries };
  }

  it('a query whose body never ends is cut off: no connection outlives its interval', async () => {
    const { docker, queries } = engine(() => Promise.resolve(new PassThrough()));
    const { logger, lines } = recordingLogger();
    // Windows end 2 s in the past and start at the connection: the first query goes out after ~3 s.
    const subscription = dockerHints({ docker, logger, stallCheckMs: 100 }).subscribe();
    try {
      await vi.waitFor(() => expect(queries.length).toBeGreaterThanOrEqual(3), { timeout: 15_000 });
      expect(queries.filter((q) => !q.destroyed).length).toBeLessThanOrEqual(1);
      // Said once, at warn, not per interval.
      expect(lines.filter((l) => l.msg.startsWith('docker stall check failed')).map((l) => l.level)).toEqual([
        'warn',
      ]);
    } finally {
      subscription.unsubscribe();
    }
    expect(queries.every((q) => q.destroyed)).toBe(true);
  });
});

describe('dockerHints: what the stall check remembers', () => {
  it('forgets delivered events on every tick even when its queries fail: 200,000 events leave no heap behind', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const live = new PassThrough();
    let failedQueries = 0;
    const docker: DockerApi = {
      getEvents: (options) => {
        if (options?.until === undefined) return Promise.resolve(live);
        failedQueries += 1;
        return Promise.reject(new Error('engine error 500'));
      },
      listContainers: () => Promise.resolve([]),
      getContainer: () => ({ inspect: () => Promise.reject(new Error('not used')) }),
    };
    let events = 0;
    const subscription = dockerHints({ docker, stallCheckMs: 100 }).subscribe((hint) => {
      if (hint.kind === 'event') events += 1;
    });
    try {
      gc();
      const before = process.memoryUsage().heapUsed;
      const now = Date.now() * 1e6;
      for (let batch = 0; batch < 20; batch++) {
        let lines = '';
        for (let i = 0; i < 10_000; i++) {
          const n = batch * 10_000 + i;
          const id = n.toString(16).padStart(64, '0');
          lines += `${JSON.stringify({ Type: 'container', Action: 'update', Actor: { ID: id }, timeNano: now - n })}\n`;
        }
        live.write(lines);
        await new Promise((resolve) => setImmediate(resolve));
      }
      await vi.waitFor(() => expect(events).toBe(200_000), { timeout: 20_000 });
      // Three intervals on, every remembered event is past the horizon; some checks ran and failed.
      const delivered = Date.now();
      await vi.waitFor(
        () => {
          expect(Date.now() - delivered).toBeGreaterThan(500);
          expect(failedQueries).toBeGreaterThan(0);
        },
        { timeout: 10_000 },
      );
      gc();
      const grown = (process.memoryUsage().heapUsed - before) / 2 ** 20;
      // Kept, the 200,000 keys were ~40 MiB.
      expect(grown).toBeLessThan(10);
    } finally {
      subscription.unsubscribe();
    }
  });
});
