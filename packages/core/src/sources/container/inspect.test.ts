import { Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { inspectContainers, type Inspection, type Look } from './inspect.js';
import { listedAsInspect } from './listed.js';
import { SyntheticDocker } from '../../testing/index.js';

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

  it('a die answers at once, even while an inspect of that container hangs, and aborts that inspect', async () => {
    const docker = new SyntheticDocker();
    const id = docker.add({ name: 'a', service: 'web' });
    docker.hangInspects.add(id);
    const looks$ = new Subject<Look>();
    const seen: Inspection[] = [];
    const subscription = inspectContainers(looks$, docker).subscribe((i) => seen.push(i));
    looks$.next(look(id));
    await expect.poll(() => docker.heldRequests).toBe(1);
    looks$.next(look(id, 0));
    await expect.poll(() => seen).toEqual([{ id, state: 'stopped', exitCode: 0 }]);
    expect(docker.heldRequests).toBe(0);
    looks$.next({ id, exitCode: undefined, gone: true });
    await expect.poll(() => seen.at(-1)).toEqual({ id, state: 'gone' });
    subscription.unsubscribe();
  });

  it('retries run in a lane of their own: containers whose inspects hang never hold back a new one', async () => {
    const docker = new SyntheticDocker();
    const hung = Array.from({ length: 20 }, (_, i) => docker.add({ name: `hung-${i}`, service: 'web' }));
    for (const id of hung) docker.hangInspects.add(id);
    const fresh = docker.add({ name: 'fresh', service: 'web' });
    const looks$ = new Subject<Look>();
    const seen: Inspection[] = [];
    const subscription = inspectContainers(looks$, docker, { concurrency: 4, retryConcurrency: 2 }).subscribe(
      (i) => seen.push(i),
    );
    for (const id of hung) looks$.next({ id, exitCode: undefined, retry: true });
    await expect.poll(() => docker.heldRequests).toBe(2);
    looks$.next(look(fresh));
    await expect.poll(() => seen.map((i) => i.id)).toEqual([fresh]);
    expect(docker.heldRequests).toBe(2);
    subscription.unsubscribe();
    // Unsubscribing aborts what hangs.
    expect(docker.heldRequests).toBe(0);
  });

  it('holds nothing per container once its work is done: 50,000 looks at unknown ids leave empty maps', async () => {
    const docker = new SyntheticDocker();
    const looks$ = new Subject<Look>();
    let seen = 0;
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const subscription = inspectContainers(looks$, docker).subscribe(() => (seen += 1));
    for (let i = 0; i < 50_000; i++) looks$.next(look(i.toString(16).padStart(64, '0')));
    await expect.poll(() => seen, { timeout: 20_000 }).toBe(50_000);
    expect(docker.inspects).toBe(50_000);
    // No timer per container is left behind (a groupBy stage kept one per id for 5 s: 50,000 of them).
    expect(timers() - before).toBeLessThan(10);
    subscription.unsubscribe();
  });

  it('crowded: one container list answers the looks of untracked containers that do not run', async () => {
    const docker = new SyntheticDocker();
    const running = docker.add({ name: 'running', service: 'web' });
    const tracked = docker.add({ name: 'tracked', service: 'web' });
    docker.exit(tracked, 3);
    const looks$ = new Subject<Look>();
    const seen: Inspection[] = [];
    const subscription = inspectContainers(looks$, docker, {
      concurrency: 1,
      tracked: (id) => id === tracked,
      listAbove: 10,
    }).subscribe((i) => seen.push(i));
    const ghosts = Array.from(
      { length: 100 },
      (_, i) => `${i.toString(16).padStart(12, '0')}${'a'.repeat(52)}`,
    );
    for (const id of ghosts) looks$.next(look(id));
    looks$.next(look(running));
    looks$.next(look(tracked));
    await expect.poll(() => seen.length).toBe(102);
    // A list answers only looks queued before it was asked for: a second one takes the rest.
    expect(docker.lists).toBeLessThanOrEqual(3);
    // The running one and the tracked one were inspected; of the ghosts, at most those inspected before the list.
    expect(seen.find((i) => i.id === running)?.state).toBe('found');
    expect(seen.find((i) => i.id === tracked)).toMatchObject({ state: 'found' });
    expect(seen.filter((i) => ghosts.includes(i.id)).every((i) => i.state === 'gone')).toBe(true);
    expect(docker.inspects).toBeLessThan(10);
    subscription.unsubscribe();
  });

  /** `count` running containers, each looked at once while the bridge tracks them (or not): the lists made. */
  async function listsWhenCrowded(count: number, tracked: boolean): Promise<number> {
    const docker = new SyntheticDocker();
    const ids = Array.from({ length: count }, (_, i) => docker.add({ name: `crowd${i}`, service: 'web' }));
    const looks$ = new Subject<Look>();
    let found = 0;
    const subscription = inspectContainers(looks$, docker, {
      tracked: () => tracked,
      listAbove: 64,
    }).subscribe((i) => (found += i.state === 'found' ? 1 : 0));
    for (const id of ids) looks$.next(look(id));
    await expect.poll(() => found, { timeout: 20_000 }).toBe(count);
    subscription.unsubscribe();
    return docker.lists;
  }

  it('crowded by a burst of starts: no list while every inspect finds its container', async () => {
    // Every container runs: a list answers none of them and would only cost a list of everything (it was one
    // per inspect that finished with more than 64 waiting, then one or two per burst).
    expect(await listsWhenCrowded(2_000, false)).toBe(0);
  });

  it('crowded by looks at tracked containers: no list, which could answer none of them', async () => {
    expect(await listsWhenCrowded(500, true)).toBe(0);
  });

  it('labels only: a crowd of running containers is answered by one list, each as listedAsInspect reads its entry', async () => {
    const docker = new SyntheticDocker();
    const ids = Array.from({ length: 500 }, (_, i) => docker.add({ name: `crowd${i}`, service: 'web' }));
    const tracked = ids[400];
    const looks$ = new Subject<Look>();
    const seen = new Map<string, Inspection>();
    const subscription = inspectContainers(looks$, docker, {
      tracked: (id) => id === tracked,
      listAbove: 64,
      fromList: listedAsInspect,
    }).subscribe((i) => seen.set(i.id, i));
    for (const id of ids) looks$.next(look(id));
    await expect.poll(() => seen.size, { timeout: 20_000 }).toBe(500);
    // The first 16 were inspected before the crowd formed; lists answered the rest, tracked or not (500 inspects
    // without them), and no inspect started while one was in flight. A list answers the looks queued before
    // it: the second, those queued meanwhile.
    expect(docker.inspects).toBe(16);
    expect(docker.lists).toBeLessThanOrEqual(2);
    const entries = new Map((await docker.listContainers()).map((entry) => [entry.Id, entry]));
    const fromList = ids.filter((id) => {
      const answer = seen.get(id);
      return answer?.state === 'found' && answer.listed === true;
    });
    expect(fromList.length).toBe(500 - 16);
    expect(fromList).toContain(tracked);
    for (const id of fromList) {
      expect(seen.get(id)).toEqual({
        id,
        state: 'found',
        info: listedAsInspect(entries.get(id)),
        listed: true,
      });
    }
    subscription.unsubscribe();
  });

  it('labels only: what the list cannot say is inspected, and a container it does not show is gone', async () => {
    const docker = new SyntheticDocker();
    const hostNetwork = Array.from({ length: 100 }, (_, i) => {
      const id = docker.add({ name: `host${i}`, service: 'web' });
      docker.change(id, (info) => (info.HostConfig.NetworkMode = 'host'));
      return id;
    });
    const ghosts = Array.from(
      { length: 100 },
      (_, i) => `${i.toString(16).padStart(12, '0')}${'a'.repeat(52)}`,
    );
    const looks$ = new Subject<Look>();
    const seen = new Map<string, Inspection>();
    const subscription = inspectContainers(looks$, docker, {
      concurrency: 1,
      tracked: () => false,
      listAbove: 10,
      fromList: listedAsInspect,
    }).subscribe((i) => seen.set(i.id, i));
    for (const id of [...hostNetwork, ...ghosts]) looks$.next(look(id));
    await expect.poll(() => seen.size, { timeout: 20_000 }).toBe(200);
    expect(hostNetwork.every((id) => seen.get(id)?.state === 'found')).toBe(true);
    expect(ghosts.every((id) => seen.get(id)?.state === 'gone')).toBe(true);
    // Every host-network container was inspected (its exposed ports are not in the list); the ghosts were not.
    expect(docker.inspects).toBeGreaterThanOrEqual(100);
    expect(docker.inspects).toBeLessThan(110);
    subscription.unsubscribe();
  });

  it('labels only: a list that hangs holds the inspects behind it for listHoldMs at most', async () => {
    const docker = new SyntheticDocker();
    const ids = Array.from({ length: 100 }, (_, i) => docker.add({ name: `held${i}`, service: 'web' }));
    docker.holdLists = true;
    const looks$ = new Subject<Look>();
    const seen = new Map<string, Inspection>();
    const subscription = inspectContainers(looks$, docker, {
      tracked: () => false,
      listAbove: 10,
      fromList: listedAsInspect,
      listHoldMs: 200,
    }).subscribe((i) => seen.set(i.id, i));
    for (const id of ids) looks$.next(look(id));
    await expect.poll(() => seen.size, { timeout: 5_000 }).toBe(100);
    expect([...seen.values()].every((i) => i.state === 'found' && i.listed === undefined)).toBe(true);
    expect(docker.heldRequests).toBe(1);
    subscription.unsubscribe();
    expect(docker.heldRequests).toBe(0);
  });
});
