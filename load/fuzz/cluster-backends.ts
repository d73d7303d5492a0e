import { startNats, startRedis, type Backend } from '../harness/index.js';

/**
 * Runs `fn` with a nats-server and a redis-server of its own on free ports (never the shared
 * 4222/6379), given the environment that makes a spawned node use them (cluster mode: admission
 * answers a turn later, so hubs are admitted after their upgrade), and stops both afterwards.
 */
export async function withClusterBackends<T>(fn: (env: Record<string, string>) => Promise<T>): Promise<T> {
  const started = await Promise.allSettled([startNats(), startRedis()]);
  const backends = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  try {
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    const [nats, redis] = backends as [Backend, Backend];
    return await fn({ NATS_URL: nats.url, REDIS_URL: redis.url });
  } finally {
    await Promise.all(backends.map((b) => b.stop()));
  }
}
