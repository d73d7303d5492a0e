/**
 * Admin tokens a page of another site has the operator's browser send (an app socket's `?token=`
 * or bearer subprotocol, the board's `?token=` and sign-in form) are refused unchecked and not
 * counted by the guess limit: before, such a page sent a few wrong ones and the operators' own
 * right token was answered 429 on both ports for as long as the page kept at it (review "web").
 * The headers are those Chromium sends (Origin, Sec-Fetch-Site); a real node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const ADMIN = 'foreign-admin-token-0123456789abcdef';
const JWT = 'foreign-jwt-secret-0123456789abcdef-0123';
const EVIL = { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' };

/** The app socket's upgrade: the status it was refused with, or 101. */
function upgrade(node: ServerProcess, token: string, headers: Record<string, string>, protocol?: string): Promise<number> {
  return new Promise((resolve) => {
    const url = `${node.wsUrl.replace(/\/hub\/v1$/, '')}/app/v1${protocol === undefined ? `?token=${encodeURIComponent(token)}` : ''}`;
    const ws = new WebSocket(url, protocol === undefined ? [] : [protocol], { headers });
    ws.on('open', () => {
      ws.close();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    ws.on('error', () => resolve(-1));
  });
}

const api = (node: ServerProcess, token: string) => fetch(`${node.httpUrl}/v1/admin/hubs`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);

describe('admin tokens sent on behalf of another site', { timeout: 60_000 }, () => {
  let node: ServerProcess;
  beforeAll(async () => {
    node = await startServerProcess({ DATA_DIR: ':memory:', ADMIN_TOKEN: ADMIN, JWT_SECRET: JWT, TIER_ADMIN_TOKEN_GUESSES: '3' });
  }, 60_000);
  afterAll(async () => {
    await node?.stop();
  });

  it('on the app socket: refused unchecked and uncounted, the right one too; a page of the node itself and a client that is no browser are checked', async () => {
    for (let i = 0; i < 6; i++) expect(await upgrade(node, `wrong-admin-${i}`, EVIL)).toBe(401);
    expect(await upgrade(node, 'wrong-admin-p', { origin: 'http://evil.example' }, `bearer.wrong-admin-p`)).toBe(401);
    // Chromium's upgrades carry no fetch metadata: the Origin tells, a sandboxed frame's `null` too (review "diff28")
    expect(await upgrade(node, 'wrong-admin-o', { origin: 'http://evil.example' })).toBe(401);
    expect(await upgrade(node, 'wrong-admin-n', { origin: 'null' })).toBe(401);
    expect(await upgrade(node, 'wrong-admin-n2', { origin: 'null' })).toBe(401);
    expect(await upgrade(node, ADMIN, EVIL)).toBe(401);
    // none of those counted: the operator's token still works
    expect(await api(node, ADMIN)).toBe(200);
    expect(await upgrade(node, ADMIN, {})).toBe(101);
    const host = new URL(node.httpUrl).host;
    expect(await upgrade(node, ADMIN, { origin: `http://${host}`, 'sec-fetch-site': 'same-origin' })).toBe(101);
    // the limit itself is on: wrong tokens from no other site lock the address out
    for (let i = 0; i < 3; i++) expect(await upgrade(node, `guess-${i}`, {})).toBe(401);
    expect(await api(node, ADMIN)).toBe(429);
  });
});
