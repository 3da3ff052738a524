// After `changeset version`: make the Dockerfile's image version label default the CLI's new version, so an
// image built without --build-arg VERSION is labelled with the version it contains.
import { readFileSync, writeFileSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const { version } = JSON.parse(readFileSync(new URL('packages/cli/package.json', root), 'utf8')) as {
  version: string;
};
const dockerfile = new URL('Dockerfile', root);
const text = readFileSync(dockerfile, 'utf8');
if (!/^ARG VERSION=\S+$/m.test(text)) {
  console.error('sync-image-version: the Dockerfile has no "ARG VERSION=<version>" line to update');
  process.exit(1);
}
writeFileSync(dockerfile, text.replace(/^ARG VERSION=\S+$/m, `ARG VERSION=${version}`));
console.log(`Dockerfile: ARG VERSION=${version}`);
