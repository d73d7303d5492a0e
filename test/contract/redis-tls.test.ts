import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { connectRedis, type RedisTlsFiles } from '../../src/ports/redis.js';
import { freePort, requireServer, start, startRedis, type Backend, type Proc } from '../../load/harness/index.js';
import { makeTestPki, type TestPki } from '../helpers/test-pki.js';

/** A REDIS_URL whose scheme or trust does not fit its server: the error a node exits with says what to change (review "cloud", F5). */

let pki: TestPki;
let tlsRedis: Proc;
let tlsPort: number;
let mtlsRedis: Proc;
let mtlsPort: number;
let plain: Backend;
/** A redis-server on TLS only; `clientCerts`: it asks every client for a certificate of the test CA (mTLS). */
async function tlsServer(port: number, clientCerts: boolean): Promise<Proc> {
  const server = start(requireServer('redis-server'), [
    '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--tls-cert-file', pki.serverCert, '--tls-key-file', pki.serverKey,
    '--tls-ca-cert-file', pki.ca, '--tls-auth-clients', clientCerts ? 'yes' : 'no', '--save', '', '--appendonly', 'no',
  ]);
  await server.waitLine((l) => /Ready to accept connections/.test(l));
  return server;
}
beforeAll(async () => {
  pki = makeTestPki();
  [tlsPort, mtlsPort] = [await freePort(), await freePort()];
  [tlsRedis, mtlsRedis, plain] = await Promise.all([tlsServer(tlsPort, false), tlsServer(mtlsPort, true), startRedis()]);
});
afterAll(async () => {
  await Promise.all([tlsRedis?.stop(), mtlsRedis?.stop(), plain?.stop()]);
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
});

const failure = (url: string, tls?: RedisTlsFiles): Promise<string> =>
  connectRedis(url, { name: 'test-tls', log: createLogger('silent'), connectTimeoutMs: 1_000, tls }).then(
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
    expect(await failure(`rediss://127.0.0.1:${tlsPort}`)).toMatch(/certificate.*not trusted: give its CA in REDIS_TLS_CA_FILE or NODE_EXTRA_CA_CERTS, and name in REDIS_URL a host the certificate names\)$/);
  });

  it('REDIS_TLS_CA_FILE alone trusts a server of a private CA', async () => {
    const client = await connectRedis(`rediss://127.0.0.1:${tlsPort}`, { name: 'test-tls', log: createLogger('silent'), tls: { caFile: pki.ca } });
    expect(await client.ping()).toBe('PONG');
    client.disconnect();
  });

  it('a server that asks for a client certificate: taken from REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE, and named when missing', async () => {
    const url = `rediss://127.0.0.1:${mtlsPort}`;
    const client = await connectRedis(url, { name: 'test-mtls', log: createLogger('silent'), tls: { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey } });
    await client.set('mtls-key', 'stored');
    expect(await client.get('mtls-key')).toBe('stored');
    client.disconnect();
    expect(await failure(url, { caFile: pki.ca })).toMatch(/asks for a client certificate: give it in REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE\)$/);
    const stranger = makeTestPki();
    try {
      expect(await failure(url, { caFile: pki.ca, certFile: stranger.clientCert, keyFile: stranger.clientKey })).toMatch(/refused the client certificate of REDIS_TLS_CERT_FILE/);
    } finally {
      rmSync(stranger.dir, { recursive: true, force: true });
    }
  });

  it('TLS files with a redis:// URL are refused: they would be ignored and the password sent in plaintext', async () => {
    expect(await failure(`redis://127.0.0.1:${tlsPort}`, { caFile: pki.ca })).toMatch(/^REDIS_TLS_\*: TLS files need a rediss:\/\/ URL/);
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
