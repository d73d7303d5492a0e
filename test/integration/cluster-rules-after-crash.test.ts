/**
 * Cluster mode: a device event acknowledged to its hub by a node that is then killed (kill -9)
 * before the rule it triggered has run is evaluated by another node: the dead node's rules marks in
 * Redis are claimed once its liveness lapses, and the events past them replayed, so the leak
 * alarm's notification is not lost with the process; a clean stop (SIGTERM) loses no rule's
 * command either, its own nodes' or another's. Real nats-server, redis-server and three nodes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { HubClient, HubClientError } from '../../load/wire/hub-client.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { eventually } from '../helpers/eventually.js';
import { alarmWithStuckValve, pushedLeak, valveClose } from '../helpers/leak-alarm.js';

const HOME = 'home-leak';
const tokens = { ADMIN_TOKEN: 'cluster-crash-admin-token-0123456789', JWT_SECRET: 'cluster-crash-jwt-secret-0123456789abcdef' };
const REPLAYED = 'rules: events a dead node had not evaluated replayed';

describe('rules after a kill -9 of a node in cluster mode', { timeout: 90_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let env: Record<string, string>;
  const nodes: ServerProcess[] = [];
  const clients: HubClient[] = [];

  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    // a dead node is found within 3 s, its marks claimed at the next orphan check (every 10 s)
    env = { ...tokens, NATS_URL: nats.url, REDIS_URL: redis.url, TIER_REDIS_PREFIX: uniquePrefix(), TIER_DIRECTORY_TTL_MS: '3000' };
  }, 30_000);

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.terminate()));
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
  });

  const start = async (name: string) => {
    const node = await startServerProcess({ ...env, NODE_ID: `node-${name}` });
    nodes.push(node);
    return node;
  };

  /** Connects as a hub does after its node died: a refusal it is told to retry is retried. */
  const reconnect = async (url: string, id: string, secret: string): Promise<HubClient> => {
    for (let attempt = 0; ; attempt++) {
      const c = new HubClient({ url, hubId: id, secret });
      clients.push(c);
      try {
        await c.connect();
        return c;
      } catch (err) {
        const retry = err instanceof HubClientError && (err.temporary === true || err.code === 'closed' || err.status === 503);
        if (!retry) throw err;
        await new Promise((r) => setTimeout(r, Math.min(1_000, 100 * 2 ** attempt)));
      }
    }
  };

  it('a leak alarm acknowledged by the killed node notifies through the node that takes over', async ({ signal }) => {
    const [a, b, victim] = [await start('a'), await start('b'), await start('victim')];
    const created = await api(a.httpUrl, 'POST', '/v1/admin/hubs', tokens.ADMIN_TOKEN, { hubId: 'leak-hub', homeId: HOME });
    expect(created.status).toBe(201);
    // the valve never answers on the victim: the run is inside its first action when the node dies
    const hub = new HubClient({ url: victim.wsUrl, hubId: 'leak-hub', secret: created.body.secret });
    clients.push(hub);
    // acknowledged: the event is in Redis; the rule has begun (its command is out)
    await alarmWithStuckValve(hub, 'leak-hub', (body) => api(a.httpUrl, 'POST', `/v1/homes/${HOME}/rules`, tokens.ADMIN_TOKEN, body));
    await victim.kill();
    const alive = [a, b];
    expect(alive.concat(victim).some((n) => n.logs.some(pushedLeak))).toBe(false);

    // the hub comes back on another node, which answers the valve this time
    const back = await reconnect(a.wsUrl, 'leak-hub', created.body.secret);
    const closed = valveClose(back, 60_000);

    const line = await eventually(signal, 'the notification', async () => alive.flatMap((n) => n.logs).find(pushedLeak));
    expect(line).toMatchObject({ homeId: HOME, body: 'level 3' });
    await closed;
    const replay = alive.flatMap((n) => n.logs).filter((l) => l.msg === REPLAYED);
    expect(replay).toEqual([expect.objectContaining({ homes: 1, replayed: 1, missed: 0 })]);
  });

  it("a rule's command the drain of a node stopped cleanly (SIGTERM) cut goes on at the node that takes its pending runs", async ({ signal }) => {
    const [c, victim] = [await start('c'), await start('victim-2')];
    const created = await api(c.httpUrl, 'POST', '/v1/admin/hubs', tokens.ADMIN_TOKEN, { hubId: 'drained-hub', homeId: 'home-drained' });
    const hub = new HubClient({ url: victim.wsUrl, hubId: 'drained-hub', secret: created.body.secret });
    clients.push(hub);
    await alarmWithStuckValve(hub, 'drained-hub', (body) => api(c.httpUrl, 'POST', '/v1/homes/home-drained/rules', tokens.ADMIN_TOKEN, body));
    // as firmware does: told to reconnect elsewhere, it goes, and its valve's `close` is answered session_closed
    hub.on('reconnect', () => void hub.terminate());
    expect(await victim.stop()).toBe(0);
    expect(victim.logs.find((l) => l.msg === 'rules: run cut short by the stop; its actions from the one cut are kept for the next start')).toMatchObject({ homeId: 'home-drained', action: 0 });
    expect(victim.logs.some(pushedLeak)).toBe(false);

    const back = await reconnect(c.wsUrl, 'drained-hub', created.body.secret);
    const closes: string[] = [];
    back.onCommand((cmd) => {
      closes.push(cmd.m);
      return { ok: true };
    });
    // a node takes the stopped node's pending runs at its next orphan check (every 10 s)
    const all = () => nodes.flatMap((n) => n.logs);
    const line = await eventually(signal, 'the notification', async () => all().find((l) => pushedLeak(l) && l.homeId === 'home-drained'));
    expect(line).toMatchObject({ body: 'level 3' });
    expect(closes).toEqual(['close']);
    expect(all().filter((l) => pushedLeak(l) && l.homeId === 'home-drained')).toHaveLength(1);
  });

  it("a rule's command to a hub of another node, which the drain of that node moved away before it answered, goes again to the hub's new node (review diff22)", async ({ signal }) => {
    const [d, victim] = [await start('d'), await start('victim-3')];
    const hub = async (hubId: string) => (await api(d.httpUrl, 'POST', '/v1/admin/hubs', tokens.ADMIN_TOKEN, { hubId, homeId: 'home-split' })).body.secret as string;
    const [sensorSecret, valveSecret] = [await hub('split-sensor'), await hub('split-valve')];
    const sensor = new HubClient({ url: d.wsUrl, hubId: 'split-sensor', secret: sensorSecret });
    const valve = new HubClient({ url: victim.wsUrl, hubId: 'split-valve', secret: valveSecret });
    clients.push(sensor, valve);
    // the valve's hub is on the node about to stop and never answers there; the rule runs on d
    valve.onCommand(() => new Promise(() => undefined));
    await Promise.all([sensor.connect(), valve.connect()]);
    await sensor.report({ sensor: { wet: false } });
    await valve.report({ valve: { open: true } });
    const rule = await api(d.httpUrl, 'POST', '/v1/homes/home-split/rules', tokens.ADMIN_TOKEN, {
      name: 'Leak',
      triggers: [{ type: 'event', hub: 'split-sensor', device: 'sensor', event: 'alarm' }],
      actions: [
        { type: 'command', hub: 'split-valve', device: 'valve', method: 'close', timeoutMs: 30_000 },
        { type: 'notify', title: 'Water leak', body: 'level {{ event.params.level }}' },
      ],
    });
    expect(rule.status).toBe(201);
    const closing = valveClose(valve, 30_000);
    await sensor.event('sensor', 'alarm', { level: 3 });
    await closing;
    // as firmware does: told to reconnect elsewhere, it goes; d's rule hears `session_closed`
    valve.on('reconnect', () => void valve.terminate());
    expect(await victim.stop()).toBe(0);

    const back = await reconnect(d.wsUrl, 'split-valve', valveSecret);
    const closes: string[] = [];
    back.onCommand((cmd) => {
      closes.push(cmd.m);
      return { ok: true };
    });
    // the push queue is the cluster's: any node's worker may send it
    const split = () => nodes.flatMap((n) => n.logs).filter((l) => pushedLeak(l) && l.homeId === 'home-split');
    const line = await eventually(signal, 'the notification', async () => split()[0]);
    expect(line).toMatchObject({ body: 'level 3' });
    // sent again, at least once: its answer was never heard (a `set` is what such a rule should send)
    expect(closes).toEqual(['close']);
    expect(split()).toHaveLength(1);
  });
});
