import { afterAll, beforeAll, describe, expect } from 'vitest';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { api, startServerProcess, type ServerProcess } from './server-process.js';

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

/**
 * A hub provisioned through `operator` and online on `holder`, with a lamp known (`switch`,
 * `L-1`) and reported `on: true`; answers it with the secret it was given.
 */
export async function hubWithLamp(operator: ServerProcess, holder: ServerProcess, adminToken: string, hubId: string, homeId: string): Promise<{ hub: HubClient; secret: string }> {
  const res = await api(operator.httpUrl, 'POST', '/v1/admin/hubs', adminToken, { hubId, homeId });
  expect(res.status).toBe(201);
  const secret = res.body.secret as string;
  const hub = new HubClient({ url: holder.wsUrl, hubId, secret, heartbeat: false });
  await hub.connect();
  await hub.devices({ j: [{ d: 'lamp', k: 'switch', m: 'L-1' }] });
  await hub.report({ lamp: { on: true } });
  return { hub, secret };
}
