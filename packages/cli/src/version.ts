import { readFileSync } from 'node:fs';

/**
 * The version users see (`--version`, the start log line, `registrar_build_info`), read from this package's
 * own manifest so it cannot drift from what was released. The image's version label comes from the same
 * file (the build passes it as `--build-arg VERSION`).
 */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
