import { describe, expect, it } from 'vitest';
import { FrameType, type Attrs, type WelcomeFrame } from '../../proto/frames.js';
import { setChunks, welcomeFrames } from '../../src/actors/desired-frames.js';
import { decodeServerFrame, encode } from '../../src/protocol/codec.js';

const MAX = 16 * 1024;
const HEAD: Omit<WelcomeFrame, 'dl'> = { t: FrameType.welcome, v: 1, ep: 123_456_789, hb: 30_000, idle: 75_000, max: MAX, ts: Date.now(), s: 4_000_000_000 };
const TIMEOUT = 75_000;

/** Every frame a hub gets for `delta`: the welcome, then the `set`s of what it left; each as the hub decodes it. */
function framesFor(delta: Record<string, Attrs>, max = MAX): { sizes: number[]; welcome: WelcomeFrame; got: Map<string, Attrs> } {
  const { welcome, rest } = welcomeFrames({ ...HEAD, max }, delta, max);
  const sizes: number[] = [];
  const got = new Map<string, Attrs>();
  const bytes = encode(welcome);
  sizes.push(bytes.length);
  const decoded = decodeServerFrame(bytes) as WelcomeFrame; // the server's own check of what it sends
  for (const id in decoded.dl) got.set(id, { ...decoded.dl[id] });
  for (const { d, p } of rest) {
    const { chunks, dropped } = setChunks(d, p, max, TIMEOUT);
    expect(dropped).toEqual([]);
    for (const chunk of chunks) {
      const frame = { t: FrameType.command, id: 0x7fffffff, d, m: 'set', p: chunk, to: TIMEOUT } as const;
      const cmd = encode(frame);
      sizes.push(cmd.length);
      expect(decodeServerFrame(cmd)).toMatchObject({ t: FrameType.command, d });
      expect(Object.keys(chunk).length).toBeLessThanOrEqual(64);
      got.set(d, { ...got.get(d), ...chunk });
    }
  }
  return { sizes, welcome: decoded, got };
}

describe('welcomeFrames and setChunks: the desired delta in frames the protocol allows', () => {
  it('300 devices: the welcome carries 256, the other 44 follow as sets; nothing lost, every frame valid', () => {
    const delta = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`lamp-${i}`, { on: true, level: i }]));
    const { sizes, welcome, got } = framesFor(delta);
    expect(Object.keys(welcome.dl)).toHaveLength(256);
    expect(sizes).toHaveLength(1 + 44);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(MAX);
    expect(Object.fromEntries(got)).toEqual(delta);
  });

  it('large values: 6 devices × 60 keys × 1,000 characters go in frames of at most max bytes, a device split over several sets', () => {
    const big = 'é'.repeat(1_000); // two bytes a character in UTF-8: 2 KB a value
    const delta = Object.fromEntries(Array.from({ length: 6 }, (_, d) => [`dev-${d}`, Object.fromEntries(Array.from({ length: 60 }, (_, k) => [`key-${k}`, big]))]));
    const { sizes, got } = framesFor(delta);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(MAX);
    expect(sizes.length).toBeGreaterThan(6 * 7);
    expect(Object.fromEntries(got)).toEqual(delta);
  });

  it('never goes past max or 256 devices, and loses nothing, whatever the mix of values, names and max', () => {
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) % n);
    for (let round = 0; round < 20; round++) {
      const delta: Record<string, Attrs> = {};
      for (let d = 0; d < 1 + rnd(400); d++) {
        const attrs: Attrs = {};
        for (let k = 0; k < 1 + rnd(64); k++) {
          const pick = rnd(5);
          attrs[`${'k'.repeat(1 + rnd(40))}${k}`] = pick === 0 ? rnd(2) === 0 : pick === 1 ? -rnd(1e9) / 7 : pick === 2 ? null : pick === 3 ? 2 ** 40 + rnd(9) : '€'.repeat(rnd(1_024));
        }
        delta[`d${'x'.repeat(rnd(50))}${d}`] = attrs;
      }
      const max = [512 * 8, 16 * 1024, 64 * 1024][round % 3]!;
      const { sizes, welcome, got } = framesFor(delta, max);
      expect(Math.max(...sizes)).toBeLessThanOrEqual(max);
      expect(Object.keys(welcome.dl).length).toBeLessThanOrEqual(256);
      expect(Object.fromEntries(got)).toEqual(delta);
    }
  });

  it('an empty delta is an empty dl and nothing after it', () => {
    const { welcome, rest } = welcomeFrames(HEAD, {}, MAX);
    expect(welcome.dl).toEqual({});
    expect(rest).toEqual([]);
    expect(encode(welcome).length).toBeLessThan(100);
  });

  it('an attribute that no frame of max bytes can hold alone is named, not sent', () => {
    const { chunks, dropped } = setChunks('lamp', { small: 1, huge: 'x'.repeat(1_000) }, 512, TIMEOUT);
    expect(chunks).toEqual([{ small: 1 }]);
    expect(dropped).toEqual(['huge']);
  });
});
