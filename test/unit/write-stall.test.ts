import { expect, it } from 'vitest';
import { WriteStall } from '../../src/ports/write-stall.js';

it('says a stall once when the oldest batch waits past the limit, and once when the disk catches up', () => {
  const lines: Array<[string, Record<string, unknown>, string]> = [];
  const log = { warn: (o: Record<string, unknown>, m: string) => lines.push(['warn', o, m]), info: (o: Record<string, unknown>, m: string) => lines.push(['info', o, m]) };
  const stall = new WriteStall(log as never, 'shadows', 5_000);
  const t0 = performance.now();
  expect(stall.oldestMs(t0)).toBe(0);
  const first = stall.begin();
  const second = stall.begin();
  expect(stall.oldestMs(t0 + 4_000)).toBeGreaterThanOrEqual(3_990);
  stall.check(t0 + 4_000);
  expect(lines).toEqual([]);
  stall.check(t0 + 6_000);
  stall.check(t0 + 7_000);
  expect(lines.map(([level, o]) => [level, o.store])).toEqual([['warn', 'shadows']]);
  expect(lines[0]![1].waitedMs).toBeGreaterThan(5_000);
  // the oldest durable, the next one waits as long: still the same stall
  first();
  stall.check(t0 + 8_000);
  expect(lines).toHaveLength(1);
  second();
  expect(stall.oldestMs(t0 + 9_000)).toBe(0);
  stall.check(t0 + 9_000);
  expect(lines.map(([level]) => level)).toEqual(['warn', 'info']);
  expect(lines[1]![1].stalledMs).toBeGreaterThanOrEqual(8_990);
});
