import { describe, expect, it } from 'vitest';
import { SessionIndex } from '../../src/actors/session-index.js';

const session = (hubId: string) => ({ hubId });

describe('SessionIndex', () => {
  it('keeps one session per hub: a claim returns the session it displaced', () => {
    const index = new SessionIndex<{ hubId: string }>();
    const a1 = session('a');
    const a2 = session('a');
    expect(index.claim(a1)).toBeUndefined();
    expect(index.claim(session('b'))).toBeUndefined();
    expect(index.claim(a2)).toBe(a1);
    expect(index.size).toBe(2);
    expect(index.get('a')).toBe(a2);
    // claiming again what it already holds displaces nobody
    expect(index.claim(a2)).toBeUndefined();
  });

  it('lets a displaced session release only its own entry', () => {
    const index = new SessionIndex<{ hubId: string }>();
    const old = session('a');
    const current = session('a');
    index.claim(old);
    index.claim(current);
    expect(index.release(old)).toBe(false);
    expect(index.get('a')).toBe(current);
    expect(index.release(current)).toBe(true);
    expect(index.has('a')).toBe(false);
  });
});
