// Reading what the engine sends (inspects, list entries, /info, Swarm specs) as untrusted JSON: any field may
// be missing, null or of the wrong type, and reads of it fall back to an empty value instead of throwing.

export type Obj = Record<string, unknown>;

/** `value` as an object; `{}` for anything else (null, arrays, scalars). */
export const obj = (value: unknown): Obj =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Obj) : {};

/** `value` as a string; `''` for anything else. */
export const str = (value: unknown): string => (typeof value === 'string' ? value : '');

/** `value` as an array; `[]` for anything else. */
export const arr = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
