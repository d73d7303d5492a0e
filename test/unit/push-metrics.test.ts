/**
 * The push queue's series read the queue at scrape time; while Redis is reported down or hung
 * (tier_backend_up{backend="redis"} 0) the last values stay and the queue is not read: each scrape
 * had waited the Redis call's 2 s timeout.
 */
import { expect, it } from 'vitest';
import { NodeMetrics } from '../../src/admin/metrics.js';

it('keeps the last push figures without reading the queue while Redis is reported down', async () => {
  const m = new NodeMetrics(() => 0);
  let reads = 0;
  let redis = true;
  m.backendsUp(() => ({ nats: true, redis }));
  m.attach({ push: { stats: async () => (reads++, { waiting: 3, delayed: 0, active: 1, delivered: 9, failed: 2 }) } });
  expect(await m.registry.metrics()).toContain('tier_push_queue_jobs{state="waiting"} 3');
  expect(reads).toBe(1);
  // one read serves one scrape's two series: the next scrape reads again after this turn
  const nextTurn = () => new Promise((r) => setImmediate(r));
  await nextTurn();
  redis = false;
  const text = await m.registry.metrics();
  expect(reads).toBe(1);
  expect(text).toContain('tier_push_queue_jobs{state="waiting"} 3');
  expect(text).toContain('tier_push_notifications_total{outcome="delivered"} 9');
  await nextTurn();
  redis = true;
  await m.registry.metrics();
  expect(reads).toBe(2);
});
