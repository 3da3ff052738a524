import { describe, expect, it } from 'vitest';
import type { Slot } from './haproxy.js';
import { planSlots } from './slots.js';

const slot = (id: number, address = '127.0.0.1', port = 80, enabled = false): Slot => ({
  name: `s${id}`,
  id,
  address,
  port,
  enabled,
});
const instance = (address: string, port: number, id = `${address}:${port}`) => ({ id, address, port });
const empty = [slot(1), slot(2), slot(3)];

describe('planSlots', () => {
  it('fills the lowest free slots of an empty backend, address first, then ready', () => {
    const plan = planSlots('web', empty, [instance('10.0.0.1', 8080), instance('10.0.0.2', 8080)]);
    expect(plan.commands).toEqual([
      'set server web/s1 addr 10.0.0.1 port 8080',
      'set server web/s1 state ready',
      'set server web/s2 addr 10.0.0.2 port 8080',
      'set server web/s2 state ready',
    ]);
    expect(plan).toMatchObject({ serving: 2, enabled: 2, disabled: 0, unplaced: [] });
  });

  it('changes nothing when the slots already serve exactly the instances', () => {
    const slots = [slot(1, '10.0.0.1', 8080, true), slot(2, '10.0.0.2', 8080, true), slot(3)];
    const plan = planSlots('web', slots, [instance('10.0.0.2', 8080), instance('10.0.0.1', 8080)]);
    expect(plan).toEqual({ commands: [], serving: 2, enabled: 0, disabled: 0, unplaced: [] });
  });

  it('puts a slot whose instance left into maintenance, and enables newcomers before that', () => {
    const slots = [slot(1, '10.0.0.1', 8080, true), slot(2, '10.0.0.2', 8080, true), slot(3)];
    const plan = planSlots('web', slots, [instance('10.0.0.2', 8080), instance('10.0.0.3', 8080)]);
    expect(plan.commands).toEqual([
      'set server web/s3 addr 10.0.0.3 port 8080',
      'set server web/s3 state ready',
      'set server web/s1 state maint',
    ]);
    expect(plan).toMatchObject({ serving: 2, enabled: 1, disabled: 1 });
  });

  it('gives an instance that comes back its old slot, with no address change', () => {
    const slots = [slot(1, '10.0.0.9', 80), slot(2, '10.0.0.1', 8080), slot(3)];
    expect(planSlots('web', slots, [instance('10.0.0.1', 8080)]).commands).toEqual([
      'set server web/s2 state ready',
    ]);
  });

  it('takes one slot per address and port, whatever the registry ids', () => {
    const plan = planSlots('web', empty, [instance('10.0.0.1', 80, 'a'), instance('10.0.0.1', 80, 'b')]);
    expect(plan.serving).toBe(1);
    const duplicate = [slot(1, '10.0.0.1', 80, true), slot(2, '10.0.0.1', 80, true)];
    expect(planSlots('web', duplicate, [instance('10.0.0.1', 80)]).commands).toEqual([
      'set server web/s2 state maint',
    ]);
  });

  it('reports the instances that find no slot', () => {
    const four = [1, 2, 3, 4].map((n) => instance(`10.0.0.${n}`, 80));
    const plan = planSlots('web', empty, four);
    expect(plan.serving).toBe(3);
    expect(plan.unplaced).toEqual([four[3]]);
  });

  it('empties the backend when no instance is left', () => {
    const slots = [slot(1, '10.0.0.1', 80, true), slot(2), slot(3, '10.0.0.3', 80, true)];
    expect(planSlots('web', slots, []).commands).toEqual([
      'set server web/s1 state maint',
      'set server web/s3 state maint',
    ]);
  });

  it('repoints a slot that serves an unwanted instance when no free slot is left', () => {
    const slots = [slot(1, '10.0.0.1', 80, true)];
    expect(planSlots('web', slots, [instance('10.0.0.2', 80)]).commands).toEqual([
      'set server web/s1 addr 10.0.0.2 port 80',
      'set server web/s1 state ready',
    ]);
  });

  it('IPv6: an address HAProxy reports compressed is the same as any other spelling of it', () => {
    const slots = [slot(1, '::1', 8080, true), slot(2, 'fd00::5', 8080, false)];
    const same = planSlots('web', slots, [instance('0:0:0:0:0:0:0:1', 8080)]);
    expect(same).toEqual({ commands: [], serving: 1, enabled: 0, disabled: 0, unplaced: [] });
    // A free slot that last held the instance takes it back without being re-pointed.
    const back = planSlots('web', slots, [instance('::1', 8080), instance('FD00:0::5', 8080)]);
    expect(back.commands).toEqual(['set server web/s2 state ready']);
    const fresh = planSlots('web', [slot(1)], [instance('fd00::7', 8080)]);
    expect(fresh.commands).toEqual([
      'set server web/s1 addr fd00::7 port 8080',
      'set server web/s1 state ready',
    ]);
  });
});
