// followIntoFiles on real files and real shell commands (check and reload append to files the test reads). The
// registry side is an in-memory ServiceFollower; test/e2e/render.e2e.test.ts runs the same with nginx in front
// of containers registered in etcd, ZooKeeper and the Consul double.
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReplaySubject, Subject, type Subscription } from 'rxjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { FollowUpdate, Instance, ServiceFollower } from '@registrar/core';
import { capturingLogger } from '@registrar/core/testing';
import { followIntoFiles, type RenderEvent, type RenderFollowOptions, type RenderOutcome } from './follow.js';

/** A registry's read side held in memory: the test sets each service's instances or makes it unreachable. */
function memoryFollower() {
  const subjects = new Map<string, ReplaySubject<FollowUpdate>>();
  const followed: string[] = [];
  const subject = (name: string) => {
    let s = subjects.get(name);
    if (!s) subjects.set(name, (s = new ReplaySubject<FollowUpdate>(1)));
    return s;
  };
  const follower: ServiceFollower = {
    backend: 'memory',
    target: 'memory',
    follow: (name) => {
      followed.push(name);
      return subject(name).asObservable();
    },
    close: () => Promise.resolve(),
  };
  return {
    follower,
    followed,
    set: (name: string, instances: Instance[]) => subject(name).next({ kind: 'instances', instances }),
    unreachable: (name: string) => subject(name).next({ kind: 'unreachable', error: new Error('refused') }),
  };
}

const web = (n: number, extra: Partial<Instance> = {}): Instance => ({
  id: `node:web-${n}:80`,
  address: `10.0.0.${n}`,
  port: 80,
  ...extra,
});

const UPSTREAM = `upstream web {
{%- for i in services.web %}
  server {{ i.endpoint }}{% if i.meta.weight %} weight={{ i.meta.weight | integer: 1 }}{% endif %};
{%- endfor %}
}
`;

const running: Subscription[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const subscription of running.splice(0)) subscription.unsubscribe();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A directory with the template, the output, and the files the commands append a line to. */
function setup(template = UPSTREAM) {
  const dir = mkdtempSync(join(tmpdir(), 'registrar-render-'));
  dirs.push(dir);
  const file = (name: string) => join(dir, name);
  writeFileSync(file('upstreams.tpl'), template);
  const count = (name: string) =>
    existsSync(file(name)) ? readFileSync(file(name), 'utf8').split('\n').length - 1 : 0;
  return {
    dir,
    file,
    template: file('upstreams.tpl'),
    out: file('upstreams.conf'),
    read: () => readFileSync(file('upstreams.conf'), 'utf8'),
    reload: `echo r >> ${file('reloads')}`,
    reloads: () => count('reloads'),
    checks: () => count('checks'),
    /** A check that refuses a file holding `weight=0`, as nginx does. */
    check: `echo c >> ${file('checks')}; ! grep -q 'weight=0' ${file('upstreams.conf')}`,
  };
}

function run(options: Omit<RenderFollowOptions, 'logger'>) {
  const events: RenderEvent[] = [];
  const { logger, lines } = capturingLogger();
  running.push(followIntoFiles({ ...options, logger }).subscribe((event) => events.push(event)));
  const outcomes = () =>
    events.flatMap((event): RenderOutcome[] => (event.kind === 'render' ? [event.outcome] : []));
  return {
    events,
    logs: lines,
    outcomes,
    /** Until more than `after` renders are done (default: any), the last with this outcome. */
    until: (outcome: RenderOutcome, after = 0) =>
      vi.waitFor(
        () => {
          expect(outcomes().length).toBeGreaterThan(after);
          expect(outcomes().at(-1)).toBe(outcome);
        },
        { timeout: 10_000, interval: 10 },
      ),
  };
}

describe('followIntoFiles', () => {
  it('renders once every service it reads has answered; keeps the mode and owner; unchanged bytes run nothing', async () => {
    const t = setup();
    writeFileSync(t.out, 'upstream web { server 127.0.0.1:1 down; }\n');
    chmodSync(t.out, 0o640);
    chownSync(t.out, 4321, 4321);
    const registry = memoryFollower();
    const r = run({
      follower: registry.follower,
      targets: [{ template: t.template, out: t.out, reload: t.reload }],
    });
    await r.until('waiting');
    expect(registry.followed).toEqual(['web']);
    registry.set('web', [web(2), web(1, { meta: { weight: '3' } })]);
    await r.until('written');
    expect(t.read()).toBe('upstream web {\n  server 10.0.0.2:80;\n  server 10.0.0.1:80 weight=3;\n}\n');
    const stats = statSync(t.out);
    expect([stats.mode & 0o777, stats.uid, stats.gid]).toEqual([0o640, 4321, 4321]);
    expect(t.reloads()).toBe(1);
    // No temporary file left beside it.
    expect(readdirSync(t.dir).sort()).toEqual(['reloads', 'upstreams.conf', 'upstreams.tpl']);
    const renders = r.outcomes().length;
    registry.set('web', [web(2), web(1, { meta: { weight: '3' } })]);
    await r.until('unchanged', renders);
    expect(t.reloads()).toBe(1);
    expect(r.logs.filter((l) => l.msg === `wrote ${t.out}`)).toHaveLength(1);
  });

  it('a failing check puts the previous file back and reloads nothing; the same rendering is not checked again', async () => {
    const t = setup();
    const registry = memoryFollower();
    registry.set('web', [web(1)]);
    const r = run({
      follower: registry.follower,
      targets: [{ template: t.template, out: t.out, check: t.check, reload: t.reload }],
    });
    await r.until('written');
    const good = t.read();
    const mode = statSync(t.out).mode;
    let renders = r.outcomes().length;
    registry.set('web', [web(1), web(2, { meta: { weight: '0' } })]);
    await r.until('check-failed', renders);
    expect(t.read()).toBe(good);
    expect(statSync(t.out).mode).toBe(mode);
    expect([t.checks(), t.reloads()]).toEqual([2, 1]);
    expect(r.logs.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([
      `--check failed (exit 1): the new ${t.out} was not kept, the previous one stays`,
    ]);
    // The same set again (another service of the registry changed, say): refused without running the check.
    renders = r.outcomes().length;
    registry.set('web', [web(1), web(2, { meta: { weight: '0' } })]);
    await r.until('check-failed', renders);
    expect(t.checks()).toBe(2);
    renders = r.outcomes().length;
    registry.set('web', [web(1), web(2, { meta: { weight: '2' } })]);
    await r.until('written', renders);
    expect(t.read()).toContain('server 10.0.0.2:80 weight=2;');
    expect([t.checks(), t.reloads()]).toEqual([3, 2]);
    expect(r.logs.at(-1)?.msg).toBe(`${t.out} is current again`);
  });

  it('a check failing on the first file removes it again', async () => {
    const t = setup();
    const registry = memoryFollower();
    registry.set('web', [web(1, { meta: { weight: '0' } })]);
    const r = run({
      follower: registry.follower,
      targets: [{ template: t.template, out: t.out, check: t.check }],
    });
    await r.until('check-failed');
    expect(existsSync(t.out)).toBe(false);
  });

  it('a service without instances keeps the last file, unless the template allows it', async () => {
    const t = setup();
    const registry = memoryFollower();
    registry.set('web', [web(1)]);
    const r = run({ follower: registry.follower, targets: [{ template: t.template, out: t.out }] });
    await r.until('written');
    const good = t.read();
    const renders = r.outcomes().length;
    registry.set('web', []);
    await r.until('empty', renders);
    expect(t.read()).toBe(good);
    expect(r.logs.at(-1)).toMatchObject({
      level: 'warn',
      msg: `service web has no live instances: keeping the last ${t.out} (a template may allow it with {% allow_empty web %})`,
    });

    const allowed = setup(
      `{% allow_empty web %}[{% for i in services.web %}{{ i.endpoint | json }}{% endfor %}]`,
    );
    const r2 = run({
      follower: registry.follower,
      targets: [{ template: allowed.template, out: allowed.out }],
    });
    await r2.until('written');
    expect(allowed.read()).toBe('[]');
  });

  it('registry unreachable: the file stays; back, the changes made meanwhile are rendered', async () => {
    const t = setup();
    const registry = memoryFollower();
    registry.set('web', [web(1)]);
    const r = run({ follower: registry.follower, targets: [{ template: t.template, out: t.out }] });
    await r.until('written');
    const renders = r.outcomes().length;
    registry.unreachable('web');
    await vi.waitFor(() =>
      expect(r.events.at(-1)).toEqual({ kind: 'registry', service: 'web', reachable: false }),
    );
    expect(r.outcomes().length).toBe(renders);
    registry.set('web', [web(1), web(3)]);
    await r.until('written', renders);
    expect(t.read()).toContain('server 10.0.0.3:80;');
    expect(r.logs.map((l) => l.msg)).toContain('registry reachable again; following web');
  });

  it('instances whose address is not an IP are not shown to the template, with one warning each', async () => {
    const t = setup();
    const registry = memoryFollower();
    registry.set('web', [
      web(1),
      { id: 'x', address: 'host.example', port: 80 },
      web(2, { address: 'fe80::1%eth0' }),
    ]);
    const r = run({ follower: registry.follower, targets: [{ template: t.template, out: t.out }] });
    await r.until('written');
    expect(t.read()).toBe('upstream web {\n  server 10.0.0.1:80;\n}\n');
    expect(
      r.logs.filter((l) => l.level === 'warn').map((l) => (l.fields as { instance: string }).instance),
    ).toEqual(['x', 'node:web-2:80']);
  });

  it('templates read again: a broken one is reported and the previous one stays in use; a fixed one renders at once', async () => {
    const t = setup();
    const registry = memoryFollower();
    registry.set('web', [web(1)]);
    const reread$ = new Subject<void>();
    const r = run({ follower: registry.follower, targets: [{ template: t.template, out: t.out }], reread$ });
    await r.until('written');
    writeFileSync(t.template, '{% for i in services.web %}broken');
    reread$.next();
    await vi.waitFor(() =>
      expect(r.events.at(-1)).toMatchObject({
        kind: 'template',
        error: expect.stringMatching(/upstreams\.tpl: tag \{% for i in services\.web %\} not closed/),
      }),
    );
    let renders = r.outcomes().length;
    registry.set('web', [web(1), web(2)]);
    await r.until('written', renders);
    expect(t.read()).toContain('server 10.0.0.2:80;');
    writeFileSync(t.template, '{% for i in services.web %}{{ i.address }} {% endfor %}');
    renders = r.outcomes().length;
    reread$.next();
    await r.until('written', renders);
    expect(t.read()).toBe('10.0.0.1 10.0.0.2 ');
  });

  it('a failed reload is retried until it goes through', async () => {
    const t = setup();
    const registry = memoryFollower();
    registry.set('web', [web(1)]);
    const flag = t.file('nginx-up');
    const r = run({
      follower: registry.follower,
      targets: [{ template: t.template, out: t.out, reload: `test -f ${flag}` }],
    });
    await r.until('reload-failed');
    // Retried with backoff, logged once.
    await vi.waitFor(
      () => expect(r.outcomes().filter((o) => o === 'reload-failed').length).toBeGreaterThan(1),
      {
        timeout: 10_000,
        interval: 20,
      },
    );
    expect(r.logs.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([
      '--reload failed (exit 1); retrying until it succeeds',
    ]);
    const renders = r.outcomes().length;
    writeFileSync(flag, '');
    await r.until('reloaded', renders);
  });

  it('a burst of changes within --wait is one render', async () => {
    const t = setup();
    const registry = memoryFollower();
    registry.set('web', [web(1)]);
    const r = run({
      follower: registry.follower,
      targets: [{ template: t.template, out: t.out }],
      wait: { minMs: 50, maxMs: 2000 },
    });
    await r.until('written');
    const before = r.outcomes().length;
    for (let n = 2; n <= 6; n++) registry.set('web', [web(1), web(n)]);
    await r.until('written', before);
    expect(t.read()).toContain('server 10.0.0.6:80;');
    // One more change: renders run one at a time, so every render of the burst is counted by now.
    registry.set('web', [web(1), web(7)]);
    await r.until('written', before + 1);
    // Without the wait, the burst is two renders (the first at once, the rest folded into one more).
    expect(r.outcomes().slice(before)).toEqual(['written', 'written']);
  });
});
