import { describe, expect, it } from 'vitest';
import { metricSum } from '../../load/lib/prom-text.js';

const TEXT = [
  '# HELP tier_hub_sessions Hub sessions held by this node',
  '# TYPE tier_hub_sessions gauge',
  'tier_hub_sessions 1200',
  'tier_hub_sessions_opened_total 5',
  'tier_actor_failures_total{message="report"} 2',
  'tier_actor_failures_total{message="close",kind="a b"} 3',
  'process_resident_memory_bytes 1.5e+08',
  'broken_metric NaN-ish',
  '',
].join('\n');

describe('metricSum', () => {
  it('reads an unlabelled sample, not a longer name that starts with it', () => {
    expect(metricSum(TEXT, 'tier_hub_sessions')).toBe(1200);
    expect(metricSum(TEXT, 'tier_hub_sessions_opened_total')).toBe(5);
  });

  it('sums the samples of every label set, and reads exponent notation', () => {
    expect(metricSum(TEXT, 'tier_actor_failures_total')).toBe(5);
    expect(metricSum(TEXT, 'process_resident_memory_bytes')).toBe(150_000_000);
  });

  it('answers null for a metric the text does not have, or has no number for; comments are not samples', () => {
    expect(metricSum(TEXT, 'tier_missing')).toBeNull();
    expect(metricSum(TEXT, 'broken_metric')).toBeNull();
    expect(metricSum(TEXT, '# HELP')).toBeNull();
  });
});
