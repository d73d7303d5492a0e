/**
 * An app away while an embedded node is killed (kill -9) and started again recovers the device
 * events it missed, across the epoch the unclean start begins, when its `sub` says `carry`: the
 * events the node had acknowledged were kept. Until 2026-12-07 it was told `epoch_changed` and
 * reloaded a snapshot, which holds no device events: a doorbell pressed meanwhile was never shown
 * (review "kill9"). Without `carry` (an older app) the answer is still `epoch_changed`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import { freshDataDir } from '../../load/harness/index.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { AppSocket } from '../helpers/app-socket.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const dataDir = freshDataDir();
const tokens = { ADMIN_TOKEN: `admin-${randomBytes(12).toString('hex')}`, JWT_SECRET: `jwt-${randomBytes(16).toString('hex')}` };
const start = () => startServerProcess({ DATA_DIR: dataDir, ...tokens });
const HOME = 'home-door';

let server: ServerProcess | undefined;
const hubs: HubClient[] = [];
const apps: AppSocket[] = [];
afterAll(async () => {
  for (const a of apps) a.close();
  await Promise.allSettled(hubs.map((h) => h.terminate()));
  await server?.stop();
});

const app = async () => {
  const a = new AppSocket(`${server!.wsUrl}/app/v1?token=${tokens.ADMIN_TOKEN}`);
  apps.push(a);
  await a.opened();
  return a;
};
const presses = (a: AppSocket) => a.messages.filter((m) => m.op === 'evt' && m.kind === 'event');

it('an app recovers the presses acknowledged after a kill -9 with its position of the epoch before (carry); without carry it reloads', async () => {
  server = await start();
  const created = await api(server.httpUrl, 'POST', '/v1/admin/hubs', tokens.ADMIN_TOKEN, { hubId: 'door-1', homeId: HOME });
  expect(created.status).toBe(201);
  const secret = created.body.secret as string;
  const connectHub = async () => {
    const h = new HubClient({ url: server!.wsUrl, hubId: 'door-1', secret });
    hubs.push(h);
    await h.connect();
    return h;
  };
  let hub = await connectHub();
  const before = await app();
  expect(await before.request({ op: 'sub', home: HOME })).toMatchObject({ op: 'ok' });
  for (let i = 1; i <= 3; i++) await hub.event('bell', 'press', { n: i });
  await before.next((m) => m.op === 'evt' && m.kind === 'event' && m.params?.n === 3);
  const last = presses(before).at(-1)!.pos;
  before.close();

  await server.kill();
  server = await start();
  hub = await connectHub();
  for (let i = 4; i <= 5; i++) await hub.event('bell', 'press', { n: i });

  const back = await app();
  const answer = await back.request({ op: 'sub', home: HOME, since: last, carry: true });
  expect(answer).toMatchObject({ op: 'ok', result: { recovered: true, pos: { offset: last.offset } } });
  const epoch = answer.result.pos.epoch as string;
  expect(epoch).not.toBe(last.epoch);
  await back.next((m) => m.op === 'evt' && m.kind === 'event' && m.params?.n === 5);
  // every event after the position (the hub's coming online too), in order, in the new epoch, once
  const after = back.messages.filter((m) => m.op === 'evt');
  expect(after.map((m) => m.pos)).toEqual(after.map((_, i) => ({ epoch, offset: last.offset + 1 + i })));
  expect(presses(back).map((m) => m.params.n)).toEqual([4, 5]);

  const older = await app();
  expect(await older.request({ op: 'sub', home: HOME, since: last })).toMatchObject({ op: 'ok', result: { recovered: false, reason: 'epoch_changed' } });
  // a position past what the stop kept: events the app had were lost, their offsets given again
  const ahead = await app();
  expect(await ahead.request({ op: 'sub', home: HOME, since: { ...last, offset: last.offset + 1 }, carry: true })).toMatchObject({ op: 'ok', result: { recovered: false, reason: 'epoch_changed' } });
});
