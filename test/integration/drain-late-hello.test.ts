/**
 * A hub whose socket was upgraded before the drain but whose hello comes during it: the drain's list
 * holds only the sessions online when it began. PROTOCOL.md §7 "Draining": the node sends
 * `reconnect {e:"draining"}` and closes 1001. Until 2026-12-06 this hub was welcomed, its reports
 * acknowledged, and its socket left open until the process ended (a race review).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { hubEndpoint, signedHeaders } from '../../load/wire/handshake.js';
import { decodeServer, encodeFrame, frames } from '../../load/wire/frames.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { api } from '../helpers/server-process.js';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';

const ADMIN = 'admin-token-drain-late-hello-0123456789';
let node: InProcessNode;

beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'drain-late-hello-jwt-secret-0123456789');
});
afterAll(async () => {
  await node?.server.close();
});

describe('a hello that arrives while the node drains', () => {
  it('is told to reconnect and closed 1001, never welcomed, while the drain waits for another hub\'s command result', async () => {
    // hub A: online, with a command it never answers, so the drain waits up to 5 s for its result
    const a = await api(node.http, 'POST', '/v1/admin/hubs', ADMIN, { hubId: 'race-a', homeId: 'race-home' });
    const hubA = new HubClient({ url: node.wsUrl, hubId: 'race-a', secret: a.body.secret, heartbeat: false });
    hubA.onCommand(() => new Promise(() => {}));
    await hubA.connect();
    await hubA.devices({ f: true, j: [{ d: 'sw1', k: 'switch' }] });
    const cmd = api(node.http, 'POST', '/v1/hubs/race-a/devices/sw1/commands', ADMIN, { method: 'toggle', params: {} });
    await new Promise((r) => setTimeout(r, 200));

    // hub B: upgraded before the drain, hello not yet sent
    const b = await api(node.http, 'POST', '/v1/admin/hubs', ADMIN, { hubId: 'race-b', homeId: 'race-home' });
    const ws = new WebSocket(hubEndpoint(node.wsUrl), { headers: signedHeaders('race-b', b.body.secret) });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const got: Array<{ t: number; e?: unknown; at: number }> = [];
    const t0 = Date.now();
    ws.on('message', (data: Buffer) => {
      const f = decodeServer(data) as { t: number; e?: unknown };
      got.push({ t: f.t, e: f.e, at: Date.now() - t0 });
    });
    const closed = new Promise<number>((resolve) => ws.once('close', resolve));

    const drained = node.server.close();
    await new Promise((r) => setTimeout(r, 100));
    ws.send(encodeFrame(frames.hello('boot-b')));
    expect(await closed).toBe(1001);
    expect(got.map((f) => [f.t, f.e])).toEqual([[11, 'draining']]);
    await drained;
    await cmd;
    hubA.terminate();
  }, 30_000);
});
