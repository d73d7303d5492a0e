import { afterAll } from 'vitest';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { createLogger } from '../../src/log/logger.js';
import { MemoryRuleStore } from '../../src/ports/rule-store/rule-store-memory.js';
import { RedisRuleStore } from '../../src/ports/rule-store/rule-store-redis.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { lmdbRuleStore } from './lmdb-fixture.js';
import { ruleStoreContract, type RuleStoreFactory } from './rule-store.contract.js';

/** one redis-server for the file, started by the first test that needs it */
let redis: Promise<Backend> | null = null;
afterAll(async () => {
  if (redis) await (await redis).stop();
});

/** Every RuleStore implementation runs the same contract; a new backend is one more line here. */
const implementations: Array<[name: string, make: RuleStoreFactory]> = [
  [
    'MemoryRuleStore',
    async (options) => {
      const store = new MemoryRuleStore(options);
      return { store, close: () => store.close() };
    },
  ],
  // a fresh data directory per test
  ['LmdbRuleStore', lmdbRuleStore],
  [
    'RedisRuleStore',
    async (options) => {
      const backend = await (redis ??= startRedis());
      const log = createLogger('silent');
      const client = await connectRedis(backend.url, { name: 'test-rules', log });
      const store = new RedisRuleStore(client, { log, keys: new RedisKeys(uniquePrefix()), ...options });
      return { store, close: () => store.close() };
    },
  ],
];

for (const [name, make] of implementations) ruleStoreContract(name, make);
