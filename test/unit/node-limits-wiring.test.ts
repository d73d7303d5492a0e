/**
 * The day's limits as a node composes them from its settings (unit tests cover each part): a
 * hub's handshakes (TIER_HUB_HELLOS_PER_MIN), wrong admin tokens on the public port and the admin
 * port together (TIER_ADMIN_TOKEN_GUESSES), and the admin port's Host names (ADMIN_ALLOWED_HOSTS).
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hubAuthHeaderMap, hubCredentials } from '../../src/auth/hub-signature.js';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';
import { upgradeAnswer } from '../helpers/upgrade-answer.js';

const ADMIN = 'wiring-admin-token-0123456789';
let node: InProcessNode;

beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'wiring-jwt-secret-0123456789abcdef', { TIER_HUB_HELLOS_PER_MIN: '2', TIER_ADMIN_TOKEN_GUESSES: '3', ADMIN_ALLOWED_HOSTS: 'hubtier-admin.monitoring.svc' });
});
afterAll(async () => {
  await node?.server.close();
});

const adminGet = (path: string, headers: Record<string, string>) =>
  new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: node.server.adminPort, path, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end();
  });

describe('a node with its limits set', () => {
  it('admits a hub TIER_HUB_HELLOS_PER_MIN times a minute, then 429 rate_limited with the seconds until its next hello', async () => {
    const provisioned = await fetch(`${node.http}/v1/admin/hubs`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ hubId: 'wire-hub', homeId: 'wire-home' }) });
    const { secret } = (await provisioned.json()) as { secret: string };
    const hello = () => upgradeAnswer(`${node.wsUrl}/hub/v1`, hubAuthHeaderMap(hubCredentials('wire-hub', secret)));
    expect(await hello()).toBe('open');
    expect(await hello()).toBe('open');
    const refused = await hello();
    expect(refused).toMatchObject({ status: 429, body: { code: 'rate_limited' } });
    // two a minute: the next one in 30 s (less the moments the test took), not the 1–5 s of an outage
    expect(Number((refused as { retryAfter: string }).retryAfter)).toBeGreaterThanOrEqual(25);
    expect(Number((refused as { retryAfter: string }).retryAfter)).toBeLessThanOrEqual(30);
  });

  it('counts wrong admin tokens of both ports together, then refuses the address the right one too', async () => {
    const api = (token: string) => fetch(`${node.http}/v1/admin/hubs`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
    expect(await api('wrong-admin-token-1')).toBe(401);
    expect(await adminGet('/debug/log-level', { authorization: 'Bearer wrong-admin-token-2' })).toBe(401);
    expect(await api('wrong-admin-token-3')).toBe(401);
    expect(await api(ADMIN)).toBe(429);
    expect(await adminGet('/debug/log-level', { authorization: `Bearer ${ADMIN}` })).toBe(429);
  });

  it('answers the admin port under ADMIN_ALLOWED_HOSTS and IP addresses, 421 under any other name', async () => {
    expect(await adminGet('/healthz', { host: 'hubtier-admin.monitoring.svc:9090' })).toBe(200);
    expect(await adminGet('/healthz', { host: '10.2.3.4:9090' })).toBe(200);
    expect(await adminGet('/healthz', { host: 'rebound.example:9090' })).toBe(421);
  });
});
