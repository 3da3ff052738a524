import type { ContainerInfo } from 'dockerode';
import { PassThrough } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { dockerHints, type DockerApi, type DockerHint } from './docker-source.js';
import type { Logger } from './logger.js';

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
      expect(inventories[0]).toEqual({ kind: 'inventory', ids: ['c1', 'c2'] });
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
      await vi.waitFor(() => expect(hints).toContainEqual({ kind: 'inventory', ids: ['c1'] }));
      expect(hints[0]).toEqual({ kind: 'connection', connected: true });
      expect(calls).toHaveLength(1);
      expect(lines.filter((l) => l.level === 'warn')).toEqual([]);
    } finally {
      subscription.unsubscribe();
    }
  });
});
