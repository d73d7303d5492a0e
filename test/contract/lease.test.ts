import { afterAll } from 'vitest';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { createLogger } from '../../src/log/logger.js';
import { MemoryLease } from '../../src/ports/lease/lease-memory.js';
import { RedisLease } from '../../src/ports/lease/lease-redis.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { leaseContract, type LeaseFactory } from './lease.contract.js';

/** one redis-server for the file, started by the first test that needs it */
let redis: Promise<Backend> | null = null;
afterAll(async () => {
  if (redis) await (await redis).stop();
});

/** Every Lease implementation runs the same contract; a new backend is one more line here. */
const implementations: Array<[name: string, make: LeaseFactory]> = [
  [
    'MemoryLease (fake clock)',
    async () => {
      let now = 1_700_000_000_000;
      const lease = new MemoryLease({ now: () => now });
      return {
        lease,
        advanceTime: (ms) => {
          now += ms;
        },
        close: () => lease.close(),
      };
    },
  ],
  [
    'MemoryLease (real clock)',
    async () => {
      const lease = new MemoryLease();
      return { lease, close: () => lease.close() };
    },
  ],
  [
    // expiry runs on Redis' clock: the suite waits real time
    'RedisLease',
    async () => {
      const backend = await (redis ??= startRedis());
      const client = await connectRedis(backend.url, { name: 'test-lease', log: createLogger('silent') });
      const lease = new RedisLease(client, { keys: new RedisKeys(uniquePrefix()) });
      return { lease, close: () => lease.close() };
    },
  ],
];

for (const [name, make] of implementations) leaseContract(name, make);
