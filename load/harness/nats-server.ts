import { startBackend, type Backend } from './backend.js';
import { requireServer } from './missing-servers.js';

/** Starts a nats-server (core NATS, no JetStream) on a free port of 127.0.0.1. */
export async function startNats(): Promise<Backend> {
  const bin = requireServer('nats-server');
  return startBackend({ kind: 'nats', bin, args: (port) => ['-a', '127.0.0.1', '-p', String(port)] });
}

