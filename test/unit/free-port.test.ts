import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ephemeralStart, freePort, freePorts } from '../../load/harness/free-port.js';

describe('freePort', () => {
  it('hands out ports below the ephemeral range, where no outgoing connection takes its source port', async () => {
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(ephemeralStart());
    }
    // each one can be bound at once
    for (const port of ports.slice(0, 5)) {
      await new Promise<void>((resolve, reject) => {
        const srv = createServer().once('error', reject);
        srv.listen(port, '127.0.0.1', () => srv.close(() => resolve()));
      });
    }
  });

  it('reads the range from the kernel', () => {
    const range = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    expect(ephemeralStart()).toBe(Number(range[0]));
  });

  it('freePorts gives distinct ports (a node refuses PORT equal to ADMIN_PORT)', async () => {
    const ports = await freePorts(200);
    expect(new Set(ports).size).toBe(200);
  });
});
