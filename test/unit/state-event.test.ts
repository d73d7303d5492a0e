import { describe, expect, it } from 'vitest';
import type { AttrValue } from '../../proto/frames.js';
import { encodeBus } from '../../src/protocol/codec.js';
import { encodeStateEvent, type StateEvent } from '../../src/protocol/state-event.js';
import { Random } from '../../load/chaos/random.js';

/** A state event built as hub-reports builds it (the same fields in the same order). */
function stateEvent(home: string, hub: string, device: string, attrs: Record<string, AttrValue>, version: number, ts: number): StateEvent {
  return { op: 'evt', kind: 'state', home, hub, device, attrs, version, ts };
}

/** Numbers at every boundary of msgpack's integer forms, and floats. */
const NUMBERS = [
  0, -0, 1, 0x1f, 0x20, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 2 ** 32, 2 ** 53 - 1, -1, -0x20, -0x21, -0x80, -0x81, -0x8000,
  -0x8001, -(2 ** 31), -(2 ** 31) - 1, 0.5, -0.25, 1e-300, 1e300, Number.NaN, Infinity, -Infinity, Date.now(), 1_764_600_000_000.5,
];
/** Strings in every header class, non-ASCII, a surrogate pair and lone surrogates. */
const STRINGS = ['', 'a', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(255), 'x'.repeat(256), 'x'.repeat(70_000), 'é', 'é'.repeat(16), '温度', '😀', 'a\ud800b', '\udc00', 'ü'.repeat(200)];

function expectSame(e: StateEvent): void {
  const mine = encodeStateEvent(e);
  expect(Buffer.compare(mine, encodeBus(e))).toBe(0);
}

describe('the state event written by hand (encodeStateEvent)', () => {
  it('writes what msgpackr writes for every number form, as a value, a version and a time', () => {
    for (const n of NUMBERS) {
      expectSame(stateEvent('home-1', 'hub-1', 'dev-1', { level: n }, 3, 1_764_600_000_000));
      if (Number.isFinite(n)) expectSame(stateEvent('home-1', 'hub-1', 'dev-1', {}, n, n));
    }
  });

  it('writes what msgpackr writes for every string form, in ids, keys and values', () => {
    for (const s of STRINGS) {
      expectSame(stateEvent(s, 'hub-1', 'dev-1', { mode: s }, 1, 2));
      expectSame(stateEvent('home-1', s, s, { [s]: true }, 1, 2));
    }
  });

  it('writes booleans, null, no attributes, leaves out undefined, and takes 16 or more attributes as msgpack map16', () => {
    expectSame(stateEvent('h', 'hub', 'd', { on: true, off: false, gone: null }, 1, 2));
    expectSame(stateEvent('h', 'hub', 'd', { on: true, skipped: undefined as unknown as AttrValue, level: 4 }, 1, 2));
    for (const count of [0, 15, 16, 17, 64, 300]) {
      const attrs: Record<string, AttrValue> = {};
      for (let i = 0; i < count; i++) attrs[`a${i}`] = i % 3 === 0 ? `v${i}` : i;
      expectSame(stateEvent('h', 'hub', 'd', attrs, 1, 2));
    }
    // an own `__proto__` attribute is data, written as a key like any other
    const proto: Record<string, AttrValue> = {};
    Object.defineProperty(proto, '__proto__', { value: 1, enumerable: true, writable: true, configurable: true });
    expectSame(stateEvent('h', 'hub', 'd', proto, 1, 2));
  });

  it('writes the values before (`prev`) after `ts`, as msgpackr does: empty, null, 16 or more, and in the pool\'s last bytes', () => {
    expectSame({ ...stateEvent('h', 'hub', 'd', { on: true }, 1, 2), prev: {} });
    expectSame({ ...stateEvent('h', 'hub', 'd', { on: true, temp: 16.5, mode: 'x' }, 1, 2), prev: { on: null, temp: 17, mode: 'é' } });
    const many: Record<string, AttrValue> = {};
    for (let i = 0; i < 40; i++) many[`a${i}`] = i;
    expectSame({ ...stateEvent('h', 'hub', 'd', many, 1, 2), prev: many });
    expectSame({ ...stateEvent('h', 'hub', 'd', { on: true }, 1, 2), prev: Object.assign(Object.create(null) as Record<string, AttrValue>, { on: false }) });
    // events of every length around the pool's end: each written whole
    for (let i = 0; i < 400; i++) expectSame({ ...stateEvent('h', 'hub', 'd', { t: 'x'.repeat(i % 90) }, i, 2), prev: { t: 'y'.repeat((i * 7) % 90) } });
  });

  it('writes the hub frame it came from (`src`) after `ts` and before `prev`, as hub-reports builds it', () => {
    expectSame({ ...stateEvent('h', 'hub', 'd', { on: true }, 1, 2), src: 'AbCd-_12.7' });
    expectSame({ ...stateEvent('h', 'hub', 'd', { on: true }, 1, 2), src: 'AbCd-_12.9007199254740990', prev: { on: false } });
    expectSame({ ...stateEvent('h', 'hub', 'd', { on: true }, 1, 2), src: 'é'.repeat(40), prev: {} });
    for (let i = 0; i < 400; i++) expectSame({ ...stateEvent('h', 'hub', 'd', { t: 'x'.repeat(i % 90) }, i, 2), src: `tag.${i}`, prev: { t: 'y'.repeat((i * 7) % 90) } });
  });

  it('leaves to msgpackr what is not the plain form: a position, a value of another type, attributes without Object as prototype', () => {
    expectSame({ ...stateEvent('h', 'hub', 'd', { on: true }, 1, 2), pos: { epoch: 'e1', offset: 7 } });
    expectSame(stateEvent('h', 'hub', 'd', { nested: { a: 1 } as unknown as AttrValue, on: true }, 1, 2));
    expectSame(stateEvent('h', 'hub', 'd', Object.assign(Object.create(null) as Record<string, AttrValue>, { on: true }), 1, 2));
  });

  it('writes events that end at every byte near a pool\'s end whole (the pool replaced, the event written again)', () => {
    const written: Array<[StateEvent, Buffer]> = [];
    // sizes one byte apart, float version and time (the last 21 bytes are written without a check of their own)
    for (let i = 0; i < 4_000; i++) {
      const e = stateEvent('home-1', 'hub-1', `d${i % 7}`, { pad: 'x'.repeat(i % 97), level: 0.5 }, 1.5, 1_764_600_000_000.5);
      written.push([e, encodeStateEvent(e)]);
    }
    for (const [e, bytes] of written) expect(Buffer.compare(bytes, encodeBus(e))).toBe(0);
  });

  it('hands out views that stay as written while later events fill and replace the pool (seeded random events)', () => {
    const random = new Random(0x5e1f);
    const pick = <T>(xs: readonly T[]): T => xs[random.int(xs.length)]!;
    const written: Array<[StateEvent, Buffer]> = [];
    for (let i = 0; i < 3_000; i++) {
      const attrs: Record<string, AttrValue> = {};
      const n = random.int(6);
      for (let k = 0; k < n; k++) attrs[pick(['on', 'level', 'mode', 'temp', pick(STRINGS.slice(0, 6))])] = pick<AttrValue>([...NUMBERS, ...STRINGS.slice(0, 6), true, false, null]);
      const e = stateEvent(`home-${random.int(100)}`, `hub-${random.int(1000)}`, `dev-${random.int(8)}`, attrs, random.int(1e6), pick(NUMBERS));
      written.push([e, encodeStateEvent(e)]);
    }
    for (const [e, bytes] of written) expect(Buffer.compare(bytes, encodeBus(e))).toBe(0);
  });
});
