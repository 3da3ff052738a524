export { followIntoHaproxy } from './follow.js';
export type { HaproxyFollowOptions, LbEvent, LbTarget } from './follow.js';
export { describeAddress, parseRuntimeAddress, runtimeCommand } from './haproxy.js';
export type { RuntimeAddress, Slot } from './haproxy.js';
export { planSlots } from './slots.js';
export type { SlotPlan } from './slots.js';
