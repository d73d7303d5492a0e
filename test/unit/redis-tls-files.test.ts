/**
 * REDIS_TLS_* files as ioredis takes them: each field read again whenever ioredis copies `tls` into
 * a new socket's options (a reconnect), so a rotated file is used without a restart; a file gone
 * half-way through a rotation keeps its last contents, with a warn line.
 */
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Logger } from '../../src/log/logger.js';
import { ConfigError } from '../../src/config/config.js';
import { tlsSettings } from '../../src/ports/redis.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function files() {
  const dir = mkdtempSync(join(tmpdir(), 'hubtier-redis-tls-unit-'));
  dirs.push(dir);
  const at = { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
  writeFileSync(at.caFile, 'ca-1');
  writeFileSync(at.certFile, 'cert-1');
  writeFileSync(at.keyFile, 'key-1');
  return at;
}

/** what ioredis' StandaloneConnector does at each connect */
const socketOptions = (tls: object) => Object.assign({ host: '127.0.0.1' }, tls) as { ca?: Buffer; cert?: Buffer; key?: Buffer };
const text = (o: ReturnType<typeof socketOptions>) => [o.ca, o.cert, o.key].map(String);

describe('REDIS_TLS_* files', () => {
  it('are read again at each connect: a rotated CA, certificate and key are used from the next one on', () => {
    const at = files();
    const warn = vi.fn();
    const tls = tlsSettings('rediss://127.0.0.1:1', at, { warn } as unknown as Logger) as object;
    expect(text(socketOptions(tls))).toEqual(['ca-1', 'cert-1', 'key-1']);
    writeFileSync(at.caFile, 'ca-2');
    writeFileSync(at.certFile, 'cert-2');
    writeFileSync(at.keyFile, 'key-2');
    expect(text(socketOptions(tls))).toEqual(['ca-2', 'cert-2', 'key-2']);
    expect(warn).not.toHaveBeenCalled();
  });

  it('a file gone at a reconnect keeps its last contents, said in a warn line; one missing at start fails it', () => {
    const at = files();
    const warn = vi.fn();
    const tls = tlsSettings('rediss://127.0.0.1:1', at, { warn } as unknown as Logger) as object;
    writeFileSync(at.certFile, 'cert-2');
    unlinkSync(at.keyFile);
    expect(text(socketOptions(tls))).toEqual(['ca-1', 'cert-2', 'key-1']);
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ file: at.keyFile }), expect.stringMatching(/last contents are used/));
    expect(() => tlsSettings('rediss://127.0.0.1:1', at, { warn } as unknown as Logger)).toThrow(/ENOENT/);
  });

  it('only the files given are fields, and files with redis:// are refused', () => {
    const at = files();
    const log = { warn: vi.fn() } as unknown as Logger;
    expect(Object.keys(tlsSettings('rediss://h', { caFile: at.caFile }, log) as object)).toEqual(['ca']);
    expect(tlsSettings('rediss://h', {}, log)).toBeUndefined();
    expect(() => tlsSettings('redis://h', at, log)).toThrow(ConfigError);
  });
});
