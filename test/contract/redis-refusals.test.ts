/**
 * A Redis that answers but refuses for now (here: full, `maxmemory` with `noeviction`), through the
 * real client: the refusal counts as the backend away (503, the sampled outage log), and a logged
 * error keeps the command's name but none of its arguments, which held a shadow write's values or a
 * batch of audit entries (review "logs").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asTierError, isUnreachable } from '../../src/errors.js';
import { createLogger } from '../../src/log/logger.js';
import { connectRedis } from '../../src/ports/redis.js';
import { startRedis, type Backend } from '../../load/harness/index.js';

let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

describe('a Redis that refuses for now', () => {
  it('is unavailable, not internal, and its error is logged without the command’s arguments', async () => {
    const lines: string[] = [];
    const log = createLogger('info', {}, { write: (s: string) => lines.push(s) });
    const client = await connectRedis(redis.url, { name: 'test-refusals', log: createLogger('silent') });
    try {
      await client.config('SET', 'maxmemory-policy', 'noeviction');
      await client.config('SET', 'maxmemory', '1');
      const err = await client.hset('tier:{h:hub-1}:shadow', 'd:door', JSON.stringify({ a: { doorPin: '4711-secret', owner: 'Alice Example' } })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/^OOM /);
      // the client's own error carries the whole command: what the log must not copy
      expect(JSON.stringify((err as { command?: unknown }).command)).toContain('4711-secret');
      expect(isUnreachable(err)).toBe(true);
      expect(asTierError(err).code).toBe('unavailable');

      log.error({ err }, 'shadow write failed');
      log.warn({ err: asTierError(err) }, 'wrapped');
      expect(lines).toHaveLength(2);
      for (const line of lines) {
        expect(line).not.toContain('4711-secret');
        expect(line).not.toContain('Alice Example');
      }
      const first = JSON.parse(lines[0]!) as { err: Record<string, unknown> };
      expect(first.err).toMatchObject({ type: 'ReplyError', redisCommand: 'hset' });
      expect(first.err.message).toMatch(/^OOM /);

      // a MULTI refused carries its commands' errors, an AggregateError its errors: none of their arguments either (review diff9)
      const multi = await client.multi().hsetnx('tier:secrets', 'adminToken', 'SECRET-IN-MULTI-0123').exec().catch((e: unknown) => e);
      expect((multi as Error).message).toMatch(/^EXECABORT/);
      expect(isUnreachable(multi)).toBe(true);
      log.error({ err: multi }, 'claim failed');
      log.error({ err: new AggregateError([err, multi], 'both failed') }, 'aggregate');
      log.error({ err: Object.assign(new Error('holder'), { inner: err }) }, 'holder');
      expect(lines).toHaveLength(5);
      for (const line of lines.slice(2)) {
        expect(line).not.toContain('SECRET-IN-MULTI');
        expect(line).not.toContain('4711-secret');
      }
      expect(lines[2]).toContain('"redisCommand":"hsetnx"');
    } finally {
      await client.config('SET', 'maxmemory', '0');
      client.disconnect();
    }
  });
});
