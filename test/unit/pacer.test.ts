/** The load tool's pacer: the offered rate follows the clock, so late ticks do not lower it. */
import { describe, expect, it } from 'vitest';
import { Pacer, tickMs } from '../../load/loadgen/traffic.js';

describe('Pacer', () => {
  it('gives rate × elapsed in whole sends, however late or irregular the ticks', () => {
    const pace = new Pacer(5, 0); // 5,000 per second
    let sent = 0;
    let now = 0;
    // ticks every 20 ms, then one 300 ms late, then ticks of odd lengths
    for (const gap of [20, 20, 20, 320, 20, 7, 33, 1, 59]) {
      now += gap;
      sent += pace.due(now);
    }
    expect(now).toBe(500);
    expect(sent).toBe(2_500);
  });

  it('carries fractions over: a quarter per ms over 1 ms ticks sends 5 in 20 ms, not 0', () => {
    const pace = new Pacer(0.25, 1_000);
    const got = Array.from({ length: 20 }, (_, i) => pace.due(1_001 + i));
    expect(got.reduce((a, b) => a + b, 0)).toBe(5);
    expect(pace.due(1_020)).toBe(0);
  });
});

describe('tickMs', () => {
  it('ticks about once per send between the shortest tick and a second', () => {
    expect(tickMs(20, 10)).toBe(10); // 20,000/s: the shortest tick, 200 sends each
    expect(tickMs(1 / 40, 10)).toBe(40); // 25/s: one send per tick
    expect(tickMs(0.004, 10)).toBe(250); // 4/s
    expect(tickMs(1e-5, 20)).toBe(1_000); // one every 100 s: still a tick a second
  });
});
