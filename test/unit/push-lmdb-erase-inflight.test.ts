/**
 * The embedded push queue: an enqueue whose commit is out when a home's `removeHome` runs is not
 * seen by it (its id joins `waiting` only once committed). Until 2026-12-06 (a race review) it was
 * delivered after the erasure answered; now it removes itself.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { openDataStore } from '../../src/ports/lmdb.js';
import { LmdbPushQueue } from '../../src/ports/push-queue/push-queue-lmdb.js';
import type { PushDelivery } from '../../src/ports/push-queue/push-queue.js';

/** A queue on a store of its own, given to `body`, closed and removed after it. */
async function withQueue(sender: (d: PushDelivery) => Promise<void>, backoffMs: number, body: (q: LmdbPushQueue) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'push-erase-'));
  const data = openDataStore(dir, { sync: 'os' });
  const q = await LmdbPushQueue.open(data, { sender, backoffMs });
  try {
    await body(q);
  } finally {
    await q.close();
    await data.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

it("a notification whose commit is out while its home is erased removes itself: not delivered after the erasure", async () => {
  const sent: PushDelivery[] = [];
  await withQueue(async (d) => void sent.push(d), 1, async (q) => {
    // a rule run's notify, its commit in flight
    const queued = q.enqueue({ homeId: 'home1', title: 'Water leak', body: 'kitchen', dedupKey: 'rule:r1:x:0' });
    // the erasure's last step, in the same moment
    const removed = await q.removeHome('home1');
    await queued;
    await q.drain();
    expect(removed).toBe(0);
    expect(sent).toEqual([]);
    // a later notification of the home (created again) is delivered
    await q.enqueue({ homeId: 'home1', title: 'Door', body: 'open', dedupKey: 'rule:r2:x:0' });
    await q.drain();
    expect(sent.map((d) => d.notification.title)).toEqual(['Door']);
  });
});

it('an enqueue that begins while removeHome commits its removals is not delivered after the erasure answered either (a review of the fix)', async () => {
  const sent: PushDelivery[] = [];
  let failing = true;
  // the webhook is down: the home's first notification waits for a retry (delayed)
  const sender = async (d: PushDelivery) => {
    if (failing) throw new Error('webhook down');
    sent.push(d);
  };
  await withQueue(sender, 60_000, async (q) => {
    await q.enqueue({ homeId: 'home1', title: 'Earlier', body: 'x', dedupKey: 'k0' });
    await new Promise((r) => setTimeout(r, 100));
    failing = false;
    // the erasure's last step; a rule run's notify begins in the same moment, after removeHome began
    const removing = q.removeHome('home1');
    const queued = q.enqueue({ homeId: 'home1', title: 'Water leak', body: 'kitchen', dedupKey: 'k1' });
    const removed = await removing;
    expect(removed).toBe(1);
    await queued;
    await q.drain();
    expect(sent).toEqual([]);
  });
});

it('a notification of a home created again after its erasure answered is delivered while other homes enqueue without pause (the first fix dropped it for as long as any commit was out)', async () => {
  const sent: PushDelivery[] = [];
  await withQueue(async (d) => void sent.push(d), 1, async (q) => {
    let stop = false;
    let i = 0;
    // another home's notifications, each begun before the one before has committed
    const traffic = (async () => {
      const out: Promise<unknown>[] = [];
      while (!stop) {
        out.push(q.enqueue({ homeId: 'home2', title: 't', body: 'b', dedupKey: `k${i++}` }));
        await new Promise((r) => setImmediate(r));
      }
      await Promise.all(out);
    })();
    try {
      await new Promise((r) => setTimeout(r, 50));
      const removed = await q.removeHome('home1'); // the erasure answered
      expect(removed).toBe(0);
      await new Promise((r) => setTimeout(r, 200)); // the home is created again, a rule notifies
      const res = await q.enqueue({ homeId: 'home1', title: 'Door', body: 'open', dedupKey: 'rule:r2:x:0' });
      expect(res.duplicate).toBe(false);
      await new Promise((r) => setTimeout(r, 200));
      stop = true;
      await traffic;
      await q.drain();
      expect(sent.filter((d) => d.notification.homeId === 'home1').map((d) => d.notification.title)).toEqual(['Door']);
    } finally {
      stop = true;
      await traffic.catch(() => {});
    }
  });
});
