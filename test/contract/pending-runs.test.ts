import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { createLogger } from '../../src/log/logger.js';
import { openDataStore, type DataStore } from '../../src/ports/lmdb.js';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { LmdbPendingRuns } from '../../src/ports/pending-runs/pending-runs-lmdb.js';
import { MemoryPendingRuns } from '../../src/ports/pending-runs/pending-runs-memory.js';
import { RedisPendingRuns } from '../../src/ports/pending-runs/pending-runs-redis.js';
import type { PendingRun } from '../../src/ports/pending-runs/pending-runs.js';
import { pendingRunsContract, type PendingRunsFactory } from './pending-runs.contract.js';

/** one redis-server for the file, started by the first test that needs it */
let redis: Promise<Backend> | null = null;
afterAll(async () => {
  if (redis) await (await redis).stop();
});

/** A RedisPendingRuns of node `nodeId` under `keys`, on a connection of its own. */
async function redisRuns(keys: RedisKeys, nodeId = 'node-a', ttlMs?: number): Promise<RedisPendingRuns> {
  const backend = await (redis ??= startRedis());
  const log = createLogger('silent');
  const client = await connectRedis(backend.url, { name: `test-delays-${nodeId}`, log });
  return new RedisPendingRuns(client, { nodeId, log, keys, ...(ttlMs === undefined ? {} : { ttlMs }) });
}

/** Every PendingRuns adapter runs the same contract; a new backend is one more line here. */
const implementations: Array<[name: string, make: PendingRunsFactory]> = [
  [
    'MemoryPendingRuns',
    async () => {
      const runs = new MemoryPendingRuns();
      return { runs, close: () => runs.close() };
    },
  ],
  [
    // a DataStore in a fresh directory; reopen closes the environment and opens it again
    'LmdbPendingRuns',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'hubtier-delays-'));
      let store: DataStore = openDataStore(dir, { sync: 'os' });
      return {
        runs: new LmdbPendingRuns(store),
        async reopen() {
          await store.close();
          store = openDataStore(dir, { sync: 'os' });
          return new LmdbPendingRuns(store);
        },
        async close() {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  ],
  [
    // reopen: the node closes (dropping its claim) and starts again under the same name
    'RedisPendingRuns',
    async () => {
      const keys = new RedisKeys(uniquePrefix());
      let runs = await redisRuns(keys);
      return {
        runs,
        async reopen() {
          await runs.close();
          return (runs = await redisRuns(keys));
        },
        close: () => runs.close(),
      };
    },
  ],
];

for (const [name, make] of implementations) pendingRunsContract(name, make);

const entry = (ruleId: string): PendingRun => ({
  runId: `${ruleId}-run`,
  homeId: 'home1',
  ruleId,
  ruleVersion: 1,
  dueAt: 1_700_000_300_000,
  actions: [{ type: 'notify', title: 't', body: 'b' }],
  offset: 1,
  dedupBase: `rule:${ruleId}:x`,
});
const ids = (list: PendingRun[]) => list.map((p) => p.ruleId).sort();

/** Ownership in a cluster: which node resumes a pending run (real time: the claims run on Redis' clock). */
describe('RedisPendingRuns across nodes', () => {
  it('a live node keeps its entries; once it closes, one other node takes them over, each entry once', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const [a, b, c] = await Promise.all([redisRuns(keys, 'node-a'), redisRuns(keys, 'node-b'), redisRuns(keys, 'node-c')]);
    try {
      await a.save(entry('r1'));
      await a.save(entry('r2'));
      await b.save(entry('r3'));
      expect(ids(await b.load())).toEqual(['r3']);
      expect(await c.claimOrphans()).toEqual([]);
      await a.close();
      // racing claimers: every entry of the closed node goes to exactly one of them
      const [toB, toC] = await Promise.all([b.claimOrphans(), c.claimOrphans()]);
      expect(ids([...toB, ...toC])).toEqual(['r1', 'r2']);
      expect(await c.claimOrphans()).toEqual([]);
      // taken over means owned: a node's own entries are in its load, not in its claims
      expect(ids(await b.load())).toEqual(ids([...toB, entry('r3')]));
      expect(ids(await c.load())).toEqual(ids(toC));
      // and a restarted node-a finds nothing of its own any more
      const again = await redisRuns(keys, 'node-a');
      expect(await again.load()).toEqual([]);
      await again.close();
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  it('a newer run of a rule saved by another node is seen by the node whose run it superseded', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const [a, b] = await Promise.all([redisRuns(keys, 'node-a'), redisRuns(keys, 'node-b')]);
    try {
      const first = entry('r1');
      await a.save(first);
      expect(await a.holds('r1', first.runId)).toBe(true);
      await b.save({ ...entry('r1'), runId: 'newer-on-b' });
      expect(await a.holds('r1', first.runId)).toBe(false);
      expect(await a.holds('r1', 'newer-on-b')).toBe(true);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('a node that stops renewing (crashed, cut off) loses its entries once its claim lapses, not before', async () => {
    const TTL = 300;
    const keys = new RedisKeys(uniquePrefix());
    const a = await redisRuns(keys, 'node-a', TTL);
    const b = await redisRuns(keys, 'node-b', TTL);
    try {
      // measured from before the save, so it can only overstate the claim's life (read after
      // the await, a reply read late under load understated it: CI saw 249 ms of 300)
      const saved = Date.now();
      await a.save(entry('r1'));
      // node-a dies: no close, its connection gone, so no renewal either
      (a as unknown as { client: { disconnect(): void } }).client.disconnect();
      let taken: PendingRun[] = [];
      while (taken.length === 0) {
        taken = await b.claimOrphans();
        if (taken.length === 0) await new Promise((r) => setTimeout(r, 20));
      }
      // its claim ran ttl from its last call (the save): never taken before that
      expect(Date.now() - saved).toBeGreaterThanOrEqual(TTL - 5);
      expect(ids(taken)).toEqual(['r1']);
      expect(taken[0]).toEqual(entry('r1'));
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
