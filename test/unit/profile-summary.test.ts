/** The benchmarks' CPU profile summary: self time by function, within the measured spans when given. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inSpan, monotonicUs, summarizeProfile, type Span } from '../../bench/lib/profile-summary.js';

const dir = mkdtempSync(join(tmpdir(), 'hubtier-profile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A profile of two functions: `provision` sampled from 1,000 µs on, `handshake` from 50,000 µs on. */
function profileFile(): string {
  const frame = (functionName: string) => ({ functionName, url: `file:///app/src/${functionName}.ts`, lineNumber: 0 });
  const profile = {
    nodes: [
      { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 }, children: [2, 3] },
      { id: 2, callFrame: frame('provision') },
      { id: 3, callFrame: frame('handshake') },
    ],
    startTime: 1_000,
    // samples at 2,000, 3,000, 4,000 (provision), then 50,000, 51,000 (handshake)
    samples: [2, 2, 2, 3, 3],
    timeDeltas: [1_000, 1_000, 1_000, 46_000, 1_000],
  };
  const file = join(dir, 'p.cpuprofile');
  writeFileSync(file, JSON.stringify(profile));
  return file;
}

describe('summarizeProfile', () => {
  it('counts every sample without spans, and only those within them with', () => {
    const file = profileFile();
    const whole = summarizeProfile(file, 10);
    expect(whole).toMatch(/provision/);
    expect(whole).toMatch(/handshake/);
    const measured = summarizeProfile(file, 10, [[49_000, 52_000]]);
    expect(measured).toMatch(/handshake\s.*100\.0%/);
    expect(measured).not.toMatch(/provision/);
    expect(measured).toMatch(/within 1 measured span/);
  });
});

describe('inSpan', () => {
  it('adds the span the run took, on the monotonic clock, and also when the run throws', async () => {
    const spans: Span[] = [];
    const before = monotonicUs();
    expect(await inSpan(spans, async () => 7)).toBe(7);
    await expect(inSpan(spans, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    const after = monotonicUs();
    expect(spans).toHaveLength(2);
    for (const [from, to] of spans) {
      expect(from).toBeGreaterThanOrEqual(before);
      expect(to).toBeGreaterThanOrEqual(from);
      expect(to).toBeLessThanOrEqual(after);
    }
  });
});
