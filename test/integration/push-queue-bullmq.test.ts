/**
 * The cluster's push queue (BullMQ) against a real redis-server, where a stop or a stranger's job
 * used to lose or stall notifications:
 * - a close (SIGTERM of a node or push worker) lets a delivery in progress finish and records it,
 *   for as long as the sender's `timeoutMs` (it used to drop it after 2 s: the job stalled);
 * - a job that stalled (a worker stopped mid-delivery) is handed on, not failed, until it stalled
 *   more often than it has attempts; then it is failed, logged and counted as any failure;
 * - a job holding no valid notification (not an object, null, data or options that are not JSON) is failed at
 *   once with the reason, never reaches the sender, and is logged once (not as a "redis error").
 * BullMQ's stalled-job check runs when a worker starts: a stall is staged in Redis (the job active,
 * unlocked and marked) before the worker opens, rather than waiting out its 30 s interval.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { createLogger } from '../../src/log/logger.js';
import { BullMqPushQueue } from '../../src/ports/push-queue/push-queue-bullmq.js';
import type { PushDelivery, PushNotification, PushSender } from '../../src/ports/push-queue/push-queue.js';
import { closeRedis, connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { eventually } from '../helpers/eventually.js';

let redis: Backend;
let raw: Redis;
beforeAll(async () => {
  redis = await startRedis();
  raw = await connectRedis(redis.url, { name: 'test-raw', log: createLogger('silent') });
});
afterAll(async () => {
  await closeRedis(raw);
  await redis.stop();
});

const opened: BullMqPushQueue[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((q) => q.close()));
});

const note = (patch: Partial<PushNotification> = {}): PushNotification => ({ homeId: 'home-1', title: 'Door', body: 'opened', dedupKey: randomUUID(), ...patch });

/** One queue's keys, its log lines and the deliveries its sender saw. */
function fixture() {
  const prefix = uniquePrefix();
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('info', {}, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  const delivered: PushDelivery[] = [];
  const failed: Array<{ delivery: PushDelivery; err: unknown }> = [];
  const open = async (sender?: PushSender, attempts = 3, more: { logsOnly?: boolean; delivererTtlMs?: number; keepFailedMs?: number; cleanEveryMs?: number } = {}) => {
    const queue = await BullMqPushQueue.connect(redis.url, { name: 'test-push', log, keys: new RedisKeys(prefix), attempts, ...more, ...(sender ? { sender, onFailed: (delivery, err) => failed.push({ delivery, err }) } : {}) });
    opened.push(queue);
    return queue;
  };
  const key = (name: string) => `${prefix}{bull}:push:${name}`;
  /** the job as a worker that died mid-delivery leaves it, having stalled `stalls` times before */
  const stalled = async (id: string, stalls: number) => {
    await raw.lrem(key('wait'), 0, id);
    await raw.lpush(key('active'), id);
    await raw.sadd(key('stalled'), id);
    await raw.hset(key(id), 'stc', String(stalls), 'ats', String(stalls));
  };
  const msgs = (msg: string) => lines.filter((l) => l.msg === msg);
  return { lines, delivered, failed, open, key, stalled, msgs, record: async (d: PushDelivery) => void delivered.push(d) };
}

describe('BullMqPushQueue', () => {
  it('close lets a delivery in progress finish and records it (the sender’s timeoutMs, past the 2 s it used to allow)', async () => {
    const fx = fixture();
    let started!: () => void;
    const begun = new Promise<void>((resolve) => (started = resolve));
    // a receiver answering after 2.5 s, well within the sender's timeout
    const slow = Object.assign(
      async (d: PushDelivery) => {
        started();
        await new Promise((resolve) => setTimeout(resolve, 2_500));
        fx.delivered.push(d);
      },
      { timeoutMs: 5_000 },
    );
    const worker = await fx.open(slow);
    const producer = await fx.open();
    await producer.enqueue(note());
    await begun;
    await worker.close();
    expect(fx.delivered).toHaveLength(1);
    // recorded as delivered, not left active for the stalled-job check
    expect(await producer.stats()).toMatchObject({ active: 0, waiting: 0, delivered: 1, failed: 0 });
  });

  it('hands on a job that stalled a second time instead of failing it', async ({ signal }) => {
    const fx = fixture();
    const producer = await fx.open();
    const { id } = await producer.enqueue(note());
    await fx.stalled(id, 1);
    await fx.open(fx.record);
    const s = await eventually(signal, 'the job delivered or failed', async () => {
      const s = await producer.stats();
      return s.delivered + s.failed > 0 ? s : undefined;
    });
    expect(s).toMatchObject({ delivered: 1, failed: 0 });
    expect(fx.delivered.map((d) => d.id)).toEqual([id]);
    expect(fx.msgs('push notification stalled (its worker stopped mid-delivery): queued again')).toEqual([expect.objectContaining({ pushId: id, level: 40 })]);
  });

  it('fails a job that stalled more often than it has attempts: logged, counted and reported as any failure', async ({ signal }) => {
    const fx = fixture();
    const producer = await fx.open(undefined, 3);
    const { id } = await producer.enqueue(note({ homeId: 'home-7' }));
    await fx.stalled(id, 3);
    await fx.open(fx.record, 3);
    await eventually(signal, 'the job failed', async () => ((await producer.stats()).failed > 0 ? true : undefined));
    expect(fx.delivered).toEqual([]);
    expect(fx.msgs('push notification failed: attempts used up (kept as failed)')).toEqual([expect.objectContaining({ pushId: id, homeId: 'home-7', level: 40, err: 'job stalled more than allowable limit' })]);
    expect(fx.failed).toEqual([{ delivery: expect.objectContaining({ id, notification: expect.objectContaining({ homeId: 'home-7', title: 'Door' }) }), err: expect.objectContaining({ message: 'job stalled more than allowable limit' }) }]);
  });

  it("removes dead letters past keepFailedMs and delivered jobs past the hour in a quiet queue: BullMQ's own removal waits for another job to finish", async ({ signal }) => {
    const fx = fixture();
    // the queue's own cleaning timer out of the way: its first run, at random within five minutes, had
    // removed the dead letter between the two calls below (a CI run, 2026-12-07)
    const queue = await fx.open(async () => {
      throw new Error('receiver down');
    }, 1, { keepFailedMs: 1_000, cleanEveryMs: 3_600_000 });
    const { id } = await queue.enqueue(note({ title: 'Front door unlocked by Alice' }));
    await eventually(signal, 'the job failed', async () => ((await raw.zscore(fx.key('failed'), id)) !== null ? true : undefined));
    // a delivered one, finished two hours ago as BullMQ records it
    const done = randomUUID();
    await raw.hset(fx.key(done), 'name', 'push', 'data', JSON.stringify(note()), 'finishedOn', String(Date.now() - 7_200_000));
    await raw.zadd(fx.key('completed'), Date.now() - 7_200_000, done);
    expect(await queue.cleanKept()).toBe(1); // the completed one; the dead letter is younger than its second
    await new Promise((r) => setTimeout(r, 1_100));
    expect(await queue.cleanKept()).toBe(1);
    expect(await raw.exists(fx.key(id), fx.key(done))).toBe(0);
    expect(await raw.zcard(fx.key('failed'))).toBe(0);
  });

  it('cleans on its own timer: a dead letter past its age leaves a queue nothing else moves', async ({ signal }) => {
    const fx = fixture();
    const queue = await fx.open(async () => {
      throw new Error('receiver down');
    }, 1, { keepFailedMs: 1_000, cleanEveryMs: 300 });
    const { id } = await queue.enqueue(note());
    await eventually(signal, 'the job failed', async () => ((await raw.zscore(fx.key('failed'), id)) !== null ? true : undefined));
    await eventually(signal, 'the dead letter cleaned by the timer', async () => ((await raw.exists(fx.key(id))) === 0 ? true : undefined));
  });

  it('fails a job holding no valid notification at once, without the sender, logged once', async ({ signal }) => {
    const fx = fixture();
    const producer = await fx.open();
    // what someone with Redis access, or an older producer, could add
    const bad = [
      ['a string', 'hello', 'notification: must be an object'],
      ['null', null, 'notification: must be an object'],
      ['no title', { homeId: 'home-1', body: 'b', dedupKey: 'k' }, 'title: must be a string of 1..200 characters'],
    ] as const;
    for (const [name, data] of bad) await producer.queue.add('push', data as never, { jobId: name.replace(' ', '-'), attempts: 5 });
    await raw.hset(fx.key('not-json'), 'name', 'push', 'data', '{not json', 'opts', '{"attempts":5}', 'timestamp', String(Date.now()), 'delay', '0', 'priority', '0');
    await raw.lpush(fx.key('wait'), 'not-json');
    await raw.hset(fx.key('opts-not-json'), 'name', 'push', 'data', JSON.stringify(note()), 'opts', '{"attempts":', 'timestamp', String(Date.now()), 'delay', '0', 'priority', '0');
    await raw.lpush(fx.key('wait'), 'opts-not-json');
    await raw.hset(fx.key('none-json'), 'name', 'push', 'data', '{nope', 'opts', '{"attempts":', 'timestamp', String(Date.now()), 'delay', '0', 'priority', '0');
    await raw.lpush(fx.key('wait'), 'none-json');
    const good = await producer.enqueue(note());
    await fx.open(fx.record);
    await eventually(signal, 'every job settled', async () => {
      const s = await producer.stats();
      return s.failed + s.delivered >= 7 ? true : undefined;
    });
    // only the valid notification reached the sender
    expect(fx.delivered.map((d) => d.id)).toEqual([good.id]);
    expect(await producer.stats()).toMatchObject({ failed: 6, delivered: 1, active: 0, waiting: 0, delayed: 0 });
    const reasons = [...bad.map(([name, , reason]) => [name.replace(' ', '-'), `not a push notification: ${reason}`]), ...['not-json', 'opts-not-json', 'none-json'].map((id) => [id, 'not a push notification: its stored data or options are not JSON'])];
    for (const [id, reason] of reasons) {
      // in the failed set after one attempt, no retry
      expect(await raw.zscore(fx.key('failed'), id!), id).not.toBeNull();
      expect(await raw.hmget(fx.key(id!), 'failedReason', 'atm'), id).toEqual([reason, '1']);
    }
    const invalid = fx.msgs('push job invalid: failed without delivery (kept as failed)');
    expect(invalid.map((l) => [l.pushId, l.err])).toEqual(expect.arrayContaining(reasons));
    expect(invalid).toHaveLength(6);
    expect(await raw.hget(fx.key('none-json'), 'unreadableData')).toBe('{nope');
    expect(fx.failed).toEqual([]);
    expect(fx.lines.filter((l) => String(l.msg).includes('redis error'))).toEqual([]);
  });

  it('a worker that only logs gives every job back while a worker that delivers runs, and takes them once none has for the mark\'s ttl', async ({ signal }) => {
    const fx = fixture();
    const logged: string[] = [];
    const logger = async (d: PushDelivery) => void logged.push(d.id);
    // the logging worker first: it would take every job it can
    const logging = await fx.open(logger, 3, { logsOnly: true });
    const paused = () => (logging as unknown as { worker: { isPaused(): boolean } }).worker.isPaused();
    const poster = await fx.open(fx.record, 3, { delivererTtlMs: 1_500 });
    const producer = await fx.open();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await producer.enqueue(note())).id);
    await eventually(signal, 'all 20 delivered', async () => ((await producer.stats()).delivered >= 20 ? true : undefined));
    expect(logged).toEqual([]);
    expect(fx.delivered.map((d) => d.id).sort()).toEqual([...ids].sort());
    // given back without an attempt counted
    expect(fx.delivered.every((d) => d.attempt === 1)).toBe(true);
    // and paused while the mark stands: fetching, it took the wake-ups left for the poster, which
    // then slept 5-10 s before a job it should have taken at once (a review, 2026-12-06)
    await eventually(signal, 'the logging worker paused', async () => (paused() ? true : undefined));
    // the poster gone, its mark lapses: the logging worker takes the queue's jobs
    await poster.close();
    const later = (await producer.enqueue(note())).id;
    await eventually(signal, 'the later job logged', async () => (logged.includes(later) ? true : undefined));
    expect(paused()).toBe(false);
  }, 30_000);

  it("a home's job its erasure could not see (an enqueue in flight, a job between states) is dropped by the worker, not delivered, and kept nowhere", async ({ signal }) => {
    const fx = fixture();
    const producer = await fx.open();
    const { id } = await producer.enqueue(note({ homeId: 'erased-home' }));
    const other = await producer.enqueue(note({ homeId: 'kept-home' }));
    // the erasure's scan misses the job, as one whose add lands after the scan read its state
    const queue = (producer as unknown as { queue: { getJobs: () => Promise<unknown[]> } }).queue;
    const getJobs = queue.getJobs;
    queue.getJobs = async () => [];
    expect(await producer.removeHome('erased-home')).toBe(0);
    queue.getJobs = getJobs;
    await fx.open(fx.record);
    await eventually(signal, 'the other home\'s job delivered and the erased one gone', async () => {
      const s = await producer.stats();
      return s.delivered >= 1 && s.waiting + s.active === 0 && (await raw.exists(fx.key(id))) === 0 ? true : undefined;
    });
    expect(fx.delivered.map((d) => d.id)).toEqual([other.id]);
    expect(await raw.zscore(fx.key('failed'), id)).toBeNull();
    expect(fx.failed).toEqual([]);
    expect(fx.msgs('push notification of an erased home dropped')).toEqual([expect.objectContaining({ pushId: id, homeId: 'erased-home' })]);
  }, 30_000);
});
