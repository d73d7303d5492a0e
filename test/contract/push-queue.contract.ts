import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { TierError } from '../../src/errors.js';
import type { PushDelivery, PushNotification, PushQueue, PushQueueOptions, PushSender } from '../../src/ports/push-queue/push-queue.js';

/** A push queue under test, delivering to `sender`. */
export interface PushQueueFixture {
  queue: PushQueue;
  close(): Promise<void>;
}

/** Called once per test; a real backend should use a unique queue name per call. */
export type PushQueueFactory = (options: PushQueueOptions & { sender: PushSender }) => Promise<PushQueueFixture>;

const note = (patch: Partial<PushNotification> = {}): PushNotification => ({
  homeId: 'home1',
  title: 'Water leak',
  body: 'A leak was detected by bath-leak.',
  dedupKey: `rule:r1:${randomUUID()}`,
  ...patch,
});

/** Resolves when `n` deliveries were seen (an event, not a sleep). */
export function recorder() {
  const seen: Array<PushDelivery & { at: number }> = [];
  let waiters: Array<{ n: number; resolve: () => void }> = [];
  return {
    seen,
    record(d: PushDelivery) {
      seen.push({ ...d, at: performance.now() });
      waiters = waiters.filter((w) => (seen.length >= w.n ? (w.resolve(), false) : true));
    },
    until(n: number): Promise<void> {
      if (seen.length >= n) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
  };
}

/** The promises of `PushQueue` (src/ports/push-queue/push-queue.ts), for any implementation. */
export function pushQueueContract(name: string, make: PushQueueFactory): void {
  describe(name, () => {
    let fx: PushQueueFixture | null = null;
    afterEach(async () => {
      await fx?.close();
      fx = null;
    });

    async function open(sender: PushSender, options: PushQueueOptions = {}): Promise<PushQueue> {
      fx = await make({ attempts: 5, backoffMs: 20, maxBackoffMs: 1_000, dedupTtlMs: 60_000, concurrency: 4, ...options, sender });
      return fx.queue;
    }

    it('delivers an accepted notification once to the sender, with its id and attempt 1', async () => {
      const rec = recorder();
      const queue = await open(async (d) => rec.record(d));
      const n = note({ data: { ruleId: 'r1' } });
      const { id, duplicate } = await queue.enqueue(n);
      expect(duplicate).toBe(false);
      await rec.until(1);
      await queue.drain();
      expect(rec.seen).toHaveLength(1);
      expect(rec.seen[0]).toMatchObject({ id, attempt: 1, notification: { ...n, audience: 'home' } });
      expect(await queue.stats()).toMatchObject({ waiting: 0, delayed: 0, active: 0, delivered: 1, failed: 0 });
    });

    it("carries the enqueuer's traceparent to every attempt and drops an invalid one", async () => {
      const rec = recorder();
      let failFirst = true;
      const queue = await open(async (d) => {
        rec.record(d);
        if (d.notification.tp !== undefined && failFirst) {
          failFirst = false;
          throw new Error('push service down');
        }
      });
      const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      await queue.enqueue(note({ tp }));
      await queue.enqueue(note({ tp: 'not-a-traceparent' }));
      await rec.until(3);
      await queue.drain();
      const traced = rec.seen.filter((d) => d.notification.tp === tp);
      // the retry (a later job run, perhaps another worker) still names the trace
      expect(traced.map((d) => d.attempt)).toEqual([1, 2]);
      expect(rec.seen.filter((d) => d.notification.tp !== tp).map((d) => 'tp' in d.notification)).toEqual([false]);
    });

    it('enqueue resolves without waiting for delivery', async () => {
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const rec = recorder();
      const queue = await open(async (d) => {
        rec.record(d);
        await gate;
      });
      await queue.enqueue(note());
      await rec.until(1);
      expect((await queue.stats()).active).toBe(1);
      release();
      await queue.drain();
      expect((await queue.stats()).delivered).toBe(1);
    });

    it('retries a failing delivery with exponential backoff until it succeeds (at least once)', async () => {
      const rec = recorder();
      const queue = await open(
        async (d) => {
          rec.record(d);
          if (d.attempt < 4) throw new Error(`push service down (${d.attempt})`);
        },
        { backoffMs: 20 },
      );
      const { id } = await queue.enqueue(note());
      await rec.until(4);
      await queue.drain();
      expect(rec.seen.map((d) => [d.id, d.attempt])).toEqual([
        [id, 1],
        [id, 2],
        [id, 3],
        [id, 4],
      ]);
      const gaps = rec.seen.slice(1).map((d, i) => d.at - rec.seen[i]!.at);
      // 20, 40, 80 ms (timers may fire a millisecond early by rounding)
      expect(gaps[0]).toBeGreaterThanOrEqual(19);
      expect(gaps[1]).toBeGreaterThanOrEqual(39);
      expect(gaps[2]).toBeGreaterThanOrEqual(79);
      expect(await queue.stats()).toMatchObject({ delivered: 1, failed: 0 });
    });

    it('waits as long as the sender’s error asks (retryAfterMs), never less than the backoff', async () => {
      const rec = recorder();
      const asks = [300, 0];
      const queue = await open(
        async (d) => {
          rec.record(d);
          if (d.attempt <= asks.length) throw Object.assign(new Error('receiver busy'), { retryAfterMs: asks[d.attempt - 1] });
        },
        { backoffMs: 20 },
      );
      await queue.enqueue(note());
      await rec.until(3);
      await queue.drain();
      const gaps = rec.seen.slice(1).map((d, i) => d.at - rec.seen[i]!.at);
      // 300 asked, above the 20 ms backoff; then 0 asked, below the 40 ms backoff (timers may fire a millisecond early)
      expect(gaps[0]).toBeGreaterThanOrEqual(299);
      expect(gaps[1]).toBeGreaterThanOrEqual(39);
      expect(await queue.stats()).toMatchObject({ delivered: 1, failed: 0 });
    });

    it('a sender that throws synchronously is retried too', async () => {
      const rec = recorder();
      const queue = await open(((d: PushDelivery) => {
        rec.record(d);
        if (d.attempt === 1) throw new Error('sync failure');
        return Promise.resolve();
      }) as PushSender);
      await queue.enqueue(note());
      await rec.until(2);
      await queue.drain();
      expect((await queue.stats()).delivered).toBe(1);
    });

    it('gives up after `attempts` tries and keeps it as failed', async () => {
      const rec = recorder();
      const queue = await open(
        async (d) => {
          rec.record(d);
          throw new Error('invalid device token');
        },
        { attempts: 3, backoffMs: 30, maxBackoffMs: 35 },
      );
      await queue.enqueue(note());
      await rec.until(3);
      await queue.drain();
      expect(rec.seen.map((d) => d.attempt)).toEqual([1, 2, 3]);
      const gaps = rec.seen.slice(1).map((d, i) => d.at - rec.seen[i]!.at);
      expect(gaps[0]).toBeGreaterThanOrEqual(29);
      expect(gaps[1]).toBeGreaterThanOrEqual(34); // the cap, 35: a cap is a wait too
      expect(await queue.stats()).toMatchObject({ delivered: 0, failed: 1, waiting: 0, delayed: 0, active: 0 });
    });

    it('caps the backoff at maxBackoffMs: twelve attempts finish, which uncapped would outlast the test', async () => {
      // capped: 20 + 10 × 25 ms of backoff; uncapped 20 × (2^11 - 1) ms = 41 s, beyond the test's
      // 30 s timeout, which is the only ceiling (no clock is read to bound the waits)
      const attempts = 12;
      const rec = recorder();
      const queue = await open(
        async (d) => {
          rec.record(d);
          throw new Error('push service down');
        },
        { attempts, backoffMs: 20, maxBackoffMs: 25 },
      );
      await queue.enqueue(note());
      await rec.until(attempts);
      await queue.drain();
      expect(rec.seen.map((d) => d.attempt)).toEqual(Array.from({ length: attempts }, (_, i) => i + 1));
      const gaps = rec.seen.slice(1).map((d, i) => d.at - rec.seen[i]!.at);
      // never shorter than the capped backoff (timers may fire a millisecond early by rounding)
      expect(gaps.map((g, i) => g >= (i === 0 ? 19 : 24))).toEqual(gaps.map(() => true));
      expect(await queue.stats()).toMatchObject({ delivered: 0, failed: 1, waiting: 0, delayed: 0, active: 0 });
    });

    it('dedup: the same key within the window is accepted once and delivered once', async () => {
      const rec = recorder();
      const queue = await open(async (d) => rec.record(d));
      const n = note();
      const first = await queue.enqueue(n);
      const again = await queue.enqueue({ ...n, body: 'changed text' });
      expect(again).toEqual({ id: first.id, duplicate: true });
      const other = await queue.enqueue(note());
      expect(other.duplicate).toBe(false);
      expect(other.id).not.toBe(first.id);
      await rec.until(2);
      await queue.drain();
      expect(rec.seen.map((d) => d.id).sort()).toEqual([first.id, other.id].sort());
      expect(rec.seen.find((d) => d.id === first.id)?.notification.body).toBe(n.body);
    });

    it('dedup ends after dedupTtlMs: the same key is queued again', async () => {
      const rec = recorder();
      const queue = await open(async (d) => rec.record(d), { dedupTtlMs: 50 });
      const n = note();
      const first = await queue.enqueue(n);
      await rec.until(1);
      await expect.poll(async () => (await queue.enqueue(n)).duplicate, { timeout: 20_000, interval: 20 }).toBe(false);
      await rec.until(2);
      expect(rec.seen[1]!.id).not.toBe(first.id);
    });

    it('never has more than `concurrency` notifications with the sender', async () => {
      let active = 0;
      let peak = 0;
      const rec = recorder();
      const queue = await open(
        async (d) => {
          active++;
          peak = Math.max(peak, active);
          await new Promise((r) => setTimeout(r, 5));
          active--;
          rec.record(d);
        },
        { concurrency: 2 },
      );
      await Promise.all([...Array(8)].map(() => queue.enqueue(note())));
      await rec.until(8);
      await queue.drain();
      expect(peak).toBe(2);
    });

    it('refuses an enqueue past maxQueued with unavailable (a receiver that takes nothing: the queue does not grow without bound), a duplicate of a queued key still answered, and takes them again once delivered', async () => {
      const rec = recorder();
      const held: Array<() => void> = [];
      const queue = await open((d) => new Promise<void>((resolve) => held.push(() => resolve(rec.record(d)))), { concurrency: 1, maxQueued: 3 });
      const first = note();
      for (const n of [first, note(), note()]) await queue.enqueue(n);
      const refused = await queue.enqueue(note()).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(TierError);
      expect(refused).toMatchObject({ code: 'unavailable', message: expect.stringMatching(/^push queue full: 3 notifications queued \(TIER_PUSH_MAX_QUEUED\)/) });
      expect(await queue.enqueue(first)).toMatchObject({ duplicate: true });
      while (rec.seen.length < 3) {
        await expect.poll(() => held.length).toBeGreaterThan(0);
        held.shift()!();
      }
      await queue.drain();
      // counted again (a shared queue counts at most once a second)
      await expect.poll(() => queue.enqueue(note()).then(() => true, () => false), { interval: 250 }).toBe(true);
      while (held.length > 0) held.shift()!();
    });

    it('holds maxQueued under a burst of enqueues at once: those whose write is out count (review "diff25": 1,000 of 1,000 taken at a bound of 100)', async () => {
      const held: Array<() => void> = [];
      const queue = await open(() => new Promise<void>((resolve) => held.push(resolve)), { concurrency: 1, maxQueued: 10 });
      const outcomes = await Promise.allSettled(Array.from({ length: 40 }, () => queue.enqueue(note())));
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(10);
      expect(outcomes.filter((o) => o.status === 'rejected').every((o) => (o as PromiseRejectedResult).reason.code === 'unavailable')).toBe(true);
      // the receiver answers: the queue empties and closes
      while (held.length > 0 || (await queue.stats()).active + (await queue.stats()).waiting > 0) {
        held.splice(0).forEach((resolve) => resolve());
        await new Promise((r) => setTimeout(r, 20));
      }
    });

    it('refuses a bad notification naming the field', async () => {
      const queue = await open(async () => {});
      const cases: Array<[Partial<PushNotification>, string]> = [
        [{ homeId: 'a.b' }, 'homeId'],
        [{ title: '' }, 'title'],
        [{ body: 'x'.repeat(2_001) }, 'body'],
        [{ dedupKey: '' }, 'dedupKey'],
        [{ data: { ruleId: 5 as unknown as string } }, 'data.ruleId'],
        [{ audience: 'everyone' as 'home' }, 'audience'],
      ];
      for (const [patch, field] of cases) {
        const err = await queue.enqueue(note(patch)).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(TierError);
        expect(err).toMatchObject({ code: 'invalid_field', field });
      }
      expect(await queue.stats()).toMatchObject({ waiting: 0, delivered: 0 });
    });

    it('removeHome drops the home’s queued and failed notifications, lets the one with the sender finish, and leaves other homes alone', async () => {
      const rec = recorder();
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const queue = await open(
        async (d) => {
          rec.record(d);
          if (d.notification.title === 'dead') throw new Error('push service down');
          if (d.notification.title === 'held') await gate;
        },
        { concurrency: 1, attempts: 1 },
      );
      await queue.enqueue(note({ homeId: 'home-x', title: 'dead' }));
      await rec.until(1);
      await queue.drain(); // the dead letter is kept as failed
      await queue.enqueue(note({ homeId: 'home-x', title: 'held' }));
      await rec.until(2);
      // with the sender busy (one at a time), these wait
      await queue.enqueue(note({ homeId: 'home-x', title: 'queued' }));
      await queue.enqueue(note({ homeId: 'home-y', title: 'other' }));
      expect(await queue.removeHome('home-x')).toBe(2);
      expect(await queue.removeHome('home-z')).toBe(0);
      release();
      await rec.until(3);
      await queue.drain();
      expect(rec.seen.map((d) => `${d.notification.homeId} ${d.notification.title}`)).toEqual(['home-x dead', 'home-x held', 'home-y other']);
      expect(await queue.stats()).toMatchObject({ waiting: 0, delayed: 0, active: 0 });
    });

    it('removeHome drops a notification waiting for its retry: it is not tried again', async () => {
      const rec = recorder();
      const queue = await open(
        async (d) => {
          rec.record(d);
          throw new Error('push service down');
        },
        { attempts: 2, backoffMs: 60_000, maxBackoffMs: 60_000 },
      );
      await queue.enqueue(note({ homeId: 'home-x' }));
      await rec.until(1);
      for (let s = await queue.stats(); s.delayed === 0; s = await queue.stats()) await new Promise((r) => setTimeout(r, 20));
      expect(await queue.removeHome('home-x')).toBe(1);
      expect(await queue.stats()).toMatchObject({ waiting: 0, delayed: 0, active: 0 });
      await queue.drain();
      expect(rec.seen).toHaveLength(1);
    });

    it('drain resolves at once when idle; enqueue after close is refused', async () => {
      const queue = await open(async () => {});
      await queue.drain();
      await queue.close();
      await expect(queue.enqueue(note())).rejects.toBeInstanceOf(TierError);
    });
  });
}
