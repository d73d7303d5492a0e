import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, type Backend } from './backend.js';
import { removeAtExit } from './exit-hooks.js';
import { requireServer } from './missing-servers.js';

export interface RedisOptions {
  /** this port instead of a free one: a node started before its backend waits there @default a free port */
  port?: number;
  /** keep an append-only file across `stop`/`restart`, as a production Redis would @default false */
  persist?: boolean;
  /** how the append-only file is fsynced; setting it implies `persist` @default 'everysec' */
  appendfsync?: 'always' | 'everysec' | 'no';
  /** clients must AUTH with this password (`--requirepass`); `url` stays without it @default none */
  requirePass?: string;
}

/**
 * Starts a redis-server on a free port of 127.0.0.1, its working dir under the OS temp dir and no
 * RDB snapshots. Without persistence the dir is removed by `stop` (and made again by `restart`);
 * with it, the append-only file survives `stop`/`restart` and is removed when this process ends.
 */
export async function startRedis(options: RedisOptions = {}): Promise<Backend> {
  const bin = requireServer('redis-server');
  const persist = options.persist === true || options.appendfsync !== undefined;
  const dir = mkdtempSync(join(tmpdir(), 'hubtier-redis-'));
  removeAtExit(dir);
  const durability = persist ? ['--appendonly', 'yes', '--appendfsync', options.appendfsync ?? 'everysec'] : ['--appendonly', 'no'];
  return startBackend({
    kind: 'redis',
    bin,
    port: options.port,
    args: (port) => {
      mkdirSync(dir, { recursive: true });
      const auth = options.requirePass !== undefined ? ['--requirepass', options.requirePass] : [];
      return ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...durability, '--dir', dir, '--protected-mode', 'no', ...auth];
    },
    cleanup: () => {
      if (persist) return; // the append-only file must outlive the stop
      rmSync(dir, { recursive: true, force: true }); // still removed at exit, should a restart make it again
    },
  });
}
