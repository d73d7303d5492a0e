import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config.js';
import { createLogger } from '../../src/log/logger.js';
import { closeRedis, connectRedis } from '../../src/ports/redis.js';
import { startRedis, type Backend } from '../../load/harness/index.js';

/** What a Redis user must be allowed, said at connect (review "cloud", 2026-12-06), and what a connect asks of Redis. */

let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
  const admin = new Redis(redis.url);
  // the usual hardening recipe: INFO is in @dangerous
  await admin.acl('SETUSER', 'nodanger', 'on', '>NoDanger-pass', '~*', '&*', '+@all', '-@dangerous');
  await admin.acl('SETUSER', 'withinfo', 'on', '>WithInfo-pass', '~*', '&*', '+@all', '-@dangerous', '+info');
  admin.disconnect();
});
afterAll(async () => {
  await redis?.stop();
});

describe('connectRedis and the Redis user', () => {
  const as = (user: string, pass: string) => redis.url.replace('redis://', `redis://${user}:${pass}@`);

  it('refuses a user that may not run INFO for a connection of the push queue (BullMQ needs it: it spun a core without it), naming the ACL to add; other connections take it', async () => {
    const err = await connectRedis(as('nodanger', 'NoDanger-pass'), { name: 'test-acl', log: createLogger('silent'), needsInfo: true }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/^REDIS_URL: this Redis does not let its user run INFO, which the push queue \(BullMQ\) needs.*ACL SETUSER <user> \+info/);
    expect((err as Error).message).not.toMatch(/NoDanger-pass/);
    // a CLI's connection (fleet reseal) runs no BullMQ
    const plain = await connectRedis(as('nodanger', 'NoDanger-pass'), { name: 'test-acl', log: createLogger('silent') });
    expect(await plain.ping()).toBe('PONG');
    await closeRedis(plain);
  });

  it('connects a user without the other dangerous commands once it may run INFO', async () => {
    const client = await connectRedis(as('withinfo', 'WithInfo-pass'), { name: 'test-acl', log: createLogger('silent'), needsInfo: true });
    expect(await client.ping()).toBe('PONG');
    await closeRedis(client);
  });
});

describe('connectRedis and what it asks at connect', () => {
  it('no call of its own fails against a Redis before 7.2: ioredis\'s CLIENT SETINFO counted two errors a connection on a healthy node (review alerts)', async () => {
    let failed = 0;
    const client = await connectRedis(redis.url, { name: 'test-info', log: createLogger('silent'), observe: { done: (_s, ok) => void (ok || failed++) } });
    expect(await client.ping()).toBe('PONG');
    // a reconnect sends what a connect sends again
    client.disconnect(true);
    await new Promise<void>((resolve) => client.once('ready', () => resolve()));
    expect(await client.ping()).toBe('PONG');
    expect(failed).toBe(0);
    await closeRedis(client);
  });
});
