/**
 * An operator's order given while a hub is connecting (upgraded, hello not yet sent) reaches it:
 * the session reads the hub's record once it listens for orders. Until 2026-12-06 a hub moved in
 * that gap opened in its old home and streamed its new home's state to the old home's apps, and a
 * deleted one re-created its shadow (a hostile review). An in-process node, a raw hub socket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { hubEndpoint, signedHeaders } from '../../load/wire/handshake.js';
import { decodeServer, encodeFrame, frames } from '../../load/wire/frames.js';
import { api } from '../helpers/server-process.js';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';

const ADMIN = 'admin-token-order-while-connecting-0123';
let node: InProcessNode;

beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'order-while-connecting-jwt-secret-012345');
});
afterAll(async () => {
  await node?.server.close();
});

/** Upgrades as `hubId`, lets `meanwhile` run, then says hello: how the socket closed. */
async function helloAfter(hubId: string, secret: string, meanwhile: () => Promise<void>): Promise<{ code: number; reason: string; welcomed: boolean }> {
  const ws = new WebSocket(hubEndpoint(node.wsUrl), { headers: signedHeaders(hubId, secret) });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let welcomed = false;
  ws.on('message', (data: Buffer) => {
    if (decodeServer(data).t === 2) welcomed = true;
  });
  await meanwhile();
  ws.send(encodeFrame(frames.hello('boot-1')));
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), welcomed })));
}

describe('an order given while the hub connects', () => {
  it('moved: the session closes 4008 hub_moved before its welcome, and the old home gets nothing of it', async () => {
    const made = await api(node.http, 'POST', '/v1/admin/hubs', ADMIN, { hubId: 'owc-1', homeId: 'owc-old' });
    expect(made.status).toBe(201);
    const closed = await helloAfter('owc-1', made.body.secret, async () => {
      expect((await api(node.http, 'POST', '/v1/admin/hubs/owc-1/move', ADMIN, { homeId: 'owc-new' })).status).toBe(200);
    });
    expect(closed).toEqual({ code: 4008, reason: 'hub_moved', welcomed: false });
  });

  it('deleted: the session closes 4006 hub_disabled and leaves no shadow behind', async () => {
    const made = await api(node.http, 'POST', '/v1/admin/hubs', ADMIN, { hubId: 'owc-2', homeId: 'owc-home' });
    const closed = await helloAfter('owc-2', made.body.secret, async () => {
      expect((await api(node.http, 'DELETE', '/v1/admin/hubs/owc-2', ADMIN)).status).toBe(200);
    });
    expect(closed).toMatchObject({ code: 4006, reason: 'hub_disabled', welcomed: false });
    expect((await api(node.http, 'GET', '/v1/hubs/owc-2', ADMIN)).status).toBe(404);
  });
});
