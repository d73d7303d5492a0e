/**
 * REDIS_TLS_* files as ioredis takes them: read again whenever ioredis copies `tls` into a new
 * socket's options (a reconnect), so a rotated set is used without a restart; a set TLS cannot use
 * (a key that does not match its certificate, a half-written PEM, a file gone) half-way through a
 * rotation keeps the last usable set, with a warn line: it made tls.connect throw, and ioredis ended
 * the client for good (review diff15).
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { Logger } from '../../src/log/logger.js';
import { ConfigError } from '../../src/config/config.js';
import { tlsSettings } from '../../src/ports/redis.js';
import { makeTestPki, type TestPki } from '../helpers/test-pki.js';

const [one, two] = [makeTestPki(), makeTestPki()];
const dirs: string[] = [one.dir, two.dir];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** REDIS_TLS_* files in a directory of their own, holding `pki`'s CA and client pair */
function mounted(pki: TestPki) {
  const dir = mkdtempSync(join(tmpdir(), 'hubtier-redis-tls-unit-'));
  dirs.push(dir);
  const at = { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
  mount(at, pki);
  return at;
}
function mount(at: { caFile: string; certFile: string; keyFile: string }, pki: TestPki): void {
  copyFileSync(pki.ca, at.caFile);
  copyFileSync(pki.clientCert, at.certFile);
  copyFileSync(pki.clientKey, at.keyFile);
}

/** what ioredis' StandaloneConnector does at each connect (each in a turn of its own) */
const socketOptions = (tls: object) => Object.assign({ host: '127.0.0.1' }, tls) as { ca?: Buffer; cert?: Buffer; key?: Buffer };
const nextConnect = () => new Promise((r) => setImmediate(r));
const sameAs = (o: ReturnType<typeof socketOptions>, pki: TestPki) =>
  [o.ca, o.cert, o.key].every((b, i) => b !== undefined && b.equals(readFileSync([pki.ca, pki.clientCert, pki.clientKey][i]!)));

describe('REDIS_TLS_* files', () => {
  it('are read again at each connect: a rotated CA, certificate and key are used from the next one on', async () => {
    const at = mounted(one);
    const warn = vi.fn();
    const tls = tlsSettings('rediss://127.0.0.1:1', at, { warn } as unknown as Logger) as object;
    expect(sameAs(socketOptions(tls), one)).toBe(true);
    mount(at, two);
    await nextConnect();
    expect(sameAs(socketOptions(tls), two)).toBe(true);
    expect(warn).not.toHaveBeenCalled();
  });

  it('half-way through a rotation (a key of another pair, a half-written key, a file gone) the last usable set is used, said in a warn line', async () => {
    const at = mounted(one);
    const warn = vi.fn();
    const tls = tlsSettings('rediss://127.0.0.1:1', at, { warn } as unknown as Logger) as object;
    copyFileSync(two.clientKey, at.keyFile);
    await nextConnect();
    expect(sameAs(socketOptions(tls), one)).toBe(true);
    expect(warn).toHaveBeenLastCalledWith(expect.objectContaining({ err: expect.stringMatching(/key values mismatch/) }), expect.stringMatching(/last usable set is used/));
    writeFileSync(at.keyFile, '-----BEGIN PRIVATE KEY-----\nMIIEv');
    await nextConnect();
    expect(sameAs(socketOptions(tls), one)).toBe(true);
    unlinkSync(at.certFile);
    await nextConnect();
    expect(sameAs(socketOptions(tls), one)).toBe(true);
    expect(warn).toHaveBeenCalledTimes(3);
    // the rotation done: the new set
    mount(at, two);
    await nextConnect();
    expect(sameAs(socketOptions(tls), two)).toBe(true);
  });

  it('a set that cannot be read or used at start fails the start', () => {
    const at = mounted(one);
    const log = { warn: vi.fn() } as unknown as Logger;
    copyFileSync(two.clientKey, at.keyFile);
    expect(() => tlsSettings('rediss://127.0.0.1:1', at, log)).toThrow(/key values mismatch/);
    unlinkSync(at.keyFile);
    expect(() => tlsSettings('rediss://127.0.0.1:1', at, log)).toThrow(/ENOENT/);
  });

  it('only the files given are fields, and files with redis:// are refused', () => {
    const at = mounted(one);
    const log = { warn: vi.fn() } as unknown as Logger;
    expect(Object.keys(tlsSettings('rediss://h', { caFile: at.caFile }, log) as object)).toEqual(['ca']);
    expect(tlsSettings('rediss://h', {}, log)).toBeUndefined();
    expect(() => tlsSettings('redis://h', at, log)).toThrow(ConfigError);
  });
});
