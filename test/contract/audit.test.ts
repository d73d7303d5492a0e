import { afterAll, beforeAll } from 'vitest';
import { MemoryAuditLog } from '../../src/ports/audit/audit-memory.js';
import { LmdbAuditLog } from '../../src/ports/audit/audit-lmdb.js';
import { RedisAuditLog } from '../../src/ports/audit/audit-redis.js';
import { closeRedis, connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { createLogger } from '../../src/log/logger.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { tempDataStore } from './fixtures/data-store.js';
import { auditLogContract, type AuditLogFactory } from './audit.contract.js';

/** One redis-server for this file; every test gets its own key prefix. */
let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

const logs: Array<[name: string, make: AuditLogFactory]> = [
  ['MemoryAuditLog', async (retention) => ({ log: new MemoryAuditLog(retention), close: async () => {} })],
  [
    'LmdbAuditLog (DATA_SYNC=commit)',
    async (retention) => {
      const tmp = await tempDataStore('commit');
      const log = new LmdbAuditLog(tmp.data, retention);
      return { log, close: () => log.close().then(tmp.remove) };
    },
  ],
  [
    'RedisAuditLog',
    async (retention) => {
      const client = await connectRedis(redis.url, { name: 'contract-audit', log: createLogger('silent') });
      const keys = new RedisKeys(uniquePrefix());
      const log = new RedisAuditLog(client, retention, { keys });
      return {
        log,
        // the trail's key holding a string: every XADD to it fails (WRONGTYPE)
        fault: async () => void (await client.set(keys.single('audit'), 'not a stream')),
        close: () => log.close().then(() => closeRedis(client)),
      };
    },
  ],
];

for (const [name, make] of logs) auditLogContract(name, make);
