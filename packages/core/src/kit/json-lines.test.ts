import { describe, expect, it } from 'vitest';
import { jsonLines, type BadLine } from './json-lines.js';

function collect(maxLineBytes?: number) {
  const values: unknown[] = [];
  const bad: { why: BadLine; sample: string }[] = [];
  const feed = jsonLines(
    (value) => values.push(value),
    (why, sample) => bad.push({ why, sample }),
    maxLineBytes,
  );
  return { values, bad, feed };
}

describe('jsonLines', () => {
  it('parses lines split anywhere across chunks, multi-byte characters included', () => {
    const { values, bad, feed } = collect();
    const text = `${JSON.stringify({ a: 'é€😀' })}\n\n${JSON.stringify({ b: 2 })}\n`;
    const bytes = Buffer.from(text);
    for (let i = 0; i < bytes.length; i += 3) feed(bytes.subarray(i, i + 3));
    expect(values).toEqual([{ a: 'é€😀' }, { b: 2 }]);
    expect(bad).toEqual([]);
  });

  it('reports an unparseable line with a short sample and goes on', () => {
    const { values, bad, feed } = collect();
    feed(`not json ${'x'.repeat(500)}\n{"ok":1}\n`);
    expect(values).toEqual([{ ok: 1 }]);
    expect(bad).toHaveLength(1);
    expect(bad[0]!.why).toBe('unparseable');
    expect(bad[0]!.sample.length).toBeLessThanOrEqual(200);
  });

  it('drops a line longer than the cap as it arrives, once, and parses the next one', () => {
    const { values, bad, feed } = collect(1_000);
    feed('{"a":"');
    for (let i = 0; i < 100; i++) feed('y'.repeat(100));
    feed('"}\n{"after":true}\n');
    expect(bad.map((b) => b.why)).toEqual(['too long']);
    expect(values).toEqual([{ after: true }]);
  });

  it('is linear: 50 MB without a newline in 64 KiB chunks takes well under a second', () => {
    const { values, bad, feed } = collect();
    const chunk = Buffer.alloc(64 * 1024, 'z');
    const started = performance.now();
    for (let sent = 0; sent < 50 * 1024 * 1024; sent += chunk.length) feed(chunk);
    feed('\n{"x":1}\n');
    const ms = performance.now() - started;
    expect(bad.map((b) => b.why)).toEqual(['too long']);
    expect(values).toEqual([{ x: 1 }]);
    // The quadratic splitter took 36 s of CPU for this; a linear one takes milliseconds.
    expect(ms).toBeLessThan(1_000);
  });
});
