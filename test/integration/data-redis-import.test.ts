/**
 * `npm run data -- import FILE --redis URL`: a store built with the real LMDB adapters, exported
 * with exportStore, imported into a real redis-server and read back through the Redis adapters.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportStore } from '../../src/data-backup.js';
import { importIntoRedis } from '../../src/data-redis-import.js';
import { createLogger } from '../../src/log/logger.js';
import { LmdbHubRegistry } from '../../src/ports/hub-registry/hub-registry-lmdb.js';
import { RedisHubRegistry } from '../../src/ports/hub-registry/hub-registry-redis.js';
import { openDataStore } from '../../src/ports/lmdb.js';
import { closeRedis, connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { LmdbShadowStore } from '../../src/ports/shadow-store/shadow-store-lmdb.js';
import { RedisShadowStore } from '../../src/ports/shadow-store/shadow-store-redis.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';

const log = createLogger('silent');
let redis: Backend;
let file: string;

beforeAll(async () => {
  redis = await startRedis();
  const data = openDataStore(mkdtempSync(join(tmpdir(), 'redis-import-')));
  try {
    const hubs = new LmdbHubRegistry(data);
    await hubs.create({ hubId: 'hub-1', homeId: 'home-1', secret: 's3cret-hub-1', enabled: true, createdAt: 1_700_000_000_000, model: 'HT-2' });
    await hubs.create({ hubId: 'hub-2', homeId: 'home-1', secret: 's3cret-hub-2', enabled: false, createdAt: 1_700_000_000_001, model: undefined });
    const shadows = new LmdbShadowStore(data, { log });
    await shadows.writeDevices('hub-1', [{ d: 'lamp', k: 'light', m: 'L-1' }, { d: 'plug', k: 'switch' }], [], true);
    shadows.writeReported('hub-1', 'lamp', { kind: 'light', model: 'L-1', reported: { on: true, level: 40 }, reportedVersion: 7, reportedAt: 1_700_000_000_500, desired: {}, desiredVersion: 0 }, 3);
    shadows.writeCursor('hub-1', { boot: 'boot-a', seq: 42 }, 3);
    await shadows.setDesired('hub-1', 'lamp', { level: 80 });
    await shadows.close();
    await data.flushed();
    file = join(mkdtempSync(join(tmpdir(), 'redis-import-file-')), 'backup.jsonl');
    await exportStore(data, file);
  } finally {
    await data.close();
  }
});

afterAll(async () => {
  await redis?.stop();
});

describe('importing a backup into redis', () => {
  it('writes hubs and shadows, read back through the redis adapters; a second import skips the hubs', async () => {
    const prefix = uniquePrefix();
    const report = await importIntoRedis(file, { url: redis.url, prefix, log });
    expect(report.imported).toMatchObject({ hubs: 2, devices: 2, cursors: 1 });

    const keys = new RedisKeys(prefix);
    const client = await connectRedis(redis.url, { name: 'test-read', log });
    const registry = new RedisHubRegistry(client, { keys });
    expect(await registry.get('hub-1')).toEqual({ hubId: 'hub-1', homeId: 'home-1', secret: 's3cret-hub-1', enabled: true, createdAt: 1_700_000_000_000, model: 'HT-2' });
    expect(await registry.get('hub-2')).toEqual({ hubId: 'hub-2', homeId: 'home-1', secret: 's3cret-hub-2', enabled: false, createdAt: 1_700_000_000_001, model: undefined });

    const shadows = await RedisShadowStore.connect(redis.url, { name: 'test-shadows', log, keys });
    const shadow = await shadows.load('hub-1');
    expect(shadow.lamp).toMatchObject({ kind: 'light', model: 'L-1', reported: { on: true, level: 40 }, reportedVersion: 7, reportedAt: 1_700_000_000_500, desired: { level: 80 } });
    expect(shadow.lamp!.desiredVersion).toBeGreaterThan(0);
    expect(shadow.plug).toMatchObject({ kind: 'switch', reported: {}, desired: {} });
    expect(await shadows.loadCursor('hub-1')).toEqual({ boot: 'boot-a', seq: 42 });

    // a second import overwrites nothing: the hubs are reported and skipped, with their shadows
    await registry.setEnabled('hub-1', false);
    const again = await importIntoRedis(file, { url: redis.url, prefix, log });
    expect(again.imported.hubs ?? 0).toBe(0);
    expect(again.imported.devices ?? 0).toBe(0);
    expect(again.skipped.filter((s) => s.startsWith('hub '))).toHaveLength(2);
    expect((await registry.get('hub-1'))?.enabled).toBe(false);
    await shadows.close();
    await closeRedis(client);
  });
});
