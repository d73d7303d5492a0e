/**
 * Cluster mode: a device event whose rule notified at once, on a node killed (kill -9) before the
 * hub's acknowledgement, is resent by the hub to another node (PROTOCOL.md §3), which stores it
 * again at a new offset and evaluates it again. Its notification must carry the same dedup key (the
 * event's `src`: the hub frame it came from), so the queue refuses the second, or the receiver
 * drops it by its `idempotency-key`. Until 2026-12-07 the key held the offset: two webhooks with
 * two keys (review "retries"). `TIER_SHADOW_BATCH_MS=2000` widens the ack's window (default 50 ms)
 * so that the kill lands in it every time.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { HubClient, HubClientError } from '../../load/wire/hub-client.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { eventually } from '../helpers/eventually.js';

const HOME = 'home-resend';
const tokens = { ADMIN_TOKEN: 'cluster-resend-admin-token-0123456789', JWT_SECRET: 'cluster-resend-jwt-secret-0123456789abcdef' };

describe('a device event resent after a kill -9 in cluster mode', { timeout: 90_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let env: Record<string, string>;
  let receiver: Server;
  const webhooks: Array<{ key: string; body: string }> = [];
  const nodes: ServerProcess[] = [];
  const clients: HubClient[] = [];

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        webhooks.push({ key: String(req.headers['idempotency-key']), body: (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { body: string }).body });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    env = {
      ...tokens,
      NATS_URL: nats.url,
      REDIS_URL: redis.url,
      TIER_REDIS_PREFIX: uniquePrefix(),
      TIER_DIRECTORY_TTL_MS: '3000',
      TIER_SHADOW_BATCH_MS: '2000',
      TIER_PUSH_WEBHOOK_URL: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/push`,
      TIER_PUSH_WEBHOOK_SECRET: 'cluster-resend-push-secret-0123456789',
    };
  }, 30_000);

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.terminate()));
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
    receiver.closeAllConnections();
    await new Promise((r) => receiver.close(r));
  });

  it('notifies once by its idempotency key: the second copy has the same dedup key', async ({ signal }) => {
    const [a, victim] = [await startServerProcess({ ...env, NODE_ID: 'node-a' }), await startServerProcess({ ...env, NODE_ID: 'node-victim' })];
    nodes.push(a, victim);
    const created = await api(a.httpUrl, 'POST', '/v1/admin/hubs', tokens.ADMIN_TOKEN, { hubId: 'leak-hub', homeId: HOME });
    expect(created.status).toBe(201);
    const rule = await api(a.httpUrl, 'POST', `/v1/homes/${HOME}/rules`, tokens.ADMIN_TOKEN, {
      name: 'Leak',
      triggers: [{ type: 'event', hub: 'leak-hub', device: 'sensor', event: 'alarm' }],
      actions: [{ type: 'notify', title: 'Water leak', body: 'alarm {{ event.params.n }}' }],
    });
    expect(rule.status).toBe(201);
    const hub = new HubClient({ url: victim.wsUrl, hubId: 'leak-hub', secret: created.body.secret });
    clients.push(hub);
    await hub.connect();
    void hub.event('sensor', 'alarm', { n: 1 }).catch(() => undefined);
    // notified while its acknowledgement waits for the shadow batch
    await eventually(signal, 'the first webhook', async () => (webhooks.length > 0 ? true : undefined));
    expect(hub.unackedCount).toBe(1);
    await victim.kill();
    await hub.closed;
    // back on the other node, the hub resends the frame: the same boot id and `s`
    for (let attempt = 0; ; attempt++) {
      try {
        await hub.connect(a.wsUrl);
        break;
      } catch (err) {
        if (!(err instanceof HubClientError) || attempt > 40) throw err;
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    await eventually(signal, 'the resent alarm acknowledged', async () => (hub.unackedCount === 0 ? true : undefined));
    // a later alarm's webhook: the queue has passed the resent one's notification by then
    await hub.event('sensor', 'alarm', { n: 2 });
    await eventually(signal, "the next alarm's webhook", async () => (webhooks.some((w) => w.body === 'alarm 2') ? true : undefined));
    const first = webhooks.filter((w) => w.body === 'alarm 1');
    expect(new Set(first.map((w) => w.key)).size).toBe(1);
  });
});
