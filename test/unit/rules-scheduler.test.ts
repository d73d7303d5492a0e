/**
 * Cron timers: once per instant across nodes (two schedulers sharing one lease and one store, as
 * two nodes share Redis), restart and catch-up policy, time zones, and the curtain example end to end.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import type { Lease } from '../../src/ports/lease/lease.js';
import { MemoryLease } from '../../src/ports/lease/lease-memory.js';
import { RulePool } from '../../src/rules/pool.js';
import { MemoryRuleStore } from '../../src/ports/rule-store/rule-store-memory.js';
import { CronScheduler, type CronSchedulerDeps } from '../../src/rules/scheduler.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { rig, silentLog, type Rig } from './rules-fixtures.js';

/** Berlin wall clock → epoch ms (UTC+1 in winter, UTC+2 in summer) */
const berlinWinter = (y: number, m: number, d: number, hh: number, mm = 0, ss = 0) => Date.UTC(y, m - 1, d, hh - 1, mm, ss);
const berlinSummer = (y: number, m: number, d: number, hh: number, mm = 0, ss = 0) => Date.UTC(y, m - 1, d, hh - 2, mm, ss);

const CURTAINS = {
  name: 'Weekday curtains',
  triggers: [{ type: 'cron', cron: '0 7 * * 1-5' }],
  actions: [{ type: 'command', hub: 'home1-hub', device: 'bedroom-curtains', method: 'open' }],
};

interface Fired {
  node: string;
  ruleId: string;
  at: number;
}

function node(name: string, store: MemoryRuleStore, lease: Lease, clock: { now: number }, fired: Fired[], deps: Partial<CronSchedulerDeps> = {}): CronScheduler {
  return new CronScheduler({
    store,
    lease,
    nodeId: name,
    fire: async (_homeId, ruleId, at) => void fired.push({ node: name, ruleId, at }),
    log: silentLog,
    now: () => clock.now,
    ...deps,
  });
}

const schedulers: CronScheduler[] = [];
function track(...s: CronScheduler[]): CronScheduler[] {
  schedulers.push(...s);
  return s;
}
afterEach(async () => {
  await Promise.all(schedulers.splice(0).map((s) => s.stop()));
  vi.useRealTimers();
});

describe('two nodes, one lease, one store', () => {
  it('a weekday 07:00 rule fires exactly once per weekday over a simulated week, whichever node ticks first', async () => {
    // Sunday 2024-01-07 12:00 Berlin, a week of ticks every 20 s on both nodes
    const clock = { now: berlinWinter(2024, 1, 7, 12) };
    const store = new MemoryRuleStore({ now: () => clock.now });
    const lease = new MemoryLease({ now: () => clock.now });
    await store.putSettings('home1', { timeZone: 'Europe/Berlin' });
    const rule = await store.createRule('home1', validateRuleSpec(CURTAINS));
    const fired: Fired[] = [];
    const [a, b] = track(node('node-a', store, lease, clock, fired), node('node-b', store, lease, clock, fired));
    const end = clock.now + 7 * 86_400_000;
    while (clock.now < end) {
      clock.now += 20_000;
      // both nodes see every instant; which one ticks first changes every day
      if (Math.floor(clock.now / 86_400_000) % 2 === 0) await Promise.all([a!.tick(), b!.tick()]);
      else await Promise.all([b!.tick(), a!.tick()]);
    }
    expect(fired.map((f) => new Date(f.at).toISOString())).toEqual([
      '2024-01-08T06:00:00.000Z',
      '2024-01-09T06:00:00.000Z',
      '2024-01-10T06:00:00.000Z',
      '2024-01-11T06:00:00.000Z',
      '2024-01-12T06:00:00.000Z',
    ]);
    expect(fired.every((f) => f.ruleId === rule.id)).toBe(true);
    // the lease went to both nodes over the week, and each loser counted the instant as taken
    expect(new Set(fired.map((f) => f.node)).size).toBe(2);
    expect(a!.counts.fired + b!.counts.fired).toBe(5);
    expect(a!.counts.taken + b!.counts.taken).toBe(5);
    expect(a!.counts.missed + b!.counts.missed).toBe(0);
  });

  it('started on their own timers, two schedulers fire each instant of a per-second rule once', async () => {
    // their own setInterval and Date.now, on a fake clock: 06:00:00.500 UTC, then five seconds
    vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'], now: Date.UTC(2024, 0, 8, 6, 0, 0, 500) });
    const clock = {
      get now() {
        return Date.now();
      },
    };
    const store = new MemoryRuleStore();
    const lease = new MemoryLease();
    const rule = await store.createRule('home1', validateRuleSpec({ ...CURTAINS, triggers: [{ type: 'cron', cron: '* * * * * *' }] }, { minCronIntervalMs: 1_000 }));
    const fired: Fired[] = [];
    const [a, b] = track(node('node-a', store, lease, clock, fired, { pollMs: 25 }), node('node-b', store, lease, clock, fired, { pollMs: 25 }));
    a!.start();
    b!.start();
    await vi.advanceTimersByTimeAsync(5_000);
    await Promise.all([a!.stop(), b!.stop()]);
    // every second after the rule was made, up to now: once each, none twice, none missing
    expect(fired.map((f) => new Date(f.at).toISOString()).sort()).toEqual([
      '2024-01-08T06:00:01.000Z',
      '2024-01-08T06:00:02.000Z',
      '2024-01-08T06:00:03.000Z',
      '2024-01-08T06:00:04.000Z',
      '2024-01-08T06:00:05.000Z',
    ]);
    expect(fired.every((f) => f.ruleId === rule.id)).toBe(true);
    expect(a!.counts.fired + b!.counts.fired).toBe(5);
    expect(a!.counts.missed + b!.counts.missed).toBe(0);
  });

  it('even a lease that lets everyone in cannot fire an instant twice: the cursor is a compare-and-set', async () => {
    const clock = { now: berlinWinter(2024, 1, 8, 6, 59) };
    const store = new MemoryRuleStore({ now: () => clock.now });
    await store.putSettings('home1', { timeZone: 'Europe/Berlin' });
    await store.createRule('home1', validateRuleSpec(CURTAINS));
    const open: Lease = { tryAcquire: async () => true, renew: async () => true, release: async () => true, close: async () => {} };
    const fired: Fired[] = [];
    const [a, b] = track(node('node-a', store, open, clock, fired), node('node-b', store, open, clock, fired));
    clock.now = berlinWinter(2024, 1, 8, 7, 0, 1);
    await Promise.all([a!.tick(), b!.tick()]);
    expect(fired).toHaveLength(1);
  });
});

describe('restart and catch-up policy', () => {
  async function setup(start: number, catchUpMs?: number) {
    const clock = { now: start };
    const store = new MemoryRuleStore({ now: () => clock.now });
    const lease = new MemoryLease({ now: () => clock.now });
    await store.putSettings('home1', { timeZone: 'Europe/Berlin' });
    const trigger = catchUpMs === undefined ? { type: 'cron', cron: '0 7 * * 1-5' } : { type: 'cron', cron: '0 7 * * 1-5', catchUpMs };
    const rule = await store.createRule('home1', validateRuleSpec({ ...CURTAINS, triggers: [trigger] }));
    return { clock, store, lease, rule, fired: [] as Fired[] };
  }

  it('a node restarted 30 s after the instant fires it late (within the 60 s default), once', async () => {
    const s = await setup(berlinWinter(2024, 1, 8, 6, 0));
    const [a] = track(node('node-a', s.store, s.lease, s.clock, s.fired));
    s.clock.now = berlinWinter(2024, 1, 8, 7, 0, 1);
    await a!.tick();
    expect(s.fired).toHaveLength(1);
    await a!.stop(); // the node goes down before Tuesday 07:00 …
    s.clock.now = berlinWinter(2024, 1, 9, 7, 0, 30); // … and is back 30 s late
    const [again] = track(node('node-a', s.store, s.lease, s.clock, s.fired));
    await again!.tick();
    await again!.tick();
    expect(s.fired.map((f) => new Date(f.at).toISOString())).toEqual(['2024-01-08T06:00:00.000Z', '2024-01-09T06:00:00.000Z']);
    expect(await s.store.getCursor(s.rule.id)).toBe(Date.UTC(2024, 0, 9, 6));
  });

  it('back 2 minutes late: the instant is skipped and counted, the next one fires', async () => {
    const s = await setup(berlinWinter(2024, 1, 8, 6, 0));
    s.clock.now = berlinWinter(2024, 1, 8, 7, 2);
    const [a] = track(node('node-a', s.store, s.lease, s.clock, s.fired));
    const report = await a!.tick();
    expect(report).toMatchObject({ fired: [], missed: 1 });
    expect(await s.store.getCursor(s.rule.id)).toBe(Date.UTC(2024, 0, 8, 6));
    s.clock.now = berlinWinter(2024, 1, 9, 7, 0, 1);
    await a!.tick();
    expect(s.fired.map((f) => new Date(f.at).toISOString())).toEqual(['2024-01-09T06:00:00.000Z']);
  });

  it('after a long outage it fires at most once (the latest instant, if within catch-up), never a burst', async () => {
    const s = await setup(berlinWinter(2024, 1, 8, 6, 0));
    const [a] = track(node('node-a', s.store, s.lease, s.clock, s.fired));
    s.clock.now = berlinWinter(2024, 1, 8, 7, 0, 1);
    await a!.tick();
    await a!.stop();
    // down from Monday until Friday 07:00:10: Tuesday, Wednesday, Thursday are missed
    s.clock.now = berlinWinter(2024, 1, 12, 7, 0, 10);
    const [b] = track(node('node-b', s.store, s.lease, s.clock, s.fired));
    const report = await b!.tick();
    expect(report.missed).toBe(3);
    expect(s.fired.map((f) => new Date(f.at).toISOString())).toEqual(['2024-01-08T06:00:00.000Z', '2024-01-12T06:00:00.000Z']);
  });

  it('a trigger may widen its catch-up window (open the curtains even 40 minutes late)', async () => {
    const s = await setup(berlinWinter(2024, 1, 8, 6, 0), 3_600_000);
    s.clock.now = berlinWinter(2024, 1, 8, 7, 40);
    const [a] = track(node('node-a', s.store, s.lease, s.clock, s.fired));
    await a!.tick();
    expect(s.fired).toHaveLength(1);
  });

  it("each instant keeps its own trigger's catch-up: a sibling trigger's 24 h does not widen it", async () => {
    const s = await setup(berlinWinter(2024, 1, 8, 6, 0));
    const paired = await s.store.createRule('home1', validateRuleSpec({ ...CURTAINS, triggers: [{ type: 'cron', cron: '0 7 * * 1-5' }, { type: 'cron', cron: '0 19 * * *', catchUpMs: 86_400_000 }] }));
    // back 77 s after 07:00: both rules skip it (60 s), though `paired` has a trigger of 24 h
    s.clock.now = berlinWinter(2024, 1, 8, 7, 1, 17);
    const [a] = track(node('node-a', s.store, s.lease, s.clock, s.fired));
    expect(await a!.tick()).toMatchObject({ fired: [], missed: 2 });
    // the 24 h trigger's own instant fires hours late
    s.clock.now = berlinWinter(2024, 1, 8, 22, 30);
    await a!.tick();
    expect(s.fired.map((f) => [f.ruleId, new Date(f.at).toISOString()])).toEqual([[paired.id, '2024-01-08T18:00:00.000Z']]);
  });

  it("the latest instant within its own trigger's catch-up fires: a frequent trigger's later, too-late instant does not mask it", async () => {
    const s = await setup(berlinWinter(2024, 1, 8, 6, 50));
    const curtains = await s.store.createRule('home1', validateRuleSpec({ ...CURTAINS, triggers: [{ type: 'cron', cron: '*/5 * * * *' }, { type: 'cron', cron: '0 8 * * *', catchUpMs: 3_600_000 }] }));
    // down from 07:50 to 08:07: 07:55 and 08:05 are past their 60 s, 08:00 is within its hour
    s.clock.now = berlinWinter(2024, 1, 8, 8, 7);
    const [a] = track(node('node-a', s.store, s.lease, s.clock, s.fired));
    expect(await a!.tick()).toMatchObject({ missed: expect.any(Number) });
    expect(s.fired.filter((f) => f.ruleId === curtains.id).map((f) => new Date(f.at).toISOString())).toEqual(['2024-01-08T07:00:00.000Z']);
    // the cursor passed 08:05: nothing more fires for it
    s.clock.now += 1_000;
    await a!.tick();
    expect(s.fired.filter((f) => f.ruleId === curtains.id)).toHaveLength(1);
  });

  it("a skipped instant is in the rule's statistics (errors, lastError), with how late it was, as a missed event is", async () => {
    const s = await setup(berlinWinter(2024, 1, 8, 6, 0));
    s.clock.now = berlinWinter(2024, 1, 8, 7, 1, 17);
    const [a] = track(node('node-a', s.store, s.lease, s.clock, s.fired));
    await a!.tick();
    let stats = (await s.store.getRunStats('home1', [s.rule.id])).get(s.rule.id)!;
    expect(stats).toMatchObject({ errors: 1, lastError: { at: s.clock.now, message: 'cron instant 2024-01-08 07:00:00 (Europe/Berlin) skipped: 77 s late (catch-up 60 s)' } });
    // down Tuesday to Friday 07:00:10: three instants skipped in one record, Friday's fires
    s.clock.now = berlinWinter(2024, 1, 12, 7, 0, 10);
    await a!.tick();
    stats = (await s.store.getRunStats('home1', [s.rule.id])).get(s.rule.id)!;
    expect(stats).toMatchObject({ errors: 4, lastError: { at: s.clock.now, message: '3 cron instants skipped, the last 2024-01-11 07:00:00 (Europe/Berlin): after an outage only the latest missed instant fires' } });
    expect(s.fired).toHaveLength(1);
  });

  it('a rule created after the instant does not fire it; disabled and deleted rules do not fire', async () => {
    const s = await setup(berlinWinter(2024, 1, 8, 7, 0, 20));
    const [a] = track(node('node-a', s.store, s.lease, s.clock, s.fired));
    s.clock.now += 1_000;
    await a!.tick();
    expect(s.fired).toEqual([]);
    await s.store.setRuleEnabled('home1', s.rule.id, false);
    s.clock.now = berlinWinter(2024, 1, 9, 7, 0, 1);
    await a!.tick();
    expect(s.fired).toEqual([]);
    expect(a!.size).toBe(0);
    await s.store.setRuleEnabled('home1', s.rule.id, true);
    s.clock.now = berlinWinter(2024, 1, 10, 7, 0, 1);
    await a!.tick();
    expect(s.fired).toHaveLength(1);
    await s.store.deleteRule('home1', s.rule.id);
    s.clock.now = berlinWinter(2024, 1, 11, 7, 0, 1);
    await a!.tick();
    expect(s.fired).toHaveLength(1);
    expect(await s.store.getCursor(s.rule.id)).toBeNull();
  });

  it('follows the home time zone and daylight saving', async () => {
    const s = await setup(Date.UTC(2024, 2, 29, 12));
    await s.store.putSettings('home1', { timeZone: 'America/New_York' });
    const [a] = track(node('node-a', s.store, s.lease, s.clock, s.fired));
    // Friday 2024-03-29 07:00 in New York (EDT, UTC-4) is 11:00 UTC
    s.clock.now = Date.UTC(2024, 3, 1, 11, 0, 1); // Monday 07:00:01 EDT
    await a!.tick();
    expect(s.fired.map((f) => new Date(f.at).toISOString())).toEqual(['2024-04-01T11:00:00.000Z']);
    // summer time in Berlin: 07:00 is 05:00 UTC
    await s.store.putSettings('home1', { timeZone: 'Europe/Berlin' });
    s.clock.now = berlinSummer(2024, 4, 2, 7, 0, 1);
    await a!.tick();
    expect(new Date(s.fired.at(-1)!.at).toISOString()).toBe('2024-04-02T05:00:00.000Z');
  });
});

describe('example: every weekday at 07:00 open the bedroom curtains (engine, two nodes)', () => {
  const poolTimers = new TimerWheel();
  let pool: RulePool;
  let r: Rig;
  beforeAll(() => {
    pool = new RulePool({ timers: poolTimers, threads: 1 });
  });
  afterAll(async () => {
    await r?.close();
    await pool.close();
    poolTimers.close();
  });

  it('opens the curtains Monday to Friday at 07:00 Berlin time, once each day, not at the weekend', async () => {
    r = rig(pool, berlinWinter(2024, 1, 6, 12)); // Saturday
    await r.store.putSettings('home1', { timeZone: 'Europe/Berlin' });
    await r.store.createRule('home1', validateRuleSpec(CURTAINS));
    const lease = new MemoryLease({ now: () => r.clock.now });
    const mk = (name: string) =>
      new CronScheduler({ store: r.store, lease, nodeId: name, fire: (h, id, at) => r.engine.fireScheduled(h, id, at), log: silentLog, now: () => r.clock.now });
    const [a, b] = track(mk('node-a'), mk('node-b'));
    const end = r.clock.now + 9 * 86_400_000; // Saturday → next Monday
    while (r.clock.now < end) {
      r.clock.now += 30_000;
      await Promise.all([a!.tick(), b!.tick()]);
      await r.settle();
    }
    const opened = r.hubs.commands.filter((c) => c.device === 'bedroom-curtains');
    expect(opened.map((c) => new Date(c.at).toISOString().slice(0, 16))).toEqual([
      '2024-01-08T06:00',
      '2024-01-09T06:00',
      '2024-01-10T06:00',
      '2024-01-11T06:00',
      '2024-01-12T06:00',
      '2024-01-15T06:00',
    ]);
    expect(opened.every((c) => JSON.stringify(c.spec) === '{"method":"open","params":{}}')).toBe(true);
  });
});

describe('a cron instant is evaluated at its own time (engine)', () => {
  const poolTimers = new TimerWheel();
  let pool: RulePool;
  let r: Rig | undefined;
  beforeAll(() => {
    pool = new RulePool({ timers: poolTimers, threads: 1 });
  });
  afterEach(async () => {
    await r?.close();
    r = undefined;
  });
  afterAll(async () => {
    await pool.close();
    poolTimers.close();
  });

  it('caught up 77 s late, a 08:01 instant still sees time.minute == 1 and renders {{ time.hhmm }} as 08:01', async () => {
    r = rig(pool, berlinSummer(2024, 7, 1, 7));
    await r.store.putSettings('home1', { timeZone: 'Europe/Berlin' });
    await r.store.createRule(
      'home1',
      validateRuleSpec({
        name: 'Morning report',
        triggers: [{ type: 'cron', cron: '1 8 * * *', catchUpMs: 180_000 }],
        conditions: ['time.minute == 1'],
        actions: [{ type: 'notify', title: 'Morning', body: 'due {{ time.hhmm }}' }],
      }),
    );
    const [a] = track(new CronScheduler({ store: r.store, lease: new MemoryLease({ now: () => r!.clock.now }), nodeId: 'node-a', fire: (h, id, at) => r!.engine.fireScheduled(h, id, at), log: silentLog, now: () => r!.clock.now }));
    // the node was down across 08:01 and is back at 08:02:17
    r.clock.now = berlinSummer(2024, 7, 1, 8, 2, 17);
    expect((await a!.tick()).fired).toHaveLength(1);
    await r.settle();
    expect(r.pushes.map((p) => p.notification.body)).toEqual(['due 08:01']);
  });

  it("a skipped instant shows in the rule's status the API answers", async () => {
    r = rig(pool, berlinSummer(2024, 7, 1, 7));
    await r.store.putSettings('home1', { timeZone: 'Europe/Berlin' });
    const rule = await r.store.createRule('home1', validateRuleSpec({ name: 'Morning report', triggers: [{ type: 'cron', cron: '1 8 * * *' }], actions: [{ type: 'notify', title: 'Morning', body: 'due' }] }));
    const [a] = track(new CronScheduler({ store: r.store, lease: new MemoryLease({ now: () => r!.clock.now }), nodeId: 'node-a', fire: (h, id, at) => r!.engine.fireScheduled(h, id, at), log: silentLog, now: () => r!.clock.now }));
    r.clock.now = berlinSummer(2024, 7, 1, 8, 2, 17);
    await a!.tick();
    const status = (await r.engine.statusOf('home1', [rule])).get(rule.id)!;
    expect(status.stats).toMatchObject({ errors: 1, lastRunAt: null, lastError: { message: 'cron instant 2024-07-01 08:01:00 (Europe/Berlin) skipped: 77 s late (catch-up 60 s)' } });
  });
});
