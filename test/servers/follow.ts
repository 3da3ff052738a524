import type { FollowUpdate, Instance, Logger, ServiceFollower } from '@registrar/core';
import { capturingLogger } from '@registrar/core/testing';
import type { Subscription } from 'rxjs';
import { expect, vi } from 'vitest';

/** A logger and the messages of the warnings it received, as they arrive. */
export function warningCapture(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const { logger } = capturingLogger({
    onLine: (line) => {
      if (line.level === 'warn') warnings.push(line.msg);
    },
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
