import { isIP } from 'node:net';
import type { Instance } from '@registrar/core';
import { formatHostPort } from '@registrar/core/kit';
import type { Slot } from './haproxy.js';

/** What to tell HAProxy so that a backend's enabled slots are exactly the wanted instances. */
export interface SlotPlan {
  /** Runtime API commands, in order: every enable before any disable, so capacity never dips. */
  readonly commands: readonly string[];
  /** Slots that will be serving; how many this plan (re)points at an instance, and how many it disables. */
  readonly serving: number;
  readonly enabled: number;
  readonly disabled: number;
  /** Instances that found no free slot (the backend has too few). */
  readonly unplaced: readonly Instance[];
}

/**
 * One spelling per address: HAProxy reports IPv6 compressed and lower-case (`::1`), a registry may hold any
 * form (`0:0:0:0:0:0:0:1`), and the two must compare equal or the slot is re-pointed on every pass.
 */
function canonicalAddress(address: string): string {
  if (isIP(address) !== 6) return address;
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

const endpoint = (address: string, port: number) => formatHostPort({ host: canonicalAddress(address), port });

/**
 * Decide the commands that make `slots` serve exactly `wanted`, changing as little as possible: a slot
 * already serving a wanted instance keeps it (no reconnects, no stats reset); a free slot that last held an
 * instance is preferred for it again; other instances take the lowest free slots. Instances are wanted once
 * per address and port, whatever their registry ids.
 */
export function planSlots(backend: string, slots: readonly Slot[], wanted: readonly Instance[]): SlotPlan {
  const byEndpoint = new Map<string, Instance>();
  for (const instance of wanted) byEndpoint.set(endpoint(instance.address, instance.port), instance);

  const kept = new Set<string>();
  const toDisable: Slot[] = [];
  const free: Slot[] = [];
  for (const slot of slots) {
    const key = endpoint(slot.address, slot.port);
    if (slot.enabled && byEndpoint.has(key) && !kept.has(key)) kept.add(key);
    else if (slot.enabled) toDisable.push(slot);
    else free.push(slot);
  }
  // Disabled slots become free too, but only after the ones that were free already.
  free.push(...toDisable);

  const enables: string[] = [];
  const taken = new Set<string>();
  const unplaced: Instance[] = [];
  const missing = [...byEndpoint.entries()].filter(([key]) => !kept.has(key));
  const take = (slot: Slot, instance: Instance) => {
    taken.add(slot.name);
    const server = `${backend}/${slot.name}`;
    if (endpoint(slot.address, slot.port) !== endpoint(instance.address, instance.port)) {
      enables.push(`set server ${server} addr ${instance.address} port ${instance.port}`);
    }
    enables.push(`set server ${server} state ready`);
  };
  // First the instances whose old slot is free (a replica that came back), then the rest in slot order.
  const rest: Instance[] = [];
  for (const [key, instance] of missing) {
    const previous = free.find((slot) => !slot.enabled && endpoint(slot.address, slot.port) === key);
    if (previous && !taken.has(previous.name)) take(previous, instance);
    else rest.push(instance);
  }
  for (const instance of rest) {
    const slot = free.find((candidate) => !taken.has(candidate.name));
    if (slot) take(slot, instance);
    else unplaced.push(instance);
  }
  const disables = toDisable
    .filter((slot) => !taken.has(slot.name))
    .map((slot) => `set server ${backend}/${slot.name} state maint`);
  return {
    commands: [...enables, ...disables],
    serving: kept.size + taken.size,
    enabled: taken.size,
    disabled: disables.length,
    unplaced,
  };
}
