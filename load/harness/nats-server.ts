import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackend, type Backend } from './backend.js';
import { removeAtExit } from './exit-hooks.js';
import { requireServer } from './missing-servers.js';

export interface NatsOptions {
  /** this port instead of a free one: a node started before its backend waits there @default a free port */
  port?: number;
  /**
   * Enable JetStream (`-js`) with file storage in a fresh dir under the OS temp dir (`-sd`). The
   * dir survives `stop`/`restart`, as a production store would, and is removed when this process
   * ends. @default false (core NATS only)
   */
  jetstream?: boolean;
  /** clients must log in as this user (`--user`/`--pass`); `url` stays without them @default none */
  auth?: { user: string; pass: string };
  /** a configuration file (`-c`); the port and address given here override its own @default none */
  config?: string;
}

/** Starts a nats-server on a free port of 127.0.0.1: core NATS, or with JetStream when asked. */
export async function startNats(options: NatsOptions = {}): Promise<Backend> {
  const bin = requireServer('nats-server');
  let store: string[] = [];
  if (options.jetstream === true) {
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-nats-'));
    removeAtExit(dir);
    store = ['-js', '-sd', dir];
  }
  const auth = options.auth ? ['--user', options.auth.user, '--pass', options.auth.pass] : [];
  return startBackend({ kind: 'nats', bin, port: options.port, args: (port) => [...(options.config ? ['-c', options.config] : []), '-a', '127.0.0.1', '-p', String(port), ...store, ...auth] });
}
