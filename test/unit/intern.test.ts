import { describe, expect, it } from 'vitest';
import { Interner } from '../../src/actors/intern.js';

describe('Interner', () => {
  it('returns the first copy of an equal short string, and stops growing at its bound', () => {
    const i = new Interner(2, 8);
    const a = i.intern(['sensor', 'door'].join('.')); // built at run time: a distinct string object
    expect(i.intern('sensor.door')).toBe(a);
    const long = 'x'.repeat(9);
    expect(i.intern(long)).toBe(long); // too long: never held
    i.intern('b');
    i.intern('c'); // over the bound: returned, not held
    const attrs = i.attrs({ contact: 'closed', battery: 90, kind: 'sensor.door' });
    expect(attrs).toEqual({ contact: 'closed', battery: 90, kind: 'sensor.door' });
  });
});
