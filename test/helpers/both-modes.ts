import { afterAll, beforeAll, describe } from 'vitest';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { startServerProcess, type ServerProcess } from './server-process.js';

/**
 * `steps` twice, each in a describe block of its own: over the embedded default (one node process)
 * and over a cluster (two node processes on their own nats-server and redis-server, one key
 * prefix). `nodes()` answers the running nodes; `env` goes to every node.
 */
export function inBothModes(title: string, env: Record<string, string>, steps: (mode: 'embedded' | 'cluster', nodes: () => ServerProcess[]) => void): void {
  describe(`${title}, embedded default`, { timeout: 60_000 }, () => {
    let node: ServerProcess;
    beforeAll(async () => {
      node = await startServerProcess(env);
    }, 60_000);
    afterAll(async () => {
      await node?.stop();
    });
    steps('embedded', () => [node]);
  });

  describe(`${title}, cluster mode (two nodes, NATS, Redis)`, { timeout: 60_000 }, () => {
    let nats: Backend;
    let redis: Backend;
    let nodes: ServerProcess[] = [];
    beforeAll(async () => {
      [nats, redis] = await Promise.all([startNats(), startRedis()]);
      const cluster = { ...env, NATS_URL: nats.url, REDIS_URL: redis.url, TIER_REDIS_PREFIX: uniquePrefix() };
      nodes = await Promise.all(['a', 'b'].map((n) => startServerProcess({ ...cluster, NODE_ID: `${title.replace(/\W+/g, '-')}-${n}` })));
    }, 60_000);
    afterAll(async () => {
      await Promise.allSettled(nodes.map((n) => n.stop()));
      await Promise.allSettled([nats?.stop(), redis?.stop()]);
    });
    steps('cluster', () => nodes);
  });
}
