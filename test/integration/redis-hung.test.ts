/**
 * A cluster node (a real process, its own nats-server and redis-server) whose Redis hangs
 * (SIGSTOP: connections stay open, nothing is answered). With no write failing to show it, the
 * node's PING of Redis reports it down (`tier_backend_up` 0, `/readyz` degraded) and up once it
 * answers again; a drain (SIGTERM) during the hang goes through every bounded step, closes every
 * port without waiting on a QUIT Redis never answers, and exits 1 after `shutdown failed`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { AppSocket } from '../helpers/app-socket.js';
import { api, logLine, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { eventually } from '../helpers/eventually.js';

/** The drain's budget: 30 s grace less the 5 s preStop pause, stricter than deploy/k8s's 45 s grace since 2026-12-06. */
const GRACE_AFTER_PRESTOP_MS = 25_000;

describe('cluster node with a hung Redis', { timeout: 120_000 }, () => {
  let nats: Backend | undefined;
  let redis: Backend | undefined;
  let node: ServerProcess | undefined;
  let hub: HubClient | undefined;
  let paused = 0;

  const hang = () => {
    paused = redis!.pid;
    process.kill(paused, 'SIGSTOP');
  };
  const unhang = () => {
    if (paused !== 0) process.kill(paused, 'SIGCONT');
    paused = 0;
  };
  const redisState = async () => {
    const ready = await api(node!.adminUrl, 'GET', '/readyz', undefined);
    const metrics = await fetch(`${node!.adminUrl}/metrics`).then((r) => r.text());
    const up = /^tier_backend_up\{backend="redis"\} (\d)$/m.exec(metrics)?.[1];
    return { status: ready.status, degraded: ready.body.degraded as string[], up };
  };

  beforeEach(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    // pings every 200 ms: the hang is seen within a PING's 2 s timeout of it
    node = await startServerProcess({ NATS_URL: nats.url, REDIS_URL: redis.url, TIER_REDIS_PREFIX: uniquePrefix(), NODE_ID: 'node-hung', TIER_REDIS_PING_MS: '200' });
  }, 60_000);

  afterEach(async () => {
    // a stopped redis-server is continued first, whatever failed: it is stopped below like the rest
    unhang();
    await hub?.terminate();
    hub = undefined;
    await node?.stop();
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
  });

  it('reports Redis down while it hangs (metric and readiness body, the node still ready) and up once it answers', async ({ signal }) => {
    expect(await redisState()).toEqual({ status: 200, degraded: [], up: '1' });
    hang();
    // nothing writes meanwhile: only the node's PING can tell the hang
    const down = await eventually(signal, 'Redis reported down', async () => {
      const s = await redisState();
      return s.degraded.includes('redis') ? s : undefined;
    });
    expect(down).toEqual({ status: 200, degraded: ['redis'], up: '0' });
    expect(await logLine(node!, signal, (l) => l.msg === 'redis not answering')).toMatchObject({ level: 40 });
    unhang();
    const back = await eventually(signal, 'Redis reported up', async () => {
      const s = await redisState();
      return s.degraded.length === 0 ? s : undefined;
    });
    expect(back).toEqual({ status: 200, degraded: [], up: '1' });
    expect(await logLine(node!, signal, (l) => l.msg === 'redis answering again')).toMatchObject({ level: 30 });
  });

  it('tells an app that was away while an event went out without a position (its append reached Redis late) to reload, not that it recovered everything', async () => {
    const created = await api(node!.httpUrl, 'POST', '/v1/admin/hubs', node!.adminToken, { hubId: 'lost-hub', homeId: 'home-lost' });
    hub = new HubClient({ url: node!.wsUrl, hubId: 'lost-hub', secret: created.body.secret, heartbeat: false });
    await hub.connect();
    const url = `${node!.wsUrl}/app/v1?token=${node!.adminToken}`;
    const stays = new AppSocket(url);
    const away = new AppSocket(url);
    const evt = (n: number) => (m: any) => m.op === 'evt' && m.attrs?.n === n;
    try {
      await Promise.all([stays.opened(), away.opened()]);
      await stays.request({ op: 'sub', home: 'home-lost' });
      await away.request({ op: 'sub', home: 'home-lost' });
      await hub.report({ d: { n: 1 } });
      const last = (await away.next(evt(1))).pos;
      away.close();
      await away.closed;
      // the append of n: 2 reaches Redis over 1 s after it was sent: refused as late, stored nowhere
      hang();
      const acked = hub.report({ d: { n: 2 } });
      await new Promise((r) => setTimeout(r, 1_500));
      unhang();
      await acked.catch(() => undefined);
      const live = await stays.next(evt(2));
      expect(live.pos).toBeUndefined();
      const back = new AppSocket(url);
      try {
        await back.opened();
        const answer = await back.request({ op: 'sub', home: 'home-lost', since: last });
        // before 2026-12-05: recovered: true, and n: 2 never came
        expect(answer.result).toMatchObject({ recovered: false, reason: 'too_old' });
        // from a position after the lost event, recovery works as before
        await hub.report({ d: { n: 3 } });
        const after = (await stays.next(evt(3))).pos;
        expect(after).toBeDefined();
        await hub.report({ d: { n: 4 } });
        await stays.next(evt(4));
        const again = new AppSocket(url);
        try {
          await again.opened();
          expect((await again.request({ op: 'sub', home: 'home-lost', since: after })).result).toMatchObject({ recovered: true });
          expect((await again.next(evt(4))).pos.offset).toBe(after.offset + 1);
        } finally {
          again.close();
        }
      } finally {
        back.close();
      }
    } finally {
      stays.close();
      away.close();
    }
  });

  it('drains during the hang through every bounded step and exits 1 after shutdown failed, well within the grace', async ({ signal }) => {
    const created = await api(node!.httpUrl, 'POST', '/v1/admin/hubs', node!.adminToken, { hubId: 'hung-hub', homeId: 'home-hung' });
    hub = new HubClient({ url: node!.wsUrl, hubId: 'hung-hub', secret: created.body.secret, heartbeat: false });
    await hub.connect();
    await hub.report({ lamp: { on: true } });
    hang();
    // a report the node cannot make durable: the drain's flush gives up on it
    hub.report({ lamp: { on: false } }).catch(() => undefined);
    await eventually(signal, 'a shadow write pending', async () => ((await api(node!.adminUrl, 'GET', '/readyz', undefined)).body.backends?.shadows?.pendingWrites > 0 ? true : undefined));

    const code = await node!.stop();
    expect(code).toBe(1);
    const lines = node!.logs;
    const steps = lines.filter((l) => l.msg === 'drain step');
    expect(steps.map((l) => l.step)).toEqual(['stopped_accepting', 'hubs_told_to_reconnect', 'hub_sessions_closed', 'apps_told_to_reconnect', 'rules_stopped', 'state_flushed', 'ports_closed']);
    expect(steps.find((l) => l.step === 'state_flushed')).toMatchObject({ flushed: false });
    const closed = lines.findIndex((l) => l.msg === 'drain step' && l.step === 'ports_closed');
    const failed = lines.findIndex((l) => l.msg === 'shutdown failed');
    expect(failed).toBeGreaterThan(closed);
    expect(lines.filter((l) => 'stderr' in l || 'text' in l)).toEqual([]);
    // the drain's own account of its length, against what Kubernetes leaves it before SIGKILL
    const drainMs = steps.at(-1)!.ms as number;
    expect(drainMs).toBeLessThan(GRACE_AFTER_PRESTOP_MS);
  });
});
