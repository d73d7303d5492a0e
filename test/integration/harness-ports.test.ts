import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// freePort hands out a port a listener below holds first: the race the harness must survive (a
// port free at the check, taken by another test's connection before the node binds it)
const ports = vi.hoisted(() => ({ queue: [] as number[], asked: 0 }));
vi.mock('../../load/harness/free-port.js', async (original) => {
  const real = await original<typeof import('../../load/harness/free-port.js')>();
  return {
    freePort: async () => {
      ports.asked++;
      return ports.queue.shift() ?? (await real.freePort());
    },
  };
});

const { ExitedError, startNode } = await import('../../load/harness/index.js');

function holdPort(): Promise<Server> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}
const portOf = (srv: Server) => (srv.address() as { port: number }).port;

describe('startNode: ports taken between the check and the bind', () => {
  let held: Server;
  beforeAll(async () => {
    held = await holdPort();
  });
  afterAll(() => new Promise<void>((resolve) => held.close(() => resolve())));

  it('chooses its ports again when one it chose is taken', async () => {
    ports.queue = [portOf(held)];
    ports.asked = 0;
    const node = await startNode({ measured: false });
    try {
      expect(node.port).not.toBe(portOf(held));
      // two for the first try (port, admin port), two for the second
      expect(ports.asked).toBe(4);
      expect((await fetch(`${node.adminUrl}/healthz`)).status).toBe(200);
    } finally {
      await node.stop();
    }
  });

  it('fails at once when the taken port is the one the caller gave', async () => {
    ports.queue = [];
    ports.asked = 0;
    const started = startNode({ measured: false, adminPort: portOf(held) });
    await expect(started).rejects.toBeInstanceOf(ExitedError);
    // in its output, wherever its stdout and stderr lines fell (the message holds the last 8 only)
    await expect(started).rejects.toMatchObject({ output: expect.stringMatching(/the port is in use/) });
    expect(ports.asked).toBe(1);
  });
});
