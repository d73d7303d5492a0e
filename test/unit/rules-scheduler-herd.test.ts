/**
 * A minute when many homes' cron rules fire at once (every home's "good morning" at 07:00): the
 * scheduler handles their instants concurrently (one at a time, each waiting for its cursor's
 * commit, 14,000 rules fired over 190 s: review herd), keeps at most 256 firings waiting for their
 * homes, fires nothing once stopped, and shares one croner job per pattern (80 KB each).
 */
import { afterEach, expect, it } from 'vitest';
import { MemoryLease } from '../../src/ports/lease/lease-memory.js';
import { MemoryRuleStore } from '../../src/ports/rule-store/rule-store-memory.js';
import { LocalCron, zoneClock } from '../../src/rules/local-cron.js';
import { CronScheduler } from '../../src/rules/scheduler.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { silentLog } from './rules-fixtures.js';

const schedulers: CronScheduler[] = [];
afterEach(async () => {
  await Promise.all(schedulers.splice(0).map((s) => s.stop()));
});

/** `homes` homes with a 07:00 rule each, the clock at 06:59:30 UTC; cursor writes counted while in flight. */
async function morning(homes: number) {
  const clock = { now: Date.UTC(2026, 0, 5, 6, 59, 30) };
  const store = new MemoryRuleStore({ now: () => clock.now });
  for (let i = 0; i < homes; i++) await store.createRule(`home-${i}`, validateRuleSpec({ name: 'Good morning', triggers: [{ type: 'cron', cron: '0 7 * * *' }], actions: [{ type: 'notify', title: 'Morning', body: 'hi' }] }));
  let writing = 0;
  let mostWriting = 0;
  const advance = store.advanceCursor.bind(store);
  store.advanceCursor = async (...args) => {
    mostWriting = Math.max(mostWriting, ++writing);
    // a commit: answered in a later turn, as a disk or Redis store answers
    await new Promise((r) => setImmediate(r));
    writing--;
    return advance(...args);
  };
  return { clock, store, lease: new MemoryLease({ now: () => clock.now }), mostWriting: () => mostWriting };
}

it('handles a minute of 2,000 rules concurrently, every one fired once', async () => {
  const m = await morning(2_000);
  const fired: string[] = [];
  const s = new CronScheduler({ store: m.store, lease: m.lease, nodeId: 'n', fire: async (_h, ruleId) => void fired.push(ruleId), log: silentLog, now: () => m.clock.now });
  schedulers.push(s);
  await s.tick();
  m.clock.now += 31_000;
  await s.tick();
  expect(fired).toHaveLength(2_000);
  expect(new Set(fired).size).toBe(2_000);
  expect(m.mostWriting()).toBeGreaterThanOrEqual(32);
});

it('keeps at most 256 firings waiting for their homes, and fires the rest as they answer', async () => {
  const m = await morning(600);
  const waiting: Array<() => void> = [];
  let mostWaiting = 0;
  const s = new CronScheduler({
    store: m.store,
    lease: m.lease,
    nodeId: 'n',
    fire: () => new Promise<'ran'>((done) => (waiting.push(() => done('ran')), (mostWaiting = Math.max(mostWaiting, waiting.length)))),
    log: silentLog,
    now: () => m.clock.now,
  });
  schedulers.push(s);
  await s.tick();
  m.clock.now += 31_000;
  const tick = s.tick();
  // the homes answer only once the scheduler stops adding firings
  let answered = 0;
  let seen = -1;
  while (answered < 600) {
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    if (waiting.length !== seen) {
      seen = waiting.length;
      continue;
    }
    const batch = waiting.splice(0);
    answered += batch.length;
    seen = 0;
    for (const done of batch) done();
  }
  await tick;
  expect(answered).toBe(600);
  expect(mostWaiting).toBe(256);
});

it('fires nothing more once stopped in the middle of a burst', async () => {
  const m = await morning(600);
  let fired = 0;
  const s = new CronScheduler({ store: m.store, lease: m.lease, nodeId: 'n', fire: async () => void fired++, log: silentLog, now: () => m.clock.now });
  await s.tick();
  m.clock.now += 31_000;
  const tick = s.tick();
  // a few turns in: some fired, then the drain stops the scheduler
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  await s.stop();
  await tick;
  const atStop = fired;
  expect(atStop).toBeLessThan(600);
  await new Promise((r) => setTimeout(r, 20));
  expect(fired).toBe(atStop);
});

it('rules of one pattern share one croner job, whatever their zones', () => {
  const a = new LocalCron('0 7 * * *', zoneClock('Europe/Berlin'));
  const b = new LocalCron('0 7 * * *', zoneClock('America/New_York'));
  const c = new LocalCron('30 7 * * *', zoneClock('Europe/Berlin'));
  const job = (x: LocalCron) => (x as unknown as { cron: object }).cron;
  expect(job(a)).toBe(job(b));
  expect(job(a)).not.toBe(job(c));
  // and each still reads its own zone
  const after = Date.UTC(2026, 0, 5, 0, 0);
  expect(new Date(a.nextAfter(after)!).toISOString()).toBe('2026-01-05T06:00:00.000Z');
  expect(new Date(b.nextAfter(after)!).toISOString()).toBe('2026-01-05T12:00:00.000Z');
});
