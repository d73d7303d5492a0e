/**
 * A node behind an ingress (TIER_TRUSTED_PROXIES, here the test's own 127.0.0.1 standing in for it):
 * the audit trail and the admin-token lockout go by the address the proxy vouches for, not the
 * proxy's; a node that trusts no proxy ignores the header (review "logs": behind an ingress ten
 * anonymous wrong tokens locked the operator's own out, and every audit entry named the ingress).
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const ADMIN = 'proxies-admin-token-0123456789abcdef';
const JWT = 'proxies-jwt-secret-0123456789abcdef-0123';

async function call(node: ServerProcess, method: string, path: string, token: string, forwardedFor?: string, body?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (forwardedFor !== undefined) headers['x-forwarded-for'] = forwardedFor;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${node.httpUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: await res.json().catch(() => null) };
}

describe('TIER_TRUSTED_PROXIES against a real node', { timeout: 60_000 }, () => {
  let behind: ServerProcess;
  let direct: ServerProcess;
  beforeAll(async () => {
    const env = { DATA_DIR: ':memory:', ADMIN_TOKEN: ADMIN, JWT_SECRET: JWT, TIER_ADMIN_TOKEN_GUESSES: '3' };
    [behind, direct] = await Promise.all([startServerProcess({ ...env, TIER_TRUSTED_PROXIES: '127.0.0.1,::1' }), startServerProcess(env)]);
  }, 60_000);
  afterAll(async () => {
    await Promise.allSettled([behind?.stop(), direct?.stop()]);
  });

  it('the audit entry names the address the trusted proxy forwarded; a node trusting none names its peer', async () => {
    expect((await call(behind, 'POST', '/v1/admin/hubs', ADMIN, '6.6.6.6, 203.0.113.7', { hubId: 'px-hub', homeId: 'px-home' })).status).toBe(201);
    expect((await call(direct, 'POST', '/v1/admin/hubs', ADMIN, '203.0.113.7', { hubId: 'px-hub', homeId: 'px-home' })).status).toBe(201);
    const from = async (node: ServerProcess) => {
      for (;;) {
        const page = await call(node, 'GET', '/v1/admin/audit?hubId=px-hub', ADMIN);
        if (page.body?.entries?.length > 0) return page.body.entries[0].from.ip as string;
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    expect(await from(behind)).toBe('203.0.113.7');
    // a proxy that adds a header line of its own after the client's: the last line's hop is the caller (review diff9)
    const twoLines = await new Promise<number>((resolve, reject) => {
      const req = request(`${behind.httpUrl}/v1/admin/hubs`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json', 'x-forwarded-for': ['192.0.2.1', '203.0.113.8'] } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end(JSON.stringify({ hubId: 'px-hub-2', homeId: 'px-home' }));
    });
    expect(twoLines).toBe(201);
    for (;;) {
      const page = await call(behind, 'GET', '/v1/admin/audit?hubId=px-hub-2', ADMIN);
      if (page.body?.entries?.length > 0) {
        expect(page.body.entries[0].from.ip).toBe('203.0.113.8');
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await from(direct)).toMatch(/^(127\.0\.0\.1|::1|0000:0000:0000:0000:0000:0000:0000:0001)$/);
  });

  it('wrong admin tokens lock out the address that sent them, not every caller behind the proxy', async () => {
    for (let i = 0; i < 3; i++) expect((await call(behind, 'GET', '/v1/admin/hubs', 'wrong-admin-token-000000000000000', '203.0.113.66')).status).toBe(401);
    expect((await call(behind, 'GET', '/v1/admin/hubs', ADMIN, '203.0.113.66')).status).toBe(429);
    expect((await call(behind, 'GET', '/v1/admin/hubs', ADMIN, '198.51.100.1')).status).toBe(200);
    expect((await call(behind, 'GET', '/v1/admin/hubs', ADMIN)).status).toBe(200);
    // without trust, the header changes nothing: the peer is locked out whatever it claims
    for (let i = 0; i < 3; i++) expect((await call(direct, 'GET', '/v1/admin/hubs', 'wrong-admin-token-000000000000000', '203.0.113.66')).status).toBe(401);
    expect((await call(direct, 'GET', '/v1/admin/hubs', ADMIN, '198.51.100.1')).status).toBe(429);
  });
});
