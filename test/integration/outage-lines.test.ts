/**
 * Cluster mode, Redis stopped under a node holding hubs that then all disconnect: each session's
 * close fails (its directory entry cannot be released), and the node logs 10 `actor message failed`
 * lines and one summary with the count of the rest, not one line per hub.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { eventually } from '../helpers/eventually.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const HUBS = 25;

describe('lines of a Redis outage (cluster mode)', { timeout: 90_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let node: ServerProcess;
  const hubs: HubClient[] = [];

  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    node = await startServerProcess({ NATS_URL: nats.url, REDIS_URL: redis.url, TIER_REDIS_PREFIX: uniquePrefix() });
  }, 60_000);
  afterAll(async () => {
    await Promise.allSettled(hubs.map((h) => h.terminate()));
    await node?.stop();
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
  });

  it("the hub sessions' failed closes: 10 lines, then one summary counting the rest", async ({ signal }) => {
    for (let i = 0; i < HUBS; i++) {
      const created = await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId: `outage-hub-${i}`, homeId: 'home-outage' });
      expect(created.status).toBe(201);
      const hub = new HubClient({ url: node.wsUrl, hubId: `outage-hub-${i}`, secret: created.body.secret, heartbeat: false });
      await hub.connect();
      hubs.push(hub);
    }
    await redis.stop();
    const from = node.logs.length;
    await Promise.all(hubs.map((h) => h.terminate()));
    const failedCloses = () => node.logs.slice(from).filter((l) => l.msg === 'actor message failed');
    const summaryOf = () => node.logs.slice(from).find((l) => l.msg === 'actor message failures not logged' && l.kind === 'hub:closed');
    // the summary, or (unsampled) a line for every hub
    await eventually(signal, 'the summary of failed closes', async () => (summaryOf() ?? (failedCloses().length >= HUBS || undefined)));
    const failed = failedCloses();
    const summary = summaryOf();
    expect(failed).toHaveLength(10);
    expect(failed.every((l) => l.message === 'closed' && String(l.actor).startsWith('hub:'))).toBe(true);
    expect(summary).toMatchObject({ level: 50, skipped: HUBS - 10, windowMs: 10_000 });
  });
});
