import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { failureLog, SampledLog, Sampler } from '../../src/log/sampler.js';

/** A logger writing parsed lines into an array. */
function capture(level = 'info') {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger(level, {}, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { lines, log };
}

describe('Sampler', () => {
  it('admits `limit` lines per key and window and counts the rest, each key on its own', () => {
    const s = new Sampler(3, 1_000);
    const admitted = Array.from({ length: 10 }, (_, i) => s.admit('a', 100 + i));
    expect(admitted).toEqual([true, true, true, false, false, false, false, false, false, false]);
    expect(s.admit('b', 200)).toBe(true); // another key has its own budget
    expect(s.sweep(500)).toEqual([]); // the window has not ended
    expect(s.sweep(1_100)).toEqual([{ key: 'a', skipped: 7 }]);
    expect(s.size).toBe(1); // a's window is gone; b's (started at 200) has not ended
    expect(s.admit('a', 1_100)).toBe(true); // a new window
  });

  it('keeps the skips of a window that a new line of its key ended, for the next sweep', () => {
    const s = new Sampler(1, 1_000);
    s.admit('a', 0);
    s.admit('a', 10);
    s.admit('a', 20);
    expect(s.admit('a', 1_000)).toBe(true); // the next window starts before any sweep
    expect(s.admit('a', 1_001)).toBe(false);
    expect(s.skipping).toBe(true);
    expect(s.sweep(1_500)).toEqual([{ key: 'a', skipped: 2 }]);
    expect(s.sweep(2_000)).toEqual([{ key: 'a', skipped: 1 }]);
    expect(s.skipping).toBe(false);
  });

  it('holds a bounded number of keys: a flood from many sources shares one window', () => {
    const s = new Sampler(1, 10_000);
    for (let i = 0; i < 20_000; i++) s.admit(`10.0.${i >> 8}.${i & 255}`, 0);
    expect(s.size).toBe(10_001);
    const out = s.sweep(10_000);
    expect(out).toEqual([{ key: '*', skipped: 9_999 }]);
    expect(s.size).toBe(0);
  });

  it('admits nothing with a limit of 0', () => {
    const s = new Sampler(0);
    expect(s.admit('a', 0)).toBe(false);
  });
});

describe('SampledLog', () => {
  it('writes the first lines of a key, then one summary line with the count skipped', () => {
    const { lines, log } = capture();
    let now = 0;
    const sampled = new SampledLog(log, new Sampler(2, 10_000), 'refusals not logged', 'remote', () => now);
    for (let i = 0; i < 50; i++) sampled.info('1.2.3.4', { code: 'bad_signature', remote: '1.2.3.4' }, 'refused');
    sampled.info('5.6.7.8', { code: 'unknown_hub', remote: '5.6.7.8' }, 'refused');
    expect(lines.map((l) => [l.msg, l.remote])).toEqual([
      ['refused', '1.2.3.4'],
      ['refused', '1.2.3.4'],
      ['refused', '5.6.7.8'],
    ]);
    now = 10_000;
    sampled.flush();
    expect(lines.slice(3)).toEqual([expect.objectContaining({ msg: 'refusals not logged', remote: '1.2.3.4', skipped: 48, windowMs: 10_000, level: 30 })]);
    sampled.close();
  });

  it('writes failures at their level, and their summary at the same level so a warn-level node still sees the count', () => {
    const { lines, log } = capture('warn');
    let now = 0;
    const sampled = new SampledLog(log, new Sampler(2, 10_000), 'failures not logged', 'kind', () => now, 'error');
    for (let i = 0; i < 30; i++) sampled.write('admission', { n: i }, 'admission failed');
    expect(lines.map((l) => [l.level, l.msg, l.n])).toEqual([
      [50, 'admission failed', 0],
      [50, 'admission failed', 1],
    ]);
    now = 10_000;
    sampled.flush();
    expect(lines.slice(2)).toEqual([expect.objectContaining({ level: 50, msg: 'failures not logged', kind: 'admission', skipped: 28 })]);
    sampled.close();
    // the node's sessions that could not open: at warn
    const opens = failureLog(log, 'opens not logged', 'warn');
    opens.write('open', { hubId: 'h1' }, 'hub session could not open');
    expect(lines.at(-1)).toEqual(expect.objectContaining({ level: 40, msg: 'hub session could not open', hubId: 'h1' }));
    opens.close();
  });

  it('counts nothing while info is off', () => {
    const { lines, log } = capture('warn');
    const sampler = new Sampler(1);
    const sampled = new SampledLog(log, sampler, 'not logged', 'remote', () => 0);
    for (let i = 0; i < 5; i++) sampled.info('k', {}, 'line');
    expect(lines).toEqual([]);
    expect(sampler.skipping).toBe(false);
  });
});
