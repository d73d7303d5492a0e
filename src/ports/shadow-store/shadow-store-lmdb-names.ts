import type { Database } from 'lmdb';
import type { Logger } from '../../log/logger.js';

/** Sub-database of the numbered name lists (number → the list). */
export const NAMES_DB = 'shadow-names';

/** Where a number's list stands: put and not yet committed, or known to be in the store. */
const IN_FLIGHT = 1;
const STORED = 2;
/** Lists found by their first name alone, at most, for each first name (see `numberAttrs`). */
const CANDIDATES = 8;

/**
 * Name lists numbered store-wide for the embedded shadow store's records: each device's attribute
 * key list (`temperature, humidity, battery` for every sensor of a model) and its kind and model.
 * A record names its list by number and keeps only the values: a fleet has a few hundred such
 * lists, and their names were most of a shadow's bytes on disk, hence of the file pages a node
 * holds per hub (BENCHMARKS, 2026-12-03 eighth).
 *
 * A new number's list is put before the first record naming it, in the same or an earlier commit
 * (lmdb-js commits writes in the order they are issued); a put that fails is issued again by the
 * next record naming it. Numbers are never reused. Bounded: once `max` lists are numbered, or for
 * a list longer than `maxChars`, records keep the names themselves, as before numbering.
 */
export class StoredNames {
  /** list (each name after its length, which no two lists share) → its number */
  private readonly numbers = new Map<string, number>();
  private readonly lists: string[][] = [];
  /** first name (or '' for an empty list) → the numbers of the lists that begin with it */
  private readonly byFirst = new Map<string, number[]>();
  private readonly state: number[] = [];
  /** the key list of the attributes being numbered (reused) */
  private readonly keys: string[] = [];

  constructor(
    private readonly db: Database<string[], number>,
    private readonly log: Logger,
    /** @default 4_096 lists numbered */
    private readonly max = 4_096,
    /** @default 512 (characters of the list, names and their lengths): longer lists are rarely shared */
    private readonly maxChars = 512,
  ) {
    for (const { key, value } of db.getRange({})) {
      if (typeof key !== 'number' || !Number.isInteger(key) || key < 0 || !isNameList(value)) {
        log.warn({ key }, 'shadow name list not understood, skipped (records naming it read without those names)');
        continue;
      }
      this.add(key, value);
      this.state[key] = STORED;
    }
  }

  /**
   * The number of `attrs`' key list in its order (numbering it, and putting it, if new), with
   * `values` filled with their values in that order; -1 when not numbered (`values` is then
   * the attributes flat: key, value, key, value...).
   */
  numberAttrs(attrs: Readonly<Record<string, unknown>>, values: unknown[]): number {
    const keys = this.keys;
    keys.length = 0;
    for (const k in attrs) {
      keys.push(k);
      values.push(attrs[k]);
    }
    // the hot path (a report): the lists that begin with the same key, compared key by key
    // (property names are interned: each comparison is a pointer's), no string built
    const candidates = this.byFirst.get(keys.length === 0 ? '' : keys[0]!);
    if (candidates) {
      for (const n of candidates) {
        if (sameList(this.lists[n]!, keys)) return this.stored(n);
      }
    }
    const n = this.numberList(keys);
    if (n < 0) {
      values.length = 0;
      for (const k in attrs) values.push(k, attrs[k]);
    }
    return n;
  }

  /** The number of `list` (numbering it, and putting it, if new); -1 when not numbered. */
  numberList(list: readonly string[]): number {
    const key = keyOf(list);
    let n = this.numbers.get(key);
    if (n === undefined) {
      if (this.lists.length >= this.max || key.length > this.maxChars) return -1;
      n = this.lists.length;
      this.add(n, list.slice());
    }
    return this.stored(n);
  }

  /** `n`, its list put unless stored or on its way. */
  private stored(n: number): number {
    if (this.state[n] !== STORED && this.state[n] !== IN_FLIGHT) this.put(n);
    return n;
  }

  private add(n: number, list: string[]): void {
    this.lists[n] = list;
    this.numbers.set(keyOf(list), n);
    const first = list.length === 0 ? '' : list[0]!;
    const candidates = this.byFirst.get(first);
    // a few a first name: lists beyond (say a hub inventing ones that begin alike) are found by the whole list
    if (!candidates) this.byFirst.set(first, [n]);
    else if (candidates.length < CANDIDATES) candidates.push(n);
  }

  /**
   * After a failed write transaction: a list put in it reads as stored (a put in a transaction
   * resolves before its commit), so which are is read again from the store.
   */
  recheck(): void {
    for (let n = 0; n < this.lists.length; n++) this.state[n] = this.db.doesExist(n) ? STORED : 0;
  }

  /** The list numbered `n`; undefined for a number this store does not hold. */
  list(n: number): readonly string[] | undefined {
    return this.lists[n];
  }

  /** Lists numbered. */
  get size(): number {
    return this.lists.length;
  }

  private put(n: number): void {
    this.state[n] = IN_FLIGHT;
    this.db.put(n, this.lists[n]!).then(
      () => {
        this.state[n] = STORED;
      },
      (err: unknown) => {
        // the next record naming it puts it again
        this.state[n] = 0;
        this.log.error({ err, n }, 'shadow name list could not be written');
      },
    );
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function keyOf(list: readonly string[]): string {
  let key = '';
  for (const n of list) key += `${n.length}:${n}`;
  return key;
}

function isNameList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((n) => typeof n === 'string');
}
