import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { connectRedis } from '../../src/ports/redis.js';
import { freePort, requireServer, start, startRedis, type Backend, type Proc } from '../../load/harness/index.js';
import { makeTestPki, type TestPki } from '../helpers/test-pki.js';

/** A REDIS_URL whose scheme or trust does not fit its server: the error a node exits with says what to change (review "cloud", F5). */

let pki: TestPki;
let tlsRedis: Proc;
let tlsPort: number;
let plain: Backend;
beforeAll(async () => {
  pki = makeTestPki();
  tlsPort = await freePort();
  tlsRedis = start(requireServer('redis-server'), [
    '--port', '0', '--tls-port', String(tlsPort), '--bind', '127.0.0.1', '--tls-cert-file', pki.serverCert, '--tls-key-file', pki.serverKey,
    '--tls-ca-cert-file', pki.ca, '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no',
  ]);
  await tlsRedis.waitLine((l) => /Ready to accept connections/.test(l));
  plain = await startRedis();
});
afterAll(async () => {
  await Promise.all([tlsRedis?.stop(), plain?.stop()]);
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
});

const failure = (url: string): Promise<string> =>
  connectRedis(url, { name: 'test-tls', log: createLogger('silent'), connectTimeoutMs: 1_000 }).then(
    (c) => {
      c.disconnect();
      return 'connected';
    },
    (err: Error) => err.message,
  );

describe('connectRedis and TLS', () => {
  it('redis:// to a server that requires TLS: the reset is said to mean rediss://', async () => {
    expect(await failure(`redis://127.0.0.1:${tlsPort}`)).toMatch(/ECONNRESET|EPIPE/);
    expect(await failure(`redis://127.0.0.1:${tlsPort}`)).toMatch(/requires TLS resets a plain connection: if it does, use rediss:\/\//);
  });

  it('rediss:// to a server of a CA this process does not trust, NODE_EXTRA_CA_CERTS and the host are named', async () => {
    expect(await failure(`rediss://127.0.0.1:${tlsPort}`)).toMatch(/certificate.*not trusted: give its CA in NODE_EXTRA_CA_CERTS, and name in REDIS_URL a host the certificate names\)$/);
  });

  it('rediss:// to a server without TLS: the handshake that never ends is said to mean redis://', async () => {
    const message = await failure(plain.url.replace('redis://', 'rediss://'));
    expect(message).toMatch(/ETIMEDOUT.*without TLS never answers the TLS handshake: if it has none, use redis:\/\//);
  });

  it('says nothing of TLS when the failure is not about it', async () => {
    const port = await freePort();
    const message = await failure(`redis://127.0.0.1:${port}`);
    expect(message).toMatch(/ECONNREFUSED/);
    expect(message).not.toMatch(/TLS|rediss|certificate/);
  });
});
