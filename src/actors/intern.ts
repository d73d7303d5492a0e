/**
 * One node-wide copy of short strings that every hub repeats (attribute values like "closed"):
 * decoded from each hub's frames they would otherwise be separate strings in every session. Bounded: once `max` distinct strings are held, new ones are returned as they are.
 */
export class Interner {
  private readonly table = new Map<string, string>();

  constructor(
    /** @default 16_384 distinct strings */
    private readonly max = 16_384,
    /** @default 32: longer strings are rarely shared */
    private readonly maxLength = 32,
  ) {}

  intern(s: string): string {
    if (s.length > this.maxLength) return s;
    const hit = this.table.get(s);
    if (hit !== undefined) return hit;
    if (this.table.size < this.max) this.table.set(s, s);
    return s;
  }

  /** Distinct strings held. */
  get size(): number {
    return this.table.size;
  }

  /** Interns the string values of an attribute map in place. */
  attrs<T extends Record<string, unknown>>(a: T): T {
    for (const key in a) {
      const v = a[key];
      if (typeof v === 'string') (a as Record<string, unknown>)[key] = this.intern(v);
    }
    return a;
  }
}
