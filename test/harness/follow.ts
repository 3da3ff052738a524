import type { FollowUpdate, Instance, Logger, ServiceFollower } from '@registrar/core';
import type { Subscription } from 'rxjs';
import { expect, vi } from 'vitest';

/** A log line a `capturingLogger` recorded. */
export interface CapturedLine {
  readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  readonly fields: object;
  readonly msg: string;
}

/** A core `Logger` that keeps every line (child bindings merged into the fields), for assertions on logs. */
export function capturingLogger(
  lines: CapturedLine[] = [],
  bindings: object = {},
  onLine: (line: CapturedLine) => void = () => undefined,
): Logger & { lines: CapturedLine[] } {
  const at =
    (level: CapturedLine['level']) =>
    (fieldsOrMsg: object | string, msg?: string): void => {
      const line =
        typeof fieldsOrMsg === 'string'
          ? { level, fields: bindings, msg: fieldsOrMsg }
          : { level, fields: { ...bindings, ...fieldsOrMsg }, msg: msg ?? '' };
      lines.push(line);
      onLine(line);
    };
  return {
    lines,
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => capturingLogger(lines, { ...bindings, ...more }, onLine),
  };
}

/** A logger and the messages of the warnings it received, as they arrive. */
export function warningCapture(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const logger = capturingLogger([], {}, (line) => {
    if (line.level === 'warn') warnings.push(line.msg);
  });
  return { logger, warnings };
}

/**
 * Follow `name` and keep everything it emits; the subscription goes into `subscriptions` for the test's
 * clean-up. `until(expected)` waits for the last update to be exactly those instances (in id order).
 */
export function watchFollow(follower: ServiceFollower, name: string, subscriptions: Subscription[]) {
  const updates: FollowUpdate[] = [];
  let updatedAt = 0;
  subscriptions.push(
    follower.follow(name).subscribe((update) => {
      updates.push(update);
      updatedAt = Date.now();
    }),
  );
  const last = () => {
    const update = updates.at(-1);
    return update?.kind === 'instances' ? update.instances : undefined;
  };
  return {
    updates,
    last,
    /** When the last update arrived (ms since the epoch; 0 before the first). */
    updatedAt: () => updatedAt,
    unreachable: () => updates.filter((update) => update.kind === 'unreachable').length,
    until: (expected: Instance[], timeout = 10_000) =>
      vi.waitFor(() => expect(last()).toEqual(expected), { timeout, interval: 20 }),
  };
}
