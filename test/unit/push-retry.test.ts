/** A rule's notification refused for now is tried again within its wait; a bug's error, or the wait spent, fails the action (src/rules/push-retry.ts). */
import { describe, expect, it } from 'vitest';
import { TierError } from '../../src/errors.js';
import { enqueueRetrying } from '../../src/rules/push-retry.js';
import { queueFull } from '../../src/ports/push-queue/push-queue.js';

const full = () => Object.assign(new Error('OOM command not allowed when used memory > \'maxmemory\'.'), { name: 'ReplyError' });

describe('enqueueRetrying', () => {
  it('tries again while the queue refuses for now, and answers what the add that got through answered', async () => {
    let tries = 0;
    const result = await enqueueRetrying(async () => {
      if (++tries < 3) throw new TierError('unavailable', 'push notification not queued', { cause: full() });
      return { id: 'j1', duplicate: false };
    });
    expect(result).toEqual({ id: 'j1', duplicate: false });
    expect(tries).toBe(3);
  });

  it('fails at once on an error that is not an outage (a notification the queue refuses as wrong)', async () => {
    let tries = 0;
    const err = new TierError('invalid_field', 'title too long');
    await expect(enqueueRetrying(async () => (tries++, Promise.reject(err)))).rejects.toBe(err);
    expect(tries).toBe(1);
  });

  it('fails at once when the queue is full (TIER_PUSH_MAX_QUEUED): its receiver is away for long, and the run\'s next actions must not wait a minute (review "diff25")', async () => {
    let tries = 0;
    const err = queueFull(100);
    await expect(enqueueRetrying(async () => (tries++, Promise.reject(err)))).rejects.toBe(err);
    expect(tries).toBe(1);
    expect(err.code).toBe('unavailable');
  });

  it('gives up once the wait is spent, with the last refusal', async () => {
    let tries = 0;
    let clock = 0;
    const refusal = new TierError('unavailable', 'redis away');
    const failing = enqueueRetrying(
      async () => {
        tries++;
        clock += 400;
        throw refusal;
      },
      1_000,
      () => clock,
    );
    await expect(failing).rejects.toBe(refusal);
    expect(tries).toBeGreaterThanOrEqual(2);
    expect(tries).toBeLessThanOrEqual(3);
  });
});
