import { createLogger } from '../../src/log/logger.js';
import { memoryPorts } from '../../src/compose/memory-ports.js';
import { startServer, type RunningServer } from '../../src/compose/server.js';
import type { Ports } from '../../src/ports/ports.js';
import { inProcessConfig } from './in-process-config.js';
import { rulesWarmedUp } from './server-process.js';

/** A node started in the test's process on the memory ports, which the test keeps (to change what the API cannot, or to read the store). */
export interface InProcessNode {
  server: RunningServer;
  ports: Ports;
  /** http://127.0.0.1:port */
  http: string;
  /** ws://127.0.0.1:port */
  wsUrl: string;
}

/** `env`: settings on top of the in-process defaults (TIER_* variables). */
export async function startInProcessNode(adminToken: string, jwtSecret: string, env: Record<string, string> = {}): Promise<InProcessNode> {
  const config = inProcessConfig(adminToken, jwtSecret, env);
  const log = createLogger('silent');
  let ports: Ports | undefined;
  const server = await startServer(config, log, async (timers) => (ports = memoryPorts(config, timers, log)));
  await rulesWarmedUp(`http://127.0.0.1:${server.adminPort}`);
  return { server, ports: ports!, http: `http://127.0.0.1:${server.port}`, wsUrl: `ws://127.0.0.1:${server.port}` };
}
