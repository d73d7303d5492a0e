/**
 * The events of a home's export: what its history still keeps, found by halving when the oldest
 * entries are trimmed by count or past the age, oldest first, decoded; none for a home without
 * events or a node without a history. And the erasure's order: rules and scenes before the hubs,
 * the stored events last, after the node's published events (the hubs' `removed`) have settled.
 */
import { describe, expect, it } from 'vitest';
import { eraseHome, exportHome, type HomeDataDeps } from '../../src/api/home-data.js';
import { MemoryEventHistory } from '../../src/ports/history/history-memory.js';
import { encodeValue } from '../../src/protocol/codec.js';
import { DEFAULT_SETTINGS } from '../../src/rules/model.js';
import { TierError } from '../../src/errors.js';

function deps(history: MemoryEventHistory | undefined, now: () => number): HomeDataDeps {
  return {
    fleet: { homeHubs: async () => [] } as never,
    rules: { listRules: async () => [], listScenes: async () => [], getSettings: async () => ({ ...DEFAULT_SETTINGS }) } as never,
    shadows: {} as never,
    history,
    eventsSettled: async () => {},
    revokeHome: async () => 0,
    push: { removeHome: async () => 0 },
    now,
  };
}

const offsets = async (d: HomeDataDeps, home = 'home-1') => (await exportHome(d, home)).events.map((e) => e.offset);

describe('a home’s export: its stored events', () => {
  it('holds what the history keeps, by count and by age, oldest first and decoded', async () => {
    let t = 1_000_000;
    const now = () => t;
    const history = new MemoryEventHistory({ maxEvents: 5, maxAgeMs: 60_000 }, now);
    const d = deps(history, now);
    expect(await offsets(d)).toEqual([]);
    for (let i = 1; i <= 12; i++) history.appendNow('home-1', encodeValue({ kind: 'state', n: i }));
    history.appendNow('home-2', encodeValue({ kind: 'state', n: 0 }));
    // past the count: the newest five
    expect(await offsets(d)).toEqual([8, 9, 10, 11, 12]);
    const doc = await exportHome(d, 'home-1');
    expect(doc.events[0]).toEqual({ epoch: expect.any(String), offset: 8, event: { kind: 'state', n: 8 } });
    t += 50_000;
    for (let i = 13; i <= 14; i++) history.appendNow('home-1', encodeValue({ kind: 'state', n: i }));
    t += 20_000;
    // past the age: the first twelve are 70 s old, the last two 20 s
    expect(await offsets(d)).toEqual([13, 14]);
    t += 60_000;
    expect(await offsets(d)).toEqual([]);
    expect(await offsets(d, 'home-2')).toEqual([]);
    expect(await offsets(deps(undefined, now))).toEqual([]);
  });
});

describe('a home’s export of a long history', () => {
  it('reads its events a page of 5,000 at a time, every one once and in order (one read of the whole held a shared Redis 5 s: review cluster-cost)', async () => {
    const history = new MemoryEventHistory({ maxEvents: 12_000, maxAgeMs: 60_000 }, () => 1_000_000);
    for (let i = 1; i <= 12_345; i++) history.appendNow('home-1', encodeValue({ n: i }));
    const asked: number[] = [];
    const read = history.read.bind(history);
    history.read = (homeId, since, upTo, limit) => (asked.push(upTo - since.offset), read(homeId, since, upTo, limit));
    const events = (await exportHome(deps(history, () => 1_000_000), 'home-1')).events;
    expect(events.map((e) => e.offset)).toEqual(Array.from({ length: 12_000 }, (_, i) => 346 + i));
    expect(events.at(-1)!.event).toEqual({ n: 12_345 });
    expect(Math.max(...asked)).toBe(5_000);
  });
});

describe('a home’s erasure', () => {
  it('takes the home from its users’ tokens first, deletes rules and scenes before the hubs, and the stored events only once the hubs’ events settled', async () => {
    const steps: string[] = [];
    const step = (name: string) => async () => void steps.push(name);
    const d: HomeDataDeps = {
      fleet: {
        homeHubs: async () => [{ hubId: 'hub-1' }, { hubId: 'hub-2' }],
        // a hub deleted meanwhile by another request counts as deleted
        remove: async (hubId: string) => {
          steps.push(`hub ${hubId}`);
          if (hubId === 'hub-2') throw new TierError('not_found', 'gone');
          return { closed: true };
        },
      } as never,
      rules: {
        listRules: async () => [{ id: 'r1' }],
        listScenes: async () => [{ id: 's1' }],
        getSettings: async () => ({ timeZone: 'Europe/Berlin' }),
        deleteRule: step('rule r1'),
        deleteScene: step('scene s1'),
        putSettings: step('settings'),
      } as never,
      shadows: {} as never,
      history: { remove: step('events'), forget: async (homeId: string) => (steps.push(`stream ${homeId}`), 5) } as never,
      // the hubs' `removed` events reach the history a turn later
      eventsSettled: () => new Promise<void>((resolve) => setTimeout(() => (steps.push('settled'), resolve()), 5)),
      revokeHome: async (homeId) => (steps.push(`tokens ${homeId}`), 1_740_902_400),
      push: { removeHome: async (homeId) => (steps.push(`push ${homeId}`), 3) },
    };
    expect(await eraseHome(d, 'home-1')).toEqual({ homeId: 'home-1', tokensRevokedBefore: '2025-03-02T08:00:00.000Z', hubs: ['hub-1', 'hub-2'], rules: 1, scenes: 1, settingsReset: true, pushNotifications: 3, streamEntries: 5 });
    expect(steps).toEqual(['tokens home-1', 'rule r1', 'scene s1', 'settings', 'hub hub-1', 'hub hub-2', 'settled', 'events', 'stream home-1', 'push home-1']);
  });
});
