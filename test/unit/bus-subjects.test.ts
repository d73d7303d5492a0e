import { describe, expect, it } from 'vitest';
import { publishTokenEnds, validateSubject } from '../../src/ports/bus/bus.js';
import { Random } from '../../load/chaos/random.js';

/** What `validateSubject(s, false)` answers: its tokens' ends, or the error's message. */
function bySplit(s: string): number[] | string {
  try {
    const tokens = validateSubject(s, false);
    let end = -1;
    return tokens.map((t) => (end += t.length + 1));
  } catch (err) {
    return (err as Error).message.startsWith('wildcards') ? 'wildcards' : 'bad';
  }
}

/** What the one-scan check answers for the same subject. */
function byScan(s: string): number[] | string {
  const ends: number[] = [];
  try {
    return ends.slice(0, publishTokenEnds(s, ends));
  } catch (err) {
    return (err as Error).message.startsWith('wildcards') ? 'wildcards' : 'bad';
  }
}

describe('a publish subject checked in one scan (publishTokenEnds)', () => {
  it('answers as validateSubject(subject, false) for every BMP character inside a token and alone', () => {
    for (let c = 0; c <= 0xffff; c++) {
      if (c >= 0xd800 && c <= 0xdfff) continue;
      const ch = String.fromCharCode(c);
      for (const s of [`evt.1.h${ch}x.hub`, `a.${ch}`, ch]) expect(byScan(s), `U+${c.toString(16)} in ${JSON.stringify(s)}`).toEqual(bySplit(s));
    }
  });

  it('answers as validateSubject(subject, false) for 20,000 random subjects of dots, wildcards, spaces and letters', () => {
    // seeded, so a failing subject repeats
    const random = new Random(11);
    const alphabet = ['a', 'b', '.', '.', '*', '>', ' ', '\t', '\u00a0', '\u2028', 'x*', '>y'];
    for (let i = 0; i < 20_000; i++) {
      let s = '';
      for (let n = random.int(9); n > 0; n--) s += random.pick(alphabet)!;
      expect(byScan(s), JSON.stringify(s)).toEqual(bySplit(s));
    }
  });
});
