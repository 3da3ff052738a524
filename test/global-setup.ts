import { ensureTestImage } from './harness/docker.js';

/** Build the local busybox test image once, before any test file runs. */
export default async function setup() {
  await ensureTestImage();
}
