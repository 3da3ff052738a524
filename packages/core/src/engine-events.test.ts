import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { normaliseEvent, type NormalisedEvent } from './engine-events.js';

/** Event lines recorded from the real engines (run, health check, connect, rename, pause, stop/kill, rm). */
function recorded(name: string): unknown[] {
  return readFileSync(new URL(`./fixtures/${name}.jsonl`, import.meta.url), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as unknown);
}

const summary = (events: (NormalisedEvent | undefined)[]) =>
  events.filter((e) => e !== undefined).map((e) => `${e.id.slice(0, 12)} ${e.action}`);

describe('normaliseEvent', () => {
  it("Podman 4.3's stream: remove becomes destroy, the bare health_status is kept, the rest is dropped", () => {
    const events = recorded('events-podman-4.3').map(normaliseEvent);
    expect(summary(events)).toEqual([
      // run --health-cmd, healthcheck run, stop, rm: create/init/exec_died/cleanup are not hints.
      'fc62a70af68e start',
      'fc62a70af68e health_status',
      'fc62a70af68e die',
      'fc62a70af68e destroy',
      // run, kill -s TERM, rm -f.
      'fcc9bf45eaba start',
      'fcc9bf45eaba kill',
      'fcc9bf45eaba die',
      'fcc9bf45eaba destroy',
      // run, network connect, rename, pause, unpause, network disconnect, restart (before its die), rm -f.
      '044cf5ccf03a start',
      '044cf5ccf03a connect',
      '044cf5ccf03a rename',
      '044cf5ccf03a pause',
      '044cf5ccf03a unpause',
      '044cf5ccf03a disconnect',
      '044cf5ccf03a restart',
      '044cf5ccf03a die',
      '044cf5ccf03a start',
      // run, kill -s TERM (no signal attribute), rm -f (stop, die).
      'c1ea8330cf22 start',
      'c1ea8330cf22 kill',
      'c1ea8330cf22 stop',
      'c1ea8330cf22 die',
      'c1ea8330cf22 destroy',
    ]);
    const health = events.find((e) => e?.action === 'health_status');
    expect(health).toMatchObject({
      type: 'container',
      id: 'fc62a70af68e49f9f5efc300cbeffb0ca52f8753a85f1d15e75f37fffc067235',
      action: 'health_status',
    });
    expect(health).not.toHaveProperty('health');
    expect(events.find((e) => e?.action === 'die')?.attributes['exitCode']).toBe('137');
    // Podman's kill names no signal: nothing that could start a drain.
    expect(events.find((e) => e?.action === 'kill')?.attributes).not.toHaveProperty('signal');
  });

  it("Docker 20.10's stream, unfiltered: exec_* and network create/destroy are dropped, the rest as before", () => {
    const events = recorded('events-docker-20.10').map(normaliseEvent);
    expect(summary(events)).toEqual([
      '28d6e36b3ad1 start',
      '28d6e36b3ad1 health_status',
      // The network is the actor; the container is in the attributes.
      '28d6e36b3ad1 connect',
      '28d6e36b3ad1 rename',
      '28d6e36b3ad1 kill',
      '28d6e36b3ad1 kill',
      '28d6e36b3ad1 die',
      '28d6e36b3ad1 disconnect',
      '28d6e36b3ad1 stop',
      '28d6e36b3ad1 destroy',
    ]);
    const kills = events.filter((e) => e?.action === 'kill').map((e) => e?.attributes['signal']);
    expect(kills).toEqual(['15', '9']);
    expect(events.find((e) => e?.action === 'health_status')?.health).toBe('healthy');
  });

  it('anything malformed yields nothing, never an exception', () => {
    const id = 'a'.repeat(64);
    for (const line of [
      null,
      42,
      'start',
      [],
      {},
      { Type: 'container' },
      { Type: 'container', Action: 'start' },
      { Type: 'container', Action: 'start', Actor: { ID: 7 } },
      { Type: 'container', Action: 'start', Actor: { ID: 'has space' } },
      { Type: 'container', Action: 'start', Actor: { ID: 'x'.repeat(200) } },
      { Type: 'container', Action: 'exec_start: sh', Actor: { ID: id } },
      { Type: 'network', Action: 'connect', Actor: { ID: 'net', Attributes: {} } },
      { Type: 'image', Action: 'destroy', Actor: { ID: id } },
      { Type: 'container', Action: { toString: 'start' }, Actor: { ID: id } },
    ])
      expect(normaliseEvent(line)).toBeUndefined();
  });

  it('reads the legacy fields, and keeps only a plain health word', () => {
    const id = 'b'.repeat(64);
    expect(normaliseEvent({ status: 'die', id, time: 5 })).toEqual({
      type: 'container',
      id,
      action: 'die',
      attributes: {},
    });
    expect(
      normaliseEvent({ Type: 'container', Action: 'health_status: <script>', Actor: { ID: id } }),
    ).toEqual({ type: 'container', id, action: 'health_status', attributes: {} });
  });
});
