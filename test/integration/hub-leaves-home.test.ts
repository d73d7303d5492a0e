/**
 * A hub leaving a home (moved by the operator, or deleted) is an event of that home: its apps get
 * `removed` live, at a position of the home's history, and an app recovering from before it gets it
 * too; a moved hub's devices reach the new home's apps as at a first connect. Over real nodes: the
 * embedded default (one process, LMDB on disk) and a cluster (two nodes, NATS, Redis), where the
 * operator's node, the hub's and the apps' differ.
 */
import { afterAll, expect, it } from 'vitest';
import type { HubClient } from '../../load/wire/hub-client.js';
import { AppSocket } from '../helpers/app-socket.js';
import { hubWithLamp as lampHub, inBothModes } from '../helpers/both-modes.js';
import { api, type ServerProcess } from '../helpers/server-process.js';

const ADMIN = 'leaves-int-admin-token-0123456789';
const JWT = 'leaves-int-jwt-secret-0123456789abcdef';

function leavingSteps(mode: 'embedded' | 'cluster', nodes: () => ServerProcess[]): void {
  const at = (i: number) => nodes()[i % nodes().length]!;
  const admin = (i: number, method: string, path: string, body?: unknown) => api(at(i).httpUrl, method, path, ADMIN, body);
  const p = mode === 'cluster' ? 'c' : 'e';
  const open: Array<{ terminate(): unknown } | { close(): unknown }> = [];

  afterAll(async () => {
    await Promise.allSettled(open.map((o) => ('terminate' in o ? o.terminate() : o.close())));
  });

  /** A provisioned hub online on node 1, with one device known and reported. */
  async function hubWithLamp(hubId: string, homeId: string): Promise<HubClient> {
    const { hub } = await lampHub(at(0), at(1), ADMIN, hubId, homeId);
    open.push(hub);
    return hub;
  }

  /** An app socket on node 0 subscribed to `homeId` (from `since`, when given); answers it with the `sub` answer. */
  async function app(homeId: string, since?: object): Promise<{ socket: AppSocket; result: any }> {
    const token = (await admin(0, 'POST', '/v1/admin/tokens', { sub: `${p}-user`, homes: [homeId] })).body.token as string;
    const socket = new AppSocket(`${at(0).wsUrl}/app/v1?token=${token}`);
    open.push(socket);
    await socket.opened();
    const reply = await socket.request({ op: 'sub', home: homeId, ...(since ? { since } : {}) });
    expect(reply.op).toBe('ok');
    return { socket, result: reply.result };
  }

  const eventOf = (socket: AppSocket, hub: string, kind: string) => socket.next((m) => m.op === 'evt' && m.hub === hub && m.kind === kind);

  it('moves a hub: the old home’s apps get `removed` live and when recovering, the new home’s get its devices', async () => {
    const id = `${p}-moving`;
    const [from, to] = [`${p}-old-home`, `${p}-new-home`];
    const old = await app(from);
    const fresh = await app(to);
    const hub = await hubWithLamp(id, from);
    // the report's position in the old home: an app that saw it, then lost its socket, recovers from here
    const seen = (await eventOf(old.socket, id, 'state')).pos;

    const moved = await admin(0, 'POST', `/v1/admin/hubs/${id}/move`, { homeId: to });
    expect(moved.status).toBe(200);
    const removed = await eventOf(old.socket, id, 'removed');
    expect(removed).toMatchObject({ home: from, hub: id, reason: 'moved', pos: { epoch: seen.epoch } });
    expect(removed.pos.offset).toBeGreaterThan(seen.offset);

    // as at a first connect: the devices its shadow holds, then (once it reconnects) online
    const devices = await eventOf(fresh.socket, id, 'devices');
    expect(devices).toMatchObject({ home: to, joined: [{ d: 'lamp', k: 'switch', m: 'L-1' }], left: [] });
    expect(devices.pos).toBeDefined();
    expect((await hub.closed).code).toBe(4008);
    await hub.connect(at(1).wsUrl);
    await eventOf(fresh.socket, id, 'online');

    const recovering = await app(from, seen);
    expect(recovering.result).toMatchObject({ recovered: true, pos: seen });
    expect(await eventOf(recovering.socket, id, 'removed')).toMatchObject({ reason: 'moved', pos: removed.pos });
  });

  it('deletes a hub: its home’s apps get `removed` live, after the home’s last position; one recovering from there gets it too', async () => {
    const id = `${p}-deleted`;
    const home = `${p}-del-home`;
    const live = await app(home);
    const hub = await hubWithLamp(id, home);
    const seen = (await eventOf(live.socket, id, 'state')).pos;

    const del = await admin(0, 'DELETE', `/v1/admin/hubs/${id}`);
    expect(del.body).toEqual({ ok: true, hubId: id, closed: true });
    expect((await hub.closed).code).toBe(4006);
    const removed = await eventOf(live.socket, id, 'removed');
    expect(removed).toMatchObject({ home, hub: id, reason: 'deleted', pos: { epoch: seen.epoch } });
    expect(removed.pos.offset).toBeGreaterThan(seen.offset);

    // the deleted hub's events went with the home's history; `removed` stays: an app whose last event
    // was the one before it recovers it, one further behind reloads (too_old) and finds the hub gone
    const events = live.socket.messages.filter((m) => m.op === 'evt');
    const before = events[events.indexOf(removed) - 1].pos;
    const recovering = await app(home, before);
    expect(recovering.result).toMatchObject({ recovered: true, pos: before });
    expect(await eventOf(recovering.socket, id, 'removed')).toMatchObject({ reason: 'deleted', pos: removed.pos });
    const behind = await app(home, { epoch: seen.epoch, offset: seen.offset - 1 });
    expect(behind.result).toMatchObject({ recovered: false, reason: 'too_old' });
  });
}

inBothModes('a hub leaving its home', { ADMIN_TOKEN: ADMIN, JWT_SECRET: JWT }, leavingSteps);
