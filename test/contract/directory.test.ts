import { afterAll, beforeAll } from 'vitest';
import { MemoryDirectory } from '../../src/ports/directory/directory-memory.js';
import { RedisDirectory } from '../../src/ports/directory/directory-redis.js';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { createLogger } from '../../src/log/logger.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { directoryContract, type DirectoryFactory } from './directory.contract.js';

/** One redis-server for this file; every test gets its own key prefix. */
let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

/** Every Directory implementation runs the same contract; a new backend is one more line here. */
const implementations: Array<[name: string, make: DirectoryFactory]> = [
  [
    'MemoryDirectory (fake clock)',
    async ({ ttlMs }) => {
      let now = 1_700_000_000_000;
      const directory = new MemoryDirectory(ttlMs, () => now);
      return {
        directory,
        advanceTime: (ms) => {
          now += ms;
        },
        close: () => directory.close(),
      };
    },
  ],
  // the same implementation on real time: exercises the suite's polling path a backend without an
  // injectable clock (Redis) takes
  [
    'MemoryDirectory (real clock)',
    async ({ ttlMs }) => {
      const directory = new MemoryDirectory(ttlMs);
      return { directory, close: () => directory.close() };
    },
  ],
  [
    'RedisDirectory',
    async ({ ttlMs }) => {
      const client = await connectRedis(redis.url, { name: 'contract-directory', log: createLogger('silent') });
      const directory = new RedisDirectory(client, { keys: new RedisKeys(uniquePrefix()), ttlMs });
      return { directory, close: () => directory.close() };
    },
  ],
];

for (const [name, make] of implementations) directoryContract(name, make);
