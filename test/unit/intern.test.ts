import { describe, expect, it } from 'vitest';
import { Interner } from '../../src/actors/intern.js';

describe('Interner', () => {
  it('holds one copy per distinct short string and stops growing at its bound', () => {
    const i = new Interner(3, 10);
    i.intern(['sensor', 'do'].join('.'));
    i.intern('sensor.do');
    expect(i.size).toBe(1); // equal strings share one entry
    i.intern('x'.repeat(11));
    expect(i.size).toBe(1); // too long: never held
    i.intern('b');
    i.intern('c');
    i.intern('d'); // over the bound: returned as it is, not held
    expect(i.size).toBe(3);
    expect(i.intern('d')).toBe('d');
  });

  it('interns the string values of an attribute map and leaves the rest', () => {
    const i = new Interner();
    const attrs = i.attrs({ contact: 'closed', battery: 90, on: true });
    expect(attrs).toEqual({ contact: 'closed', battery: 90, on: true });
    expect(i.size).toBe(1);
  });
});
