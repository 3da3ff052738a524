import { rmSync } from 'node:fs';
import { ensureTestImage } from '../test/harness/docker.js';
import { RESULTS_FILE } from './report.js';
import { summarize } from './summarize.js';

/** Fresh results file before the suites; the Markdown report after them. */
export default async function setup() {
  rmSync(RESULTS_FILE, { force: true });
  await ensureTestImage();
  return () => summarize();
}
