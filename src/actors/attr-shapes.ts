import type { Attrs } from '../../proto/frames.js';

/**
 * One node-wide numbering of the attribute key lists devices report (`temperature, humidity,
 * battery` for every sensor of a model): an idle session's packed device cache (cold-devices.ts)
 * names a device's keys by number and keeps only its values, instead of every key's name in every
 * hub. Bounded: once `max` lists are numbered, or for a list too long or naming `__proto__`, the
 * device is packed with its names. Numbers are never reused, so a packed cache always reads back.
 */
export class AttrShapes {
  /** key list (each key after its length, which no two lists share) → its number */
  private readonly numbers = new Map<string, number>();
  private readonly lists: string[][] = [];

  constructor(
    /** @default 4_096 key lists numbered */
    private readonly max = 4_096,
    /** @default 512 (characters of the list, keys and their lengths): longer lists are rarely shared */
    private readonly maxLength = 512,
  ) {}

  /**
   * The number of `attrs`' key list in its order, numbering it if new; -1: packed with its names.
   * Fills `values` with the attributes' values in that order (cleared first).
   */
  numberOf(attrs: Attrs, values: unknown[]): number {
    values.length = 0;
    // each key after its length: no two lists read the same
    let list = '';
    for (const key in attrs) {
      list += `${key.length}:${key}`;
      values.push(attrs[key]);
    }
    const known = this.numbers.get(list);
    if (known !== undefined) return known;
    // a `__proto__` key read back by assignment would set the prototype (JSON.parse defines it)
    if (this.lists.length >= this.max || list.length > this.maxLength || Object.hasOwn(attrs, '__proto__')) return -1;
    this.lists.push(Object.keys(attrs));
    this.numbers.set(list, this.lists.length - 1);
    return this.lists.length - 1;
  }

  /** The key list numbered `n`; undefined for a number this table never gave. */
  keys(n: number): readonly string[] | undefined {
    return this.lists[n];
  }

  /** Key lists numbered. */
  get size(): number {
    return this.lists.length;
  }
}
