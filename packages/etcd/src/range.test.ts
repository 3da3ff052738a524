import { describe, expect, it } from 'vitest';
import { keyAfter, nextLimit, ownedRuns, PAGE_BYTES } from './range.js';

describe('paged range reads', () => {
  it('sizes the next page to about PAGE_BYTES by the weight of the last one, between 1 and 1000 keys', () => {
    expect(nextLimit(100 * 1000, 1000)).toBe(1000);
    expect(nextLimit(2000 * 100, 100)).toBe(Math.floor(PAGE_BYTES / 2000));
    expect(nextLimit(100_000 * 16, 16)).toBe(10);
    expect(nextLimit(5 * PAGE_BYTES, 1)).toBe(1);
    expect(nextLimit(0, 0)).toBe(1000);
  });

  it('continues right after the last key read', () => {
    expect(keyAfter(Buffer.from('a/b'))).toEqual(Buffer.from('a/b\0'));
  });

  it('groups consecutive owned keys into stretches, each read back as one range', () => {
    const keys = ['/s/api/m:x', '/s/api/n1:a', '/s/api/n1:b', '/s/web/m:y', '/s/web/n1:c', '/s/web/z:d'].map(
      (key) => Buffer.from(key),
    );
    const runs = ownedRuns(keys, (key) => key.toString().includes('/n1:'));
    expect(runs.map(({ first, last }) => [first.toString(), last.toString()])).toEqual([
      ['/s/api/n1:a', '/s/api/n1:b'],
      ['/s/web/n1:c', '/s/web/n1:c'],
    ]);
    expect(ownedRuns(keys, () => false)).toEqual([]);
  });
});
