import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { createLogger } from '../../src/log/logger.js';
import { RedisEventHistory } from '../../src/ports/history/history-redis.js';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { encodeBus } from '../../src/protocol/codec.js';

const EXAMPLE = 'load/examples/event-stream-consumer.ts';

describe('the README\'s example consumer of the services\' event stream', () => {
  let redis: Backend;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis.stop());

  it('is the code the README shows', () => {
    expect(readFileSync('README.md', 'utf8')).toContain('```ts\n' + readFileSync(EXAMPLE, 'utf8') + '```');
  });

  it('reads every event of every home with its position, a lost note and an erasure, knowing only Redis and the schema', async () => {
    const prefix = uniquePrefix();
    const log = createLogger('silent');
    const history = new RedisEventHistory(await connectRedis(redis.url, { name: 'test-stream', log }), { maxEvents: 100, maxAgeMs: 60_000 }, { keys: new RedisKeys(prefix), log, eventStreamMaxLen: 1000 });
    const events = [
      { op: 'evt', kind: 'state', home: 'home-x', hub: 'h1', device: 'd1', attrs: { on: true }, version: 1, ts: 1 },
      { op: 'evt', kind: 'event', home: 'home-y', hub: 'h2', device: 'b1', event: 'press', ts: 2 },
      { op: 'evt', kind: 'offline', home: 'home-x', hub: 'h1', reason: '1006', ts: 3 },
    ] as const;
    for (const e of events) await history.append(e.home, encodeBus(e));
    await history.noteLost('home-y');
    await history.append('home-z', encodeBus({ op: 'evt', kind: 'online', home: 'home-z', hub: 'h3', node: 'n', ts: 4 }));
    await history.forget('home-z');
    const child = spawn(process.execPath, ['--import', 'tsx', EXAMPLE, '0'], { env: { ...process.env, REDIS_URL: redis.url, TIER_REDIS_PREFIX: prefix }, stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: unknown[] = [];
    for await (const line of createInterface({ input: child.stdout })) {
      lines.push(JSON.parse(line));
      if (lines.length === events.length + 2) break;
    }
    child.kill();
    const epoch = { 'home-x': (await history.position('home-x')).epoch, 'home-y': (await history.position('home-y')).epoch };
    expect(lines).toEqual([
      { home: 'home-x', epoch: epoch['home-x'], offset: 1, event: events[0] },
      { home: 'home-y', epoch: epoch['home-y'], offset: 1, event: events[1] },
      { home: 'home-x', epoch: epoch['home-x'], offset: 2, event: events[2] },
      { home: 'home-y', epoch: epoch['home-y'], lostUpTo: 1 },
      // home-z's event went with its erasure
      { home: 'home-z', erased: true },
    ]);
    await history.close();
  });
});
