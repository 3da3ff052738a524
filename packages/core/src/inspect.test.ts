import { Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { inspectContainers, type Inspection, type Look } from './inspect.js';
import { SyntheticDocker } from './testing/index.js';

const look = (id: string, exitCode?: number): Look => ({ id, exitCode });

describe('inspectContainers', () => {
  it('inspects at once, folds looks that arrive meanwhile into one more, and needs no inspect for a die', async () => {
    const docker = new SyntheticDocker();
    const id = docker.add({ name: 'a', service: 'web' });
    const looks$ = new Subject<Look>();
    const seen: Inspection[] = [];
    const subscription = inspectContainers(looks$, docker).subscribe((i) => seen.push(i));
    for (let i = 0; i < 5; i++) looks$.next(look(id));
    await expect.poll(() => seen.length).toBe(2);
    expect(docker.inspects).toBe(2);
    looks$.next(look(id, 137));
    await expect.poll(() => seen.at(-1)).toEqual({ id, state: 'stopped', exitCode: 137 });
    expect(docker.inspects).toBe(2);
    looks$.next(look('0'.repeat(64)));
    await expect.poll(() => seen.at(-1)).toEqual({ id: '0'.repeat(64), state: 'gone' });
    subscription.unsubscribe();
  });

  it('lets go of its source as soon as it is unsubscribed, though per-container groups are still open', () => {
    const looks$ = new Subject<Look>();
    const subscription = inspectContainers(looks$, new SyntheticDocker()).subscribe();
    looks$.next(look('x'));
    expect(looks$.observed).toBe(true);
    subscription.unsubscribe();
    expect(looks$.observed).toBe(false);
  });
});
