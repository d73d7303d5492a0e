import { afterAll, beforeAll, expect, it } from 'vitest';
import { hubAuthHeaderMap, hubCredentials } from '../../src/auth/hub-signature.js';
import { memoryPorts } from '../../src/compose/memory-ports.js';
import { startServer, type RunningServer } from '../../src/compose/server.js';
import { createLogger } from '../../src/log/logger.js';
import type { HubRegistry } from '../../src/ports/hub-registry/hub-registry.js';
import { inProcessConfig } from '../helpers/in-process-config.js';
import { upgradeAnswer, type Refusal } from '../helpers/upgrade-answer.js';

/**
 * A hub's upgrade while the node cannot read its registry (Redis away, in cluster mode): refused as
 * a temporary `internal` error with a Retry-After spread over 1–5 s, so a fleet reconnecting
 * through an outage backs off instead of retrying at once (PROTOCOL.md §2.1).
 */

const ADMIN = 'outage-admin-token-0123456789abc';
let server: RunningServer;
let registry: HubRegistry;
let away = false;

beforeAll(async () => {
  const config = inProcessConfig(ADMIN, 'outage-jwt-secret-0123456789abcdef');
  const log = createLogger('silent');
  server = await startServer(config, log, async (timers) => {
    const ports = memoryPorts(config, timers, log);
    registry = ports.registry;
    const get = registry.get.bind(registry);
    registry.get = (hubId) => (away ? Promise.reject(new Error("Stream isn't writeable and enableOfflineQueue options is false")) : get(hubId));
    return ports;
  });
});
afterAll(async () => {
  await server?.close();
});

/** The HTTP answer to a signed upgrade, or 'open'. */
function upgrade(hubId: string, secret: string): Promise<Refusal | 'open'> {
  return upgradeAnswer(`ws://127.0.0.1:${server.port}/hub/v1`, hubAuthHeaderMap(hubCredentials(hubId, secret)));
}

it('refuses upgrades with 503 unavailable (what ioredis says of a Redis that is down) and a Retry-After of 1–5 s while the registry is away, and admits once it is back', async () => {
  const secret = 'outage-hub-secret-0123456789';
  await registry.create({ hubId: 'out-1', homeId: 'out-home', model: undefined, secret, enabled: true, createdAt: Date.now() });
  away = true;
  const waits = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const answer = await upgrade('out-1', secret);
    expect(answer).toMatchObject({ status: 503, body: { code: 'unavailable', temporary: true } });
    if (answer !== 'open') waits.add(answer.retryAfter ?? 'none');
  }
  expect([...waits].every((w) => /^[1-5]$/.test(w))).toBe(true);
  // spread, not one value for the whole fleet
  expect(waits.size).toBeGreaterThan(1);
  away = false;
  expect(await upgrade('out-1', secret)).toBe('open');
});
