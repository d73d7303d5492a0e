/**
 * What a refused hub frame costs the hub, on a node started in-process: a refusal names (`ref`) only
 * a frame whose number it consumes (PROTOCOL.md §1, §3), and a devices frame `f: true` without its
 * list is refused, not read as "the hub has no devices".
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../../load/wire/hub-client.js';
import type { ErrorFrame, ServerToHubFrame } from '../../proto/frames.js';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';
import { api } from '../helpers/server-process.js';

const ADMIN = 'refusals-admin-token-0123456789';

let node: InProcessNode;
const clients: HubClient[] = [];
let n = 0;

beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'refusals-jwt-secret-0123456789abcdef');
});

afterAll(async () => {
  await node?.server.close();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.terminate()));
});

async function online(): Promise<{ c: HubClient; hubId: string }> {
  const hubId = `rf-${++n}`;
  const res = await api(node.http, 'POST', '/v1/admin/hubs', ADMIN, { hubId, homeId: 'rf-home' });
  expect(res.status).toBe(201);
  const c = new HubClient({ url: node.wsUrl, hubId, secret: res.body.secret as string, heartbeat: false });
  clients.push(c);
  await c.connect();
  return { c, hubId };
}

/** The next frame from the server that `match` accepts (listening from now on: call before sending). */
function next<F extends ServerToHubFrame>(c: HubClient, match: (f: ServerToHubFrame) => f is F): Promise<F> {
  return new Promise((resolve) => {
    const on = (f: ServerToHubFrame) => {
      if (!match(f)) return;
      c.off('frame', on);
      resolve(f);
    };
    c.on('frame', on);
  });
}

const isError = (f: ServerToHubFrame): f is ErrorFrame => f.t === 10;
const ackOf = (s: number) => (f: ServerToHubFrame): f is Extract<ServerToHubFrame, { t: 6 }> => f.t === 6 && f.s === s;

describe('a refusal names only a frame whose number it consumes', () => {
  it('an unknown frame type or a bye carrying an s is refused without ref, and that number is still the next', async () => {
    const { c } = await online();
    let refused = next(c, isError);
    c.sendFrame({ t: 13, s: 1 });
    expect(await refused).toMatchObject({ e: 'unknown_frame_type', f: 't' });
    expect((await refused).ref).toBeUndefined();
    refused = next(c, isError);
    // (a heartbeat's bad ts is dropped since 2026-12-06, not refused: a bye's empty msg still is)
    c.sendFrame({ t: 12, s: 1, msg: '' });
    expect(await refused).toMatchObject({ e: 'invalid_field', f: 'msg' });
    expect((await refused).ref).toBeUndefined();
    // s 1 was not consumed: the hub's next report takes it and is acknowledged
    expect(await c.report({ lamp: { on: true } })).toBe(1);
  });
});

describe('a devices frame f:true without j', () => {
  it('is refused invalid_field j, consumed, and removes no device', async () => {
    const { c, hubId } = await online();
    await c.devices({ f: true, j: [{ d: 'lamp', k: 'switch' }, { d: 'door', k: 'sensor.door' }] });
    await c.report({ lamp: { on: true }, door: { open: false } }); // s 2
    // its ack would be the wrong answer: waited for too, so the test fails rather than hangs
    const answer = next(c, (f): f is ServerToHubFrame => isError(f) || ackOf(3)(f));
    c.sendFrame({ t: 9, s: 3, f: true });
    expect(await answer).toMatchObject({ t: 10, e: 'invalid_field', f: 'j', ref: 3, tmp: false });
    // consumed: the next number is 4
    const acked = next(c, ackOf(4));
    c.sendFrame({ t: 4, s: 4, r: { lamp: { on: false } } });
    await acked;
    const shadow = await node.ports.shadows.load(hubId);
    expect(Object.keys(shadow).sort()).toEqual(['door', 'lamp']);
    expect(shadow.door).toMatchObject({ reported: { open: false } });
    expect(shadow.lamp).toMatchObject({ reported: { on: false } });
  });
});
