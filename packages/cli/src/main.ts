#!/usr/bin/env node
// Checked before anything else is loaded: on an older Node the dependencies (undici 8 needs 22.19) would fail
// at import time with a stack trace instead of one line saying what to do.
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(
    `registrar: Node ${process.versions.node} is too old: it needs Node 22.19 or later (bash scripts/bootstrap quickstart installs Node 24 into /opt/registrar-ci)\n`,
  );
  process.exit(2);
}
await import('./start.js');
