/**
 * A device event acknowledged to its hub is in its home's history; after a kill -9 of the node the
 * rules it triggered are evaluated again at the next start (the events past the home's "evaluated
 * through" mark are replayed), so a rule's notification is not lost with the process. A report
 * acknowledged just before the kill, whose event the history had not written yet, is replayed from
 * the shadow (replay-reports.ts). A real embedded node on one DATA_DIR, killed and started again.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { FrameType, type CommandFrame } from '../../proto/frames.js';
import { freshDataDir } from '../../load/harness/index.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { alarmWithStuckValve, pushed, pushedLeak } from '../helpers/leak-alarm.js';
import { api, logLine, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const dataDir = freshDataDir();
const tokens = { ADMIN_TOKEN: `admin-${randomBytes(12).toString('hex')}`, JWT_SECRET: `jwt-${randomBytes(16).toString('hex')}` };
const start = (dir = dataDir) => startServerProcess({ DATA_DIR: dir, ...tokens });
const HOME = 'home-leak';

const clients: HubClient[] = [];
let server: ServerProcess | undefined;
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.terminate()));
  await server?.stop();
});

const admin = (method: string, path: string, body?: unknown) => api(server!.httpUrl, method, path, tokens.ADMIN_TOKEN, body);

describe('rules after a kill -9 of an embedded node', () => {
  it('a leak alarm acknowledged just before the kill still notifies after the restart', async () => {
    server = await start();
    const created = await admin('POST', '/v1/admin/hubs', { hubId: 'leak-hub', homeId: HOME });
    expect(created.status).toBe(201);
    // the valve never answers: the run is inside its first action when the node dies, so whether
    // the rule's notification was queued before the kill does not depend on how fast the node is
    const hub = new HubClient({ url: server.wsUrl, hubId: 'leak-hub', secret: created.body.secret });
    clients.push(hub);
    // acknowledged: the node stored the event; the rule has begun (its command is out)
    await alarmWithStuckValve(hub, 'leak-hub', (body) => admin('POST', `/v1/homes/${HOME}/rules`, body));
    await server.kill();
    expect(server.logs.some(pushedLeak)).toBe(false);

    server = await start();
    // the hub comes back, as hubs do after a restart: the replayed run's close waits for it (a
    // rule's command waits for an offline hub) and reaches it, then the notification goes
    const back = new HubClient({ url: server.wsUrl, hubId: 'leak-hub', secret: created.body.secret });
    clients.push(back);
    const closes: string[] = [];
    back.onCommand((cmd) => {
      closes.push(cmd.m);
      return { ok: true };
    });
    await back.connect();
    const line = await logLine(server, AbortSignal.timeout(30_000), pushedLeak);
    expect(line).toMatchObject({ homeId: HOME, body: 'level 3' });
    expect(closes).toEqual(['close']);
    const replay = server.logs.find((l) => l.msg === 'rules: events not evaluated before the last stop replayed');
    expect(replay).toMatchObject({ homes: 1, replayed: 1, missed: 0 });
  }, 90_000);

  it('a door opening reported just before the kill still runs its state-triggered rule after the restart', async () => {
    await server?.stop();
    const dir = freshDataDir();
    const home = 'home-door';
    server = await start(dir);
    const created = await admin('POST', '/v1/admin/hubs', { hubId: 'door-hub', homeId: home });
    expect(created.status).toBe(201);
    // the light never answers: the run is inside its first action when the node dies (see above)
    const hub = new HubClient({ url: server.wsUrl, hubId: 'door-hub', secret: created.body.secret });
    clients.push(hub);
    hub.onCommand((cmd) => (cmd.m === 'turn_on' ? new Promise(() => undefined) : hub.defaultHandler(cmd)));
    await hub.connect();
    const rule = await admin('POST', `/v1/homes/${home}/rules`, {
      name: 'Door light',
      triggers: [{ type: 'state', hub: 'door-hub', device: 'door', attr: 'open', from: false, to: true }],
      actions: [
        { type: 'command', hub: 'door-hub', device: 'light', method: 'turn_on', timeoutMs: 30_000 },
        { type: 'desired', hub: 'door-hub', device: 'light', desired: { on: true } },
        { type: 'notify', title: 'Door opened', body: 'open was {{ event.prev }}' },
      ],
    });
    expect(rule.status).toBe(201);
    // the rule's home sees the door closed (its value before the opening, live and after the restart)
    await hub.report({ door: { open: false }, light: { on: false } });
    // a device event's ack waits for its home's history commit: the closed door's report is in it
    await hub.event('door', 'battery_ok');

    const turningOn = hub.waitFor((f) => f.t === FrameType.command && (f as CommandFrame).m === 'turn_on', 30_000);
    // acknowledged: the open door is in the shadow's commit; its history event is in the open chunk
    await hub.report({ door: { open: true } });
    await turningOn;
    await server.kill();
    expect(server.logs.some(pushed('Door opened'))).toBe(false);

    server = await start(dir);
    // the hub comes back, as hubs do: the replayed run's command waits for it and is answered
    const back = new HubClient({ url: server.wsUrl, hubId: 'door-hub', secret: created.body.secret });
    clients.push(back);
    await back.connect();
    // `from: false` fires only with the value before it, remembered from the stored history
    const line = await logLine(server, AbortSignal.timeout(30_000), pushed('Door opened'));
    expect(line).toMatchObject({ homeId: home, body: 'open was false' });
    const replay = server.logs.find((l) => l.msg === 'rules: events not evaluated before the last stop replayed');
    expect(replay).toMatchObject({ homes: 1, missed: 0 });
    // the door's opening, and one earlier event when its mark (noted lazily when no rule ran on it,
    // src/rules/home-mark.ts) had not reached the disk before the kill (seen once in CI, 2026-12-05)
    expect([1, 2]).toContain(replay!.replayed);
    // replayed or not, an event runs its rule once: one notification
    expect(server.logs.filter(pushed('Door opened'))).toHaveLength(1);
    const shadow = await admin('GET', '/v1/hubs/door-hub/shadow');
    expect(shadow.body.devices).toMatchObject({ door: { reported: { open: true } }, light: { desired: { on: true } } });
  }, 90_000);
});

/** The valve answers its `close`: the hub as it comes back after a restart. */
async function answeringHub(hubId: string, secret: string): Promise<{ hub: HubClient; closes: string[] }> {
  const hub = new HubClient({ url: server!.wsUrl, hubId, secret });
  clients.push(hub);
  const closes: string[] = [];
  hub.onCommand((cmd) => {
    closes.push(cmd.m);
    return { ok: true };
  });
  await hub.connect();
  return { hub, closes };
}

const KEPT = 'rules: run cut short by the stop; its actions from the one cut are kept for the next start';
const RESUMED = 'rules: runs pending at the last stop (delays, actions a stop cut off) resumed';

/** A node on a fresh DATA_DIR whose hub `hubId` of `home` has its leak alarm acknowledged and the rule's `close` out, never answered. */
async function stuckLeak(home: string, hubId: string) {
  await server?.stop();
  const dir = freshDataDir();
  server = await start(dir);
  const created = await admin('POST', '/v1/admin/hubs', { hubId, homeId: home });
  const hub = new HubClient({ url: server.wsUrl, hubId, secret: created.body.secret });
  clients.push(hub);
  await alarmWithStuckValve(hub, hubId, (body) => admin('POST', `/v1/homes/${home}/rules`, body));
  return { dir, hub, secret: created.body.secret as string };
}

describe('rules a clean stop (SIGTERM) cut short', () => {
  it("a replay's run still waiting for its hub when the restarted node is stopped again runs at the start after (review \"restart\" F1)", async () => {
    const home = 'home-leak-twice';
    const { dir, secret } = await stuckLeak(home, 'twice-hub');
    await server!.kill();

    // the replay's run waits for the hub, which is not back before a rollout stops the node
    server = await start(dir);
    await logLine(server, AbortSignal.timeout(30_000), (l) => l.msg === 'rules: events not evaluated before the last stop replayed');
    expect(await server.stop()).toBe(0);
    expect(server.logs.some(pushedLeak)).toBe(false);
    expect(server.logs.find((l) => l.msg === KEPT)).toMatchObject({ homeId: home, action: 0 });

    server = await start(dir);
    const { closes } = await answeringHub('twice-hub', secret);
    expect(await logLine(server, AbortSignal.timeout(30_000), pushedLeak)).toMatchObject({ homeId: home, body: 'level 3' });
    expect(closes).toEqual(['close']);
    // the actions kept, not the event again: its mark had moved
    expect(server.logs.find((l) => l.msg === RESUMED)).toMatchObject({ late: 1, missed: 0 });
    expect(server.logs.some((l) => l.msg === 'rules: events not evaluated before the last stop replayed')).toBe(false);
  }, 120_000);

  it('a live run whose command the drain cut (its hub told to go) sends it again at the next start, then its notification', async () => {
    const home = 'home-leak-drained';
    const { dir, hub, secret } = await stuckLeak(home, 'drained-hub');
    // as firmware does: told to reconnect elsewhere, it goes, and its valve's `close` is answered session_closed
    hub.on('reconnect', () => void hub.terminate());
    expect(await server!.stop()).toBe(0);
    expect(server!.logs.find((l) => l.msg === KEPT)).toMatchObject({ homeId: home, action: 0 });
    // the run stopped at the command the drain cut: its notification waits with it
    expect(server!.logs.some(pushedLeak)).toBe(false);

    server = await start(dir);
    const { closes } = await answeringHub('drained-hub', secret);
    expect(await logLine(server, AbortSignal.timeout(30_000), pushedLeak)).toMatchObject({ homeId: home, body: 'level 3' });
    expect(closes).toEqual(['close']);
  }, 120_000);
});
