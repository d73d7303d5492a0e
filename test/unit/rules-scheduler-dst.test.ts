/**
 * Daylight saving for every pattern, through the real CronScheduler with a clock ticking every 30 s
 * across the change: each wall-clock time of the repeated (autumn) hour fires once, at its first
 * occurrence; the times of the skipped (spring) hour fire once, together, at the end of the gap.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryRuleStore } from '../../src/ports/rule-store/rule-store-memory.js';
import { ZoneClock } from '../../src/rules/local-cron.js';
import { CronScheduler } from '../../src/rules/scheduler.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { cronOnClock } from './rules-fixtures.js';

const schedulers: CronScheduler[] = [];
afterEach(async () => {
  await Promise.all(schedulers.splice(0).map((s) => s.stop()));
});

/** The instants (UTC, "HH:MM", or "MM-DDTHH:MM" over a day or more) at which `pattern` fires from `from` to `to`. */
async function firings(timeZone: string, pattern: string, from: string, to: string): Promise<string[]> {
  const clock = { now: Date.parse(from) };
  const store = new MemoryRuleStore({ now: () => clock.now });
  await store.putSettings('home1', { timeZone });
  await store.createRule('home1', validateRuleSpec({ name: 'r', triggers: [{ type: 'cron', cron: pattern }], actions: [{ type: 'notify', title: 't', body: 'b' }] }));
  const fired: number[] = [];
  const s = cronOnClock(store, clock, (at) => void fired.push(at));
  schedulers.push(s);
  for (const end = Date.parse(to); clock.now <= end; clock.now += 30_000) await s.tick();
  const short = Date.parse(to) - Date.parse(from) < 86_400_000;
  return fired.map((t) => new Date(t).toISOString().slice(short ? 11 : 5, 16));
}

describe('the repeated autumn hour: each wall-clock time fires once', () => {
  // New York 2026-11-01: 02:00 EDT (06:00Z) goes back to 01:00 EST; 01:xx happens at 05:xxZ and 06:xxZ
  const ny = (p: string) => firings('America/New_York', p, '2026-11-01T03:00:00Z', '2026-11-01T09:00:00Z');
  it.each([
    ['30 1 * * *', ['05:30']],
    ['0,30 1 * * *', ['05:00', '05:30']],
    ['*/20 1 * * *', ['05:00', '05:20', '05:40']],
    ['0 1-2 * * *', ['05:00', '07:00']],
    ['15 1 * * 0', ['05:15']],
    ['15 1 * * 1-6', []],
    // every hour: the second 01:15 (06:15Z) is the same wall-clock time, so it does not fire again
    ['15 * * * *', ['03:15', '04:15', '05:15', '07:15', '08:15']],
  ])('New York %s', async (pattern, want) => {
    expect(await ny(pattern)).toEqual(want);
  });

  it('Berlin 0,30 2 * * * (CEST → CET 2026-10-25, 02:xx at 00:xxZ and 01:xxZ)', async () => {
    expect(await firings('Europe/Berlin', '0,30 2 * * *', '2026-10-24T22:00:00Z', '2026-10-25T03:00:00Z')).toEqual(['00:00', '00:30']);
  });

  it('Sydney 0,30 2 * * * (AEDT → AEST 2026-04-05, 02:xx at 15:xxZ and 16:xxZ)', async () => {
    expect(await firings('Australia/Sydney', '0,30 2 * * *', '2026-04-04T12:00:00Z', '2026-04-04T18:00:00Z')).toEqual(['15:00', '15:30']);
  });

  it('Lord Howe */10 1 * * * (a half-hour change: 01:30–01:59 repeats)', async () => {
    expect(await firings('Australia/Lord_Howe', '*/10 1 * * *', '2026-04-04T12:00:00Z', '2026-04-04T18:00:00Z')).toEqual(['14:00', '14:10', '14:20', '14:30', '14:40', '14:50']);
  });
});

describe('the skipped spring hour: its times fire once at the end of the gap', () => {
  // Berlin 2026-03-29: 02:00 CET (01:00Z) jumps to 03:00 CEST
  const berlin = (p: string) => firings('Europe/Berlin', p, '2026-03-28T22:00:00Z', '2026-03-29T03:00:00Z');
  it.each([
    ['30 2 * * *', ['01:00']],
    ['0,30 2 * * *', ['01:00']],
    ['*/15 2 * * *', ['01:00']],
    ['30 1,2 * * *', ['00:30', '01:00']],
    ['45 2 * * 0', ['01:00']],
    // 02:15 is skipped and fires at 03:00 CEST (01:00Z), then 03:15 CEST as usual
    ['15 * * * *', ['22:15', '23:15', '00:15', '01:00', '01:15', '02:15']],
    // times in the gap and the end of the gap itself: one firing at 03:00, then 03:30 CEST
    ['0,30 2,3 * * *', ['01:00', '01:30']],
  ])('Berlin %s', async (pattern, want) => {
    expect(await berlin(pattern)).toEqual(want);
  });

  it('weekday restrictions read the local day: 30 2 * * 1-5 skips Sunday, fires Monday', async () => {
    expect(await firings('Europe/Berlin', '30 2 * * 1-5', '2026-03-28T22:00:00Z', '2026-03-30T03:00:00Z')).toEqual(['03-30T00:30']);
  });

  it('New York */20 2 * * * and 30 2 * * * (EST → EDT 2026-03-08 at 07:00Z)', async () => {
    expect(await firings('America/New_York', '*/20 2 * * *', '2026-03-08T04:00:00Z', '2026-03-08T09:00:00Z')).toEqual(['07:00']);
    expect(await firings('America/New_York', '30 2 * * *', '2026-03-08T04:00:00Z', '2026-03-08T09:00:00Z')).toEqual(['07:00']);
  });
});

describe('ZoneClock', () => {
  it('maps wall-clock times to instants: first occurrence in a fold, end of the gap in a gap', () => {
    const c = new ZoneClock('Europe/Berlin');
    const wall = (iso: string) => Date.parse(`${iso}Z`);
    expect(new Date(c.instantOf(wall('2026-03-29T02:30:00'))).toISOString()).toBe('2026-03-29T01:00:00.000Z');
    expect(new Date(c.instantOf(wall('2026-10-25T02:30:00'))).toISOString()).toBe('2026-10-25T00:30:00.000Z');
    expect(new Date(c.instantOf(wall('2026-07-01T12:00:00'))).toISOString()).toBe('2026-07-01T10:00:00.000Z');
    expect(c.wallOf(Date.parse('2026-10-25T01:30:00.250Z'))).toBe(wall('2026-10-25T02:30:00.250'));
  });
});
