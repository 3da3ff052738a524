import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startConsulDouble } from '@registrar/consul-double';
import { RegistryConnectionError, silentLogger } from '@registrar/core';
import { describe, expect, it } from 'vitest';
import { consulRegistryFromUri } from './index.js';

/** A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
function makePki(): Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey', string> {
  const dir = mkdtempSync(join(tmpdir(), 'consul-pki-'));
  const p = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.pem'),
    '-days',
    '1',
    '-subj',
    '/CN=test-ca',
  );
  writeFileSync(p('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  for (const who of ['server', 'client']) {
    ssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      p(`${who}.key`),
      '-out',
      p(`${who}.csr`),
      '-subj',
      `/CN=${who}`,
    );
    ssl(
      'x509',
      '-req',
      '-in',
      p(`${who}.csr`),
      '-CA',
      p('ca.pem'),
      '-CAkey',
      p('ca.key'),
      '-CAcreateserial',
      '-out',
      p(`${who}.pem`),
      '-days',
      '1',
      '-extfile',
      p('san.ext'),
    );
  }
  return {
    ca: p('ca.pem'),
    serverCert: p('server.pem'),
    serverKey: p('server.key'),
    clientCert: p('client.pem'),
    clientKey: p('client.key'),
  };
}

describe('consul-tls://', () => {
  it('connects with CONSUL_CACERT and a client certificate, and fails cleanly without one', async () => {
    const pki = makePki();
    const double = await startConsulDouble({
      tls: {
        key: readFileSync(pki.serverKey),
        cert: readFileSync(pki.serverCert),
        ca: readFileSync(pki.ca),
        requestCert: true,
      },
    });
    try {
      const uri = new URL(`consul-tls://127.0.0.1:${double.port}`);
      const ctx = (env: Record<string, string>) => ({
        nodeId: 'tls-node',
        ttl: 15,
        logger: silentLogger,
        env,
      });
      const r = consulRegistryFromUri(
        uri,
        ctx({ CONSUL_CACERT: pki.ca, CONSUL_CLIENT_CERT: pki.clientCert, CONSUL_CLIENT_KEY: pki.clientKey }),
      );
      expect(r.target).toBe(`https://127.0.0.1:${double.port}`);
      expect(await r.list()).toEqual([]);
      await r.close();
      const noCert = consulRegistryFromUri(uri, ctx({ CONSUL_CACERT: pki.ca }));
      await expect(noCert.list()).rejects.toBeInstanceOf(RegistryConnectionError);
      await noCert.close();
    } finally {
      await double.close();
    }
  });
});
