import { describe, expect, it } from 'vitest';
import { natsConnectTarget, redactUrl } from '../../src/config/backend-urls.js';
import { loadConfig } from '../../src/config/config.js';
import { refusal } from '../helpers/config-refusal.js';

const KEY = 'a3f1c2e4b5d6978800112233445566778899aabbccddeeff0011223344556677';
const PW = 'S3cretRedisPw';
const cluster = (over: Record<string, string>) => ({
  NATS_URL: 'nats://n:4222',
  REDIS_URL: 'redis://r:6379',
  ADMIN_TOKEN: 'admin-token-of-24-chars!',
  JWT_SECRET: 'jwt-secret-of-at-least-32-chars!',
  TIER_SECRET_KEY: KEY,
  ...over,
});


describe('backend URLs shown', () => {
  it.each([
    ['redis://:pw@h:6379/0', 'redis://:***@h:6379/0'],
    ['redis://user:pw@h:6379', 'redis://user:***@h:6379'],
    ['nats://nu:pw@h:4222', 'nats://nu:***@h:4222'],
    ['nats://tok@h:4222', 'nats://***@h:4222'],
    ['nats://a:p@h1:4222, nats://a:p@h2:4222', 'nats://a:***@h1:4222, nats://a:***@h2:4222'],
    // the userinfo ends at its last @ (as URL parses it): a password with @ is masked whole
    ['redis://:p@ss@h:6379', 'redis://:***@h:6379'],
    ['redis://:a,b@h:6379', 'redis://:***@h:6379'],
    ['nats://h:4222', 'nats://h:4222'],
    [':pw@h:6379', '***@h:6379'],
  ])('%s is shown as %s', (url, shown) => {
    expect(redactUrl(url)).toBe(shown);
  });

  it('a REDIS_URL of the wrong scheme is refused without its password', () => {
    const err = refusal(cluster({ REDIS_URL: `http://:${PW}@10.0.0.5:6379` }));
    // shown as parsed (WHATWG adds the path's slash), as logs show URLs
    expect(err.message).toBe('REDIS_URL: expected a redis: or rediss: URL, got http://:***@10.0.0.5:6379/');
  });

  it('a REDIS_URL that is not a URL is refused without its password', () => {
    const err = refusal(cluster({ REDIS_URL: `redis://:${PW}@host:port` }));
    expect(err.message).toMatch(/^REDIS_URL: not a URL: /);
    expect(err.message).not.toContain(PW);
  });

  it('a NATS_URL of the wrong scheme is refused without its password, naming the user', () => {
    const err = refusal(cluster({ NATS_URL: `http://nu:${PW}@h:4222` }));
    expect(err.message).toBe('NATS_URL: expected a nats: or tls: URL, got http://nu:***@h:4222/');
  });

  it('NATS_URL may list several servers (the client takes them all)', () => {
    expect(loadConfig(cluster({ NATS_URL: 'nats://a:p@h1:4222,nats://a:p@h2:4222' })).config.natsUrl).toBe('nats://a:p@h1:4222,nats://a:p@h2:4222');
    const err = refusal(cluster({ NATS_URL: `nats://a:${PW}@h1:4222,nats://b:other@h2:4222` }));
    expect(err.message).toMatch(/^NATS_URL: the servers name different credentials/);
    expect(err.message).not.toContain(PW);
  });
});

describe('NATS credentials from NATS_URL', () => {
  it('user and password become options, the servers lose them', () => {
    expect(natsConnectTarget('nats://nu:N4ts%40Pw@127.0.0.1:4222')).toEqual({ servers: ['nats://127.0.0.1:4222'], user: 'nu', pass: 'N4ts@Pw' });
  });

  it('a lone userinfo is a token', () => {
    expect(natsConnectTarget('nats://s3cr3t@h:4222,nats://s3cr3t@h2:4222')).toEqual({ servers: ['nats://h:4222', 'nats://h2:4222'], token: 's3cr3t' });
  });

  it('without userinfo nothing is added', () => {
    expect(natsConnectTarget(' nats://h:4222 , nats://h2:4222')).toEqual({ servers: ['nats://h:4222', 'nats://h2:4222'] });
  });

  it('a tls:// server requires TLS of every server: the client drops the scheme itself', () => {
    expect(natsConnectTarget('tls://u:p@h:4222')).toEqual({ servers: ['tls://h:4222'], user: 'u', pass: 'p', tls: {} });
    expect(natsConnectTarget('nats://h:4222,TLS://h2:4222')).toEqual({ servers: ['nats://h:4222', 'TLS://h2:4222'], tls: {} });
  });

  it('a % that starts no percent-escape is named, in NATS_URL and REDIS_URL, never a bare URIError', () => {
    expect(() => natsConnectTarget('nats://u:50%off@h:4222')).toThrow(/NATS_URL: .* % that starts no percent-escape: write % as %25/);
    expect(() => loadConfig({ NATS_URL: 'nats://u:50%off@h:4222', REDIS_URL: 'redis://h:6379', TIER_SECRET_KEY: 'a'.repeat(64) })).toThrow(/NATS_URL: .*write % as %25/);
    expect(() => loadConfig({ NATS_URL: 'nats://h:4222', REDIS_URL: 'redis://u:50%off@h:6379', TIER_SECRET_KEY: 'a'.repeat(64) })).toThrow(/REDIS_URL: .*write % as %25/);
    // the NATS files are read at start: one that cannot be, or a certificate without its key, is refused naming it
    const cluster = { NATS_URL: 'tls://h:4222', REDIS_URL: 'redis://h:6379', TIER_SECRET_KEY: '0123456789abcdef'.repeat(4), ADMIN_TOKEN: 'backend-urls-admin-token-0123456789', JWT_SECRET: 'backend-urls-jwt-secret-0123456789abcdef' };
    expect(() => loadConfig({ ...cluster, NATS_CREDS_FILE: '/nonexistent/user.creds' })).toThrow(/^NATS_CREDS_FILE: cannot read \/nonexistent\/user.creds: ENOENT/);
    expect(() => loadConfig({ ...cluster, NATS_TLS_CERT_FILE: import.meta.filename })).toThrow(/^NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE: a client certificate goes with its key/);
    expect(loadConfig({ ...cluster, NATS_TLS_CA_FILE: import.meta.filename }).config.natsTlsCaFile).toBe(import.meta.filename);
    // the Redis files likewise; and they need rediss://, which a redis:// URL would leave unused (in plaintext)
    const tlsRedis = { ...cluster, REDIS_URL: 'rediss://h:6379' };
    expect(() => loadConfig({ ...tlsRedis, REDIS_TLS_CA_FILE: '/nonexistent/ca.pem' })).toThrow(/^REDIS_TLS_CA_FILE: cannot read \/nonexistent\/ca.pem: ENOENT/);
    expect(() => loadConfig({ ...tlsRedis, REDIS_TLS_KEY_FILE: import.meta.filename })).toThrow(/^REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE: a client certificate goes with its key/);
    expect(() => loadConfig({ ...cluster, REDIS_TLS_CA_FILE: import.meta.filename })).toThrow(/^REDIS_TLS_CA_FILE: TLS files need REDIS_URL to be rediss:\/\//);
    expect(() => loadConfig({ ...cluster, REDIS_TLS_CERT_FILE: import.meta.filename, REDIS_TLS_KEY_FILE: import.meta.filename })).toThrow(/^REDIS_TLS_CERT_FILE: TLS files need REDIS_URL to be rediss:\/\//);
    expect(() => loadConfig({ REDIS_TLS_CA_FILE: import.meta.filename })).toThrow(/^REDIS_TLS_CA_FILE: TLS files need REDIS_URL/);
    const files = { REDIS_TLS_CA_FILE: import.meta.filename, REDIS_TLS_CERT_FILE: import.meta.filename, REDIS_TLS_KEY_FILE: import.meta.filename };
    expect(loadConfig({ ...tlsRedis, ...files }).config).toMatchObject({ redisTlsCaFile: import.meta.filename, redisTlsCertFile: import.meta.filename, redisTlsKeyFile: import.meta.filename });
    // a ws:// NATS server the node's client cannot reach is refused, not accepted and failed later
    expect(() => loadConfig({ NATS_URL: 'ws://h:8080', REDIS_URL: 'redis://h:6379', TIER_SECRET_KEY: 'a'.repeat(64) })).toThrow(/NATS_URL: expected a nats: or tls: URL/);
  });
});
