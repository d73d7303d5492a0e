/**
 * What only a disk store promises: the LMDB rule store and push queue closed and opened again on
 * the same directory (a restart of the node) keep everything a resolved call wrote. Clocks and
 * retry timers are injected, so nothing here waits on wall time.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDataStore, type DataStore } from '../../src/ports/lmdb.js';
import { timerDelayMs, type PushDelivery, type PushNotification } from '../../src/ports/push-queue/push-queue.js';
import { LmdbPushQueue, type LmdbPushQueueOptions } from '../../src/ports/push-queue/push-queue-lmdb.js';
import { LmdbRuleStore } from '../../src/ports/rule-store/rule-store-lmdb.js';
import { recorder } from './push-queue.contract.js';
import type { RuleSpec } from '../../src/rules/model.js';

let dir: string;
let open: DataStore[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hubtier-restart-'));
});
afterEach(async () => {
  for (const d of open) await d.close().catch(() => {});
  open = [];
  await rm(dir, { recursive: true, force: true });
});

/** Opens the node's store on `dir`, as a start of the node does. */
function start(): DataStore {
  const data = openDataStore(dir, { owner: 'test' });
  open.push(data);
  return data;
}

async function stop(data: DataStore): Promise<void> {
  await data.close();
  open = open.filter((d) => d !== data);
}

const cronRule = (name: string): RuleSpec => ({
  name,
  enabled: true,
  triggers: [{ type: 'cron', cron: '0 7 * * *', catchUpMs: 120_000 }],
  devices: {},
  conditions: [],
  actions: [{ type: 'command', hub: 'hub1', device: 'curtains', set: { open: true } }],
  cooldownMs: 0,
  limit: { maxRuns: 20, windowMs: 60_000 },
});

describe('LmdbRuleStore across a restart', () => {
  it('keeps rules, scenes, settings, cursors and tombstones; the next version is larger even with the clock set back', async () => {
    const T = Date.UTC(2026, 0, 1);
    let data = start();
    let store = await LmdbRuleStore.open(data, { now: () => T });
    await store.putSettings('home1', { timeZone: 'Europe/Berlin' });
    const rule = await store.createRule('home1', cronRule('Curtains'));
    const gone = await store.createRule('home1', cronRule('Old'));
    const scene = await store.createScene('home1', { name: 'Movie', enabled: true, commands: [{ hub: 'hub1', device: 'tv', set: { on: true } }] });
    expect(await store.advanceCursor('home1', rule.id, T - 60_000)).toBe(true);
    expect(await store.deleteRule('home1', gone.id)).toBe(true);
    const before = await store.homeVersion('home1');
    await store.close();
    await stop(data);

    // an hour earlier: a version drawn from the clock alone would go back
    data = start();
    store = await LmdbRuleStore.open(data, { now: () => T - 3_600_000 });
    expect(await store.getRule('home1', rule.id)).toEqual(rule);
    expect(await store.listRules('home1')).toEqual([rule]);
    expect(await store.listScenes('home1')).toEqual([scene]);
    expect(await store.getSettings('home1')).toEqual({ timeZone: 'Europe/Berlin' });
    expect(await store.homeVersion('home1')).toBe(before);
    expect(await store.getCursor(rule.id)).toBe(T - 60_000);
    expect(await store.advanceCursor('home1', rule.id, T - 60_000)).toBe(false);
    expect(await store.listScheduled()).toEqual([
      { homeId: 'home1', ruleId: rule.id, version: 1, updatedAt: rule.updatedAt, timeZone: 'Europe/Berlin', crons: [{ cron: '0 7 * * *', catchUpMs: 120_000 }] },
    ]);
    // the deleted rule's tombstone outlived the restart: a late scheduler tick cannot revive its cursor
    expect(await store.advanceCursor('home1', gone.id, T)).toBe(false);
    expect(await store.getCursor(gone.id)).toBeNull();
    await store.setRuleEnabled('home1', rule.id, false);
    expect(await store.homeVersion('home1')).toBeGreaterThan(before);
    await store.close();
    await stop(data);

    // two days on: the tombstone has expired and was swept at open
    data = start();
    store = await LmdbRuleStore.open(data, { now: () => T + 2 * 86_400_000 });
    expect(await store.getRule('home1', rule.id)).toMatchObject({ enabled: false, version: 2 });
    expect(await store.advanceCursor('home1', gone.id, T)).toBe(true);
    await store.close();
  });
});

describe('LmdbRuleStore while it runs', () => {
  it('deletes sweep tombstones older than a day: rules created and deleted in a loop leave about a day of them, not one per delete', async () => {
    let now = Date.UTC(2026, 0, 1);
    const data = start();
    const store = await LmdbRuleStore.open(data, { now: () => now });
    const tombstones = () => {
      const out: number[] = [];
      for (const { key, value } of data.db<unknown>('rules').getRange({ start: ['cursor'] })) {
        if ((key as unknown[])[0] !== 'cursor') break;
        if (typeof value === 'object' && value !== null) out.push((value as { deletedAt: number }).deletedAt);
      }
      return out;
    };
    const churn = async (n: number) => {
      for (let i = 0; i < n; i++) await store.deleteRule('home1', (await store.createRule('home1', cronRule(`r${i}`))).id);
    };
    await churn(40);
    expect(tombstones()).toHaveLength(40);
    const kept = await store.createRule('home1', cronRule('kept'));
    await store.advanceCursor('home1', kept.id, now);
    // within the day every tombstone stays (a scheduler tick racing a delete cannot revive its cursor)
    now += 3_600_000;
    await churn(10);
    expect(tombstones()).toHaveLength(50);
    now += 86_400_000;
    await churn(10);
    expect(tombstones().filter((t) => now - t >= 86_400_000)).toEqual([]);
    expect(tombstones()).toHaveLength(10);
    expect(await store.getCursor(kept.id)).not.toBeNull();
    await store.close();
  });
});

/** Retry timers run by hand: each request is kept with its delay, and fired by the test. */
function manualTimers() {
  const requests: Array<{ ms: number; fn: () => void; cancelled: boolean }> = [];
  let waiters: Array<{ n: number; resolve: () => void }> = [];
  return {
    requests,
    timer(fn: () => void, ms: number): () => void {
      const t = { ms, fn, cancelled: false };
      requests.push(t);
      waiters = waiters.filter((w) => (requests.length >= w.n ? (w.resolve(), false) : true));
      return () => {
        t.cancelled = true;
      };
    },
    /** resolves once `n` timers were asked for */
    until(n: number): Promise<void> {
      if (requests.length >= n) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
    live: () => requests.filter((t) => !t.cancelled),
  };
}

/** Deliveries a sender saw (`recorder` of the contract), and a sender that records them, failing or not. */
function deliveries(fail = false) {
  const rec = recorder();
  return {
    ...rec,
    sender: async (d: PushDelivery) => {
      rec.record(d);
      if (fail) throw new Error('push service down');
    },
  };
}

const note = (dedupKey: string): PushNotification => ({ homeId: 'home1', title: 'Leak', body: 'bath', dedupKey, data: { ruleId: 'r1' } });

describe('LmdbPushQueue across a restart', () => {
  const base: Omit<LmdbPushQueueOptions, 'sender'> = { attempts: 3, backoffMs: 60_000, maxBackoffMs: 600_000, dedupTtlMs: 600_000 };

  it('queued jobs are delivered after the restart, the delivered one is not repeated, dedup keys are kept', async () => {
    let data = start();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = deliveries();
    let queue = await LmdbPushQueue.open(data, {
      ...base,
      concurrency: 1,
      sender: async (d) => {
        await first.sender(d);
        await gate;
      },
    });
    const ids = [];
    for (const key of ['a', 'b', 'c']) ids.push((await queue.enqueue(note(key))).id);
    await first.until(1);
    // close waits for the delivery with the sender; the other two stay queued on disk
    const closing = queue.close();
    release();
    await closing;
    await stop(data);
    expect(first.seen.map((d) => d.id)).toEqual([ids[0]]);

    data = start();
    const second = deliveries();
    queue = await LmdbPushQueue.open(data, { ...base, sender: second.sender });
    await second.until(2);
    await queue.drain();
    // the queue promises no order between notifications: compare as sets
    const byId = (a: [string | undefined, number], b: [string | undefined, number]) => String(a[0]).localeCompare(String(b[0]));
    expect(second.seen.map((d): [string, number] => [d.id, d.attempt]).sort(byId)).toEqual(
      ([
        [ids[1], 1],
        [ids[2], 1],
      ] as Array<[string | undefined, number]>).sort(byId),
    );
    expect(await queue.stats()).toMatchObject({ waiting: 0, delayed: 0, active: 0, delivered: 3, failed: 0 });
    expect(await queue.enqueue(note('a'))).toEqual({ id: ids[0], duplicate: true });
    await queue.close();
    await stop(data);

    // a third start finds nothing left to deliver
    data = start();
    const third = deliveries();
    queue = await LmdbPushQueue.open(data, { ...base, sender: third.sender });
    expect(await queue.stats()).toMatchObject({ waiting: 0, delayed: 0, active: 0, delivered: 3 });
    await queue.drain();
    expect(third.seen).toEqual([]);
    await queue.close();
  });

  it('a delayed retry waits out what is left of its backoff after the restart, then is delivered once', async () => {
    let now = 1_000_000;
    let data = start();
    const timers1 = manualTimers();
    const failing = deliveries(true);
    let queue = await LmdbPushQueue.open(data, { ...base, now: () => now, timer: timers1.timer, sender: failing.sender });
    const { id } = await queue.enqueue(note('leak'));
    // the retry is armed once its instant is committed
    await timers1.until(1);
    expect(timers1.requests[0]!.ms).toBe(60_000);
    expect(await queue.stats()).toMatchObject({ delayed: 1, waiting: 0 });
    await queue.close();
    await stop(data);

    now += 20_000;
    data = start();
    const timers2 = manualTimers();
    const ok = deliveries();
    queue = await LmdbPushQueue.open(data, { ...base, now: () => now, timer: timers2.timer, sender: ok.sender });
    expect(await queue.stats()).toMatchObject({ delayed: 1, waiting: 0, active: 0 });
    expect(timers2.live().map((t) => t.ms)).toEqual([40_000]);
    expect(ok.seen).toEqual([]);
    now += 40_000;
    timers2.live()[0]!.fn();
    await ok.until(1);
    await queue.drain();
    expect(ok.seen.map((d) => [d.id, d.attempt])).toEqual([[id, 2]]);
    expect(await queue.stats()).toMatchObject({ delayed: 0, waiting: 0, delivered: 1, failed: 0 });
    await queue.close();
  });

  it('a retry stored while the clock ran weeks ahead waits at most the longest retry once the clock is right, its timer within what setTimeout takes (review wrap)', async () => {
    const right = 1_000_000_000;
    let now = right + 40 * 86_400_000;
    let data = start();
    const timers1 = manualTimers();
    let queue = await LmdbPushQueue.open(data, { ...base, now: () => now, timer: timers1.timer, sender: deliveries(true).sender });
    await queue.enqueue(note('ahead'));
    await timers1.until(1);
    await queue.close();
    await stop(data);

    now = right;
    data = start();
    const timers2 = manualTimers();
    queue = await LmdbPushQueue.open(data, { ...base, now: () => now, timer: timers2.timer, sender: deliveries().sender });
    // the longest retry (maxBackoffMs 600,000 here), not the 40 days its instant said: past 2^31 − 1 ms a timer fired at once, in a loop
    expect(timers2.live().map((t) => t.ms)).toEqual([600_000]);
    expect([timerDelayMs(right + 2 ** 40, right), timerDelayMs(right - 5, right)]).toEqual([2 ** 31 - 1, 0]);
    await queue.close();
    await stop(data);
  });

  it('dead letters past keepFailedMs are removed (at open, and by the timer of a quiet queue), with their words; the younger stay', async () => {
    let now = 10_000_000;
    const data = start();
    const failing = deliveries(true);
    const keepFailedMs = 3_600_000;
    let queue = await LmdbPushQueue.open(data, { ...base, attempts: 1, keepFailedMs, now: () => now, sender: failing.sender });
    const { id: first } = await queue.enqueue(note('old'));
    await queue.drain();
    now += keepFailedMs / 2;
    const { id: second } = await queue.enqueue(note('young'));
    await queue.drain();
    expect(queue.failedJobs().map((f) => f.id)).toEqual([first, second]);
    // the first is past the age: a quiet queue's timer removes it, the second stays
    now += keepFailedMs / 2 + 1;
    await queue.trimFailed();
    expect(queue.failedJobs().map((f) => f.id)).toEqual([second]);
    await queue.close();
    // past the second's age while the node was stopped: gone at open
    now += keepFailedMs;
    queue = await LmdbPushQueue.open(data, { ...base, keepFailedMs, now: () => now, sender: failing.sender });
    expect(queue.failedJobs()).toEqual([]);
    expect((await queue.stats()).failed).toBe(2);
    await queue.close();
    await stop(data);
  });

  it('keeps the newest maxFailed dead letters, by the size of the set: after many failures in a life and the old ones gone by age, new ones stay (review diff7)', async () => {
    let now = 20_000_000;
    const data = start();
    const failing = deliveries(true);
    const open = () => LmdbPushQueue.open(data, { ...base, attempts: 1, maxFailed: 3, keepFailedMs: 3_600_000, now: () => now, sender: failing.sender });
    /** `n` notifications queued one after another, each failing its one attempt: their ids */
    const fail = async (queue: LmdbPushQueue, prefix: string, n: number) => {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        ids.push((await queue.enqueue(note(`${prefix}-${i}`))).id);
        await queue.drain();
        now += 1;
      }
      return ids;
    };
    let queue = await open();
    const ids = await fail(queue, 'first', 5);
    expect(queue.failedJobs().map((f) => f.id)).toEqual(ids.slice(2));
    await queue.close();
    // the three age out while the node is stopped; then three new failures are all kept
    now += 3_600_001;
    queue = await open();
    expect(queue.failedJobs()).toEqual([]);
    const later = await fail(queue, 'later', 3);
    expect(queue.failedJobs().map((f) => f.id)).toEqual(later);
    expect((await queue.stats()).failed).toBe(8);
    await queue.close();
    await stop(data);
  });

  it('the failed set and its count outlive the restart; a failed job is not delivered again', async () => {
    let now = 5_000_000;
    let data = start();
    const timers = manualTimers();
    const failing = deliveries(true);
    const failed: PushDelivery[] = [];
    let queue = await LmdbPushQueue.open(data, { ...base, attempts: 2, now: () => now, timer: timers.timer, sender: failing.sender, onFailed: (d) => failed.push(d) });
    const { id } = await queue.enqueue(note('leak'));
    await timers.until(1);
    now += 60_000;
    timers.live()[0]!.fn();
    await failing.until(2);
    await queue.drain();
    expect(failed.map((d) => [d.id, d.attempt])).toEqual([[id, 2]]);
    await queue.close();
    await stop(data);

    data = start();
    const after = deliveries();
    queue = await LmdbPushQueue.open(data, { ...base, now: () => now, sender: after.sender });
    expect(await queue.stats()).toMatchObject({ waiting: 0, delayed: 0, active: 0, delivered: 0, failed: 1 });
    expect(queue.failedJobs()).toEqual([{ id, notification: { ...note('leak'), audience: 'home' }, attempts: 2, error: 'push service down', failedAt: now }]);
    await queue.drain();
    expect(after.seen).toEqual([]);
    await queue.close();
  });
});
