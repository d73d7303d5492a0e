/**
 * A cluster node (a real process, its own nats-server and redis-server) whose Redis hangs
 * (SIGSTOP: connections stay open, nothing is answered). With no write failing to show it, the
 * node's PING of Redis reports it down (`tier_backend_up` 0, `/readyz` degraded) and up once it
 * answers again.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { api, logLine, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { eventually } from '../helpers/eventually.js';

describe('cluster node with a hung Redis', { timeout: 120_000 }, () => {
  let nats: Backend | undefined;
  let redis: Backend | undefined;
  let node: ServerProcess | undefined;
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
});
