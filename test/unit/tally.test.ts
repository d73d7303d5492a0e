import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Tally } from '../../src/admin/tally.js';

function tally(values: readonly string[]) {
  const registry = new Registry();
  const t = new Tally({ name: 'test_frames_total', help: 'frames', labelName: 'type', values, registers: [registry] });
  const read = async () => Object.fromEntries((await registry.getSingleMetric('test_frames_total')!.get()).values.map((v) => [v.labels.type, v.value]));
  return { t, registry, read };
}

describe('Tally', () => {
  it('shows what was counted at each read, each count once, and no series before its first count', async () => {
    const { t, read } = tally(['report', 'ack', 'event']);
    t.add(0);
    t.add(0);
    t.add(1, 5);
    expect(await read()).toEqual({ report: 2, ack: 5 });
    // a second read adds nothing twice
    expect(await read()).toEqual({ report: 2, ack: 5 });
    t.add(2);
    t.add(0);
    expect(await read()).toEqual({ report: 3, ack: 5, event: 1 });
  });

  it('indexes that share a label value count into one series', async () => {
    const { t, read } = tally(['other', 'report', 'other']);
    t.add(0);
    t.add(2, 3);
    expect(await read()).toEqual({ other: 4 });
  });

  it('is what the registry serves to a scrape', async () => {
    const { t, registry } = tally(['report']);
    t.add(0, 7);
    expect(await registry.metrics()).toContain('test_frames_total{type="report"} 7');
  });

  it('refuses an index without a label value', () => {
    const { t } = tally(['report']);
    expect(() => t.add(1)).toThrow(RangeError);
    expect(() => t.add(-1)).toThrow(RangeError);
  });
});
