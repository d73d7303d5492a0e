import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureServers, findOnPath, findServer, installCommand, MissingServerError } from '../../load/harness/index.js';

/** How the harness finds nats-server and redis-server, over fake executables in temp dirs. */
describe('harness: finding the servers', () => {
  let root: string;
  let bin: string;
  let sbin: string;
  let empty: string;

  const fake = (dir: string, name: string, mode = 0o755): string => {
    const path = join(dir, name);
    writeFileSync(path, '#!/bin/sh\n');
    chmodSync(path, mode);
    return path;
  };

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'hubtier-bin-'));
    bin = join(root, 'bin');
    sbin = join(root, 'sbin');
    empty = join(root, 'empty');
    for (const d of [bin, sbin, empty]) mkdirSync(d);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('finds an executable in the first PATH dir that has one', () => {
    const path = fake(bin, 'nats-server');
    fake(sbin, 'nats-server');
    expect(findOnPath('nats-server', [empty, bin, sbin].join(delimiter), [])).toBe(path);
  });

  it('passes over a file without execute permission and a directory of that name', () => {
    fake(empty, 'nats-server', 0o644);
    mkdirSync(join(bin, 'nats-server'));
    const path = fake(sbin, 'nats-server');
    expect(findOnPath('nats-server', [empty, bin].join(delimiter), [])).toBeNull();
    expect(findOnPath('nats-server', [empty, bin].join(delimiter), [sbin])).toBe(path);
  });

  it('searches the sbin dirs after PATH', () => {
    const path = fake(sbin, 'redis-server');
    expect(findServer('redis-server', { PATH: empty }, [sbin])).toEqual({ name: 'redis-server', path });
    const first = fake(bin, 'redis-server');
    expect(findServer('redis-server', { PATH: bin }, [sbin])).toEqual({ name: 'redis-server', path: first });
  });

  it('reports a server that is nowhere', () => {
    const found = findServer('redis-server', { PATH: empty }, [sbin]);
    expect(found.path).toBeNull();
    expect(found).toMatchObject({ reason: `not on PATH nor in ${sbin}` });
  });

  it('takes the path a variable names, and reports it (never searching instead) when it is wrong', () => {
    fake(bin, 'nats-server');
    const named = fake(root, 'my-nats');
    expect(findServer('nats-server', { PATH: bin, NATS_SERVER_BIN: named }, [])).toEqual({ name: 'nats-server', path: named });
    const wrong = findServer('nats-server', { PATH: bin, NATS_SERVER_BIN: join(root, 'nowhere') }, []);
    expect(wrong).toMatchObject({ path: null, reason: `NATS_SERVER_BIN=${join(root, 'nowhere')} is not an executable file` });
  });

  it('ensureServers gives both paths when both are there', () => {
    const nats = fake(bin, 'nats-server');
    const redis = fake(sbin, 'redis-server');
    expect(ensureServers({ env: { PATH: bin }, extraDirs: [sbin], install: false })).toEqual({ 'nats-server': nats, 'redis-server': redis });
  });

  it('ensureServers, not allowed to install, stops with each missing server and the command that installs it', () => {
    const nowhere = join(root, 'nowhere');
    let error: unknown;
    try {
      ensureServers({ env: { PATH: empty, NATS_SERVER_BIN: nowhere }, extraDirs: [], install: false });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(MissingServerError);
    const { message, missing } = error as MissingServerError;
    expect(missing.map((m) => m.name)).toEqual(['nats-server', 'redis-server']);
    expect(message).toContain(`nats-server: NATS_SERVER_BIN=${nowhere} is not an executable file`);
    expect(message).toContain('unset NATS_SERVER_BIN');
    // only redis-server is installable: the variable names nats-server's path
    expect(message).toContain(installCommand(['redis-server']));
    expect(message).not.toContain(installCommand(['nats-server', 'redis-server']));
  });

  it('the install command uses sudo unless the process is root', () => {
    expect(installCommand(['nats-server'], true)).toBe('apt-get update -qq && env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server');
    expect(installCommand(['nats-server', 'redis-server'], false)).toBe(
      'sudo apt-get update -qq && sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server redis-server',
    );
  });
});
