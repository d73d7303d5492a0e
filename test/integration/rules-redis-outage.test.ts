/**
 * Cluster mode: the redis-server is stopped for longer than a home's rules cache (10 s) while its
 * hub goes on sending button presses, then started again. The home keeps evaluating with its cached
 * rules (each press rings the chime), its actor is neither failed nor stopped, and the node writes
 * few lines about it: before, each press past the ttl failed the home's message (an error line
 * with a stack), ten of them stopped the home and dropped what it had queued.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { HubClient } from '../../load/wire/hub-client.js';
import type { CommandFrame } from '../../proto/frames.js';
import { eventually } from '../helpers/eventually.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const HOME = 'home-outage';
const HUB = 'hub-outage';
const CACHED = 'rules: rule store unreachable; the home evaluates with its cached rules';

describe('rules while Redis restarts (cluster mode)', { timeout: 120_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let node: ServerProcess;
  let hub: HubClient;

  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    node = await startServerProcess({ NATS_URL: nats.url, REDIS_URL: redis.url, TIER_REDIS_PREFIX: uniquePrefix() });
  }, 60_000);
  afterAll(async () => {
    await hub?.terminate();
    await node?.stop();
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
  });

  it('rules keep firing from the cache while the store is away; no actor failure, few lines', async ({ signal }) => {
    const created = await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId: HUB, homeId: HOME });
    expect(created.status).toBe(201);
    hub = new HubClient({ url: node.wsUrl, hubId: HUB, secret: created.body.secret });
    let rings = 0;
    hub.onCommand((cmd: CommandFrame) => {
      if (cmd.m !== 'ring') return hub.defaultHandler(cmd);
      rings++;
      return { ok: true, r: {} };
    });
    await hub.connect();
    const rule = await api(node.httpUrl, 'POST', `/v1/homes/${HOME}/rules`, node.adminToken, {
      name: 'Press rings',
      triggers: [{ type: 'event', hub: HUB, device: 'btn', event: 'press' }],
      actions: [{ type: 'command', hub: HUB, device: 'chime', method: 'ring' }],
      limit: { maxRuns: 1_000, windowMs: 60_000 },
    });
    expect(rule.status).toBe(201);
    let n = 0;
    const home = `rules:home:${HOME}`;
    /** a press, and the ring it causes (one home's events are evaluated in order), or the home's failure */
    const press = async (): Promise<void> => {
      const mine = ++n;
      const mark = node.logs.length;
      void hub.event('btn', 'press', { n: mine }).catch(() => undefined);
      const failed = () => node.logs.slice(mark).some((l) => l.actor === home);
      const outcome = await eventually(signal, `the ring of press ${mine}`, async () => (rings >= mine ? 'rang' : failed() ? 'home failed' : undefined));
      expect(outcome, `press ${mine}`).toBe('rang');
    };
    await press();

    await redis.stop();
    const from = node.logs.length;
    // presses until the home's cache is past its ttl and the store was asked (found away), then more
    while (!node.logs.slice(from).some((l) => l.msg === CACHED || l.msg === 'actor message failed')) await press();
    for (let i = 0; i < 20; i++) await press();
    await redis.restart();
    // the store back: the next check reaches it and the rules go on
    const back = n;
    await eventually(signal, 'presses after Redis is back', async () => {
      await press();
      return n >= back + 3 ? true : undefined;
    });

    const during = node.logs.slice(from);
    expect(during.filter((l) => l.actor === home)).toEqual([]);
    expect(during.filter((l) => l.msg === 'rules: home stopped by its supervisor')).toEqual([]);
    const cached = during.filter((l) => l.msg === CACHED);
    expect(cached.length).toBeGreaterThan(0);
    expect(cached.length).toBeLessThanOrEqual(10);
  });
});
