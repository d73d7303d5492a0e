import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Lowest port handed out: above the well-known services a machine runs (Redis, NATS, databases). */
const LOWEST = 10_000;
/** Ports tried below the ephemeral range before falling back to one the kernel picks. */
const TRIES = 20;
/**
 * Ports fetch() refuses ("bad port", the WHATWG Fetch standard's list) at or above LOWEST: a node
 * given one answered every test's fetch with a TypeError (test/integration/logs.test.ts, 2026-12-06).
 */
const FETCH_BAD_PORTS = new Set([10080]);

/**
 * A TCP port of 127.0.0.1 that was free a moment ago. It is drawn below the kernel's ephemeral
 * range (`ip_local_port_range`), where outgoing connections take their source ports: a port of
 * that range, free at the check, was now and then taken as a source port by another test's
 * connection before the node bound it. Another process may still bind it first, so callers that
 * can retry on a taken port do.
 */
export async function freePort(): Promise<number> {
  const below = ephemeralStart() - 1;
  if (below - LOWEST >= 1_000) {
    for (let i = 0; i < TRIES; i++) {
      const port = LOWEST + randomInt(below - LOWEST + 1);
      if (!FETCH_BAD_PORTS.has(port) && (await bind(port)) !== null) return port;
    }
  }
  const port = await bind(0);
  if (port === null) throw new Error('no free port');
  return port;
}

/** `n` distinct ports, each free a moment ago: two draws of `freePort` give the same one now and then. */
export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < n) {
    const port = await freePort();
    if (!ports.includes(port)) ports.push(port);
  }
  return ports;
}

/** The port bound (0: the kernel's choice) and released again; null when it was taken. */
function bind(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(null));
    srv.listen(port, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : null));
    });
  });
}

let start: number | undefined;

/** The first port of the kernel's ephemeral range (Linux; 32768 where it cannot be read). */
export function ephemeralStart(): number {
  if (start !== undefined) return start;
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    start = Number.isInteger(first) && first > 0 ? first : 32_768;
  } catch {
    start = 32_768;
  }
  return start;
}
