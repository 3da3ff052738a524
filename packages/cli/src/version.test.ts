import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { VERSION } from './version.js';

const read = (path: string) => readFileSync(new URL(path, import.meta.url), 'utf8');

describe('VERSION', () => {
  it('is the CLI package version', () => {
    expect(VERSION).toBe((JSON.parse(read('../package.json')) as { version: string }).version);
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+(-[\w.]+)?$/);
  });

  it('is the default of the image version label (builds pass it from package.json; this keeps the default equal)', () => {
    const arg = /^ARG VERSION=(\S+)$/m.exec(read('../../../Dockerfile'));
    expect(arg?.[1]).toBe(VERSION);
  });
});
