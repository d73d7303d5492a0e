/**
 * The node's set of revoked user tokens, consulted on every request and app upgrade: by `jti`, or
 * every token of a `sub` issued at or before a time (seconds: a token of that second counts).
 * Bounded: an entry is dropped once the tokens it revokes would have expired anyway (its `exp`,
 * Unix seconds), swept as entries are added; past `maxEntries` live entries the oldest added go first.
 */
import type { TokenRevocation } from '../../proto/subjects.js';

/** What a revocation is checked against: the claims of a verified user token. */
export interface TokenClaims {
  sub: string;
  jti?: string | undefined;
  /** issued at, Unix seconds; a token without one counts as issued at 0 */
  iat?: number | undefined;
}

export class RevocationList {
  /** jti → exp */
  private readonly byJti = new Map<string, number>();
  /** sub → tokens issued before `before` are revoked, until `exp` */
  private readonly bySub = new Map<string, { before: number; exp: number }>();

  constructor(
    private readonly nowS: () => number = () => Math.floor(Date.now() / 1000),
    /** @default 1_000_000: live entries kept at most */
    private readonly maxEntries = 1_000_000,
  ) {}

  get size(): number {
    return this.byJti.size + this.bySub.size;
  }

  add(r: TokenRevocation): void {
    const now = this.nowS();
    this.sweep(now);
    if (r.exp <= now) return;
    if (r.jti !== undefined) this.byJti.set(r.jti, Math.max(r.exp, this.byJti.get(r.jti) ?? 0));
    else if (r.sub !== undefined) {
      const had = this.bySub.get(r.sub);
      this.bySub.set(r.sub, { before: Math.max(r.before ?? now, had?.before ?? 0), exp: Math.max(r.exp, had?.exp ?? 0) });
    }
    this.bound();
  }

  isRevoked(c: TokenClaims): boolean {
    const now = this.nowS();
    const jtiExp = c.jti === undefined ? undefined : this.byJti.get(c.jti);
    if (jtiExp !== undefined && jtiExp > now) return true;
    const sub = this.bySub.get(c.sub);
    return sub !== undefined && sub.exp > now && (c.iat ?? 0) <= sub.before;
  }

  /** True when `r` revokes a token with these claims (to close open sockets of a new revocation). */
  static covers(r: TokenRevocation, c: TokenClaims): boolean {
    if (r.jti !== undefined) return c.jti === r.jti;
    return r.sub === c.sub && (c.iat ?? 0) <= (r.before ?? Infinity);
  }

  private sweep(now: number): void {
    for (const [k, exp] of this.byJti) if (exp <= now) this.byJti.delete(k);
    for (const [k, e] of this.bySub) if (e.exp <= now) this.bySub.delete(k);
  }

  private bound(): void {
    while (this.size > this.maxEntries) {
      const first = this.byJti.keys().next();
      if (!first.done) this.byJti.delete(first.value);
      else this.bySub.delete(this.bySub.keys().next().value!);
    }
  }
}
