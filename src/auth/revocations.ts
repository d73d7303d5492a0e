/**
 * The node's set of revoked user tokens, consulted on every request and app upgrade: by `jti`,
 * every token of a `sub` issued at or before a time (seconds: a token of that second counts), or a
 * home taken from every token issued at or before a time (the token keeps its other homes).
 * Bounded: an entry is dropped once the tokens it revokes would have expired anyway (its `exp`,
 * Unix seconds), swept as entries are added; a revocation that would take the live entries past
 * `maxEntries` is refused where it is made (`room`), never made room for by dropping a live one:
 * that would let a revoked token in again.
 */
import { steadyWallMs } from '../actors/clock.js';
import type { TokenRevocation } from '../../proto/subjects.js';

/** What a revocation is checked against: the claims of a verified user token. */
export interface TokenClaims {
  sub: string;
  jti?: string | undefined;
  /** issued at, Unix seconds; a token without one counts as issued at 0 */
  iat?: number | undefined;
  /** the homes it grants */
  homes?: ReadonlySet<string> | undefined;
}

const NONE: readonly string[] = [];

export class RevocationList {
  /** jti → exp */
  private readonly byJti = new Map<string, number>();
  /** sub → tokens issued before `before` are revoked, until `exp` */
  private readonly bySub = new Map<string, { before: number; exp: number }>();
  /** home → taken from tokens issued before `before`, until `exp` */
  private readonly byHome = new Map<string, { before: number; exp: number }>();
  /** the second of the last sweep: one walk of the entries a second, not one per add */
  private sweptAt = -1;

  constructor(
    private readonly nowS: () => number = () => Math.floor(Date.now() / 1000),
    /** @default 1_000_000: live entries a new revocation may take the list to */
    readonly maxEntries = 1_000_000,
  ) {}

  get size(): number {
    return this.byJti.size + this.bySub.size + this.byHome.size;
  }

  add(r: TokenRevocation): void {
    const now = this.nowS();
    const gone = expiredBy(now);
    // expired entries are only memory (every check compares `exp`): a walk per add made a storm of
    // revocations quadratic (100,000 adds walked 5 billion entries on the event loop)
    if (now !== this.sweptAt) {
      this.sweptAt = now;
      this.sweep(gone);
    }
    if (r.exp <= gone) return;
    if (r.jti !== undefined) this.byJti.set(r.jti, Math.max(r.exp, this.byJti.get(r.jti) ?? 0));
    else if (r.sub !== undefined) widen(this.bySub, r.sub, r.before ?? now, r.exp);
    else if (r.home !== undefined) widen(this.byHome, r.home, r.before ?? now, r.exp);
  }

  /** False when `r` would add an entry to a list already holding `maxEntries` live ones (one for a revoked jti, sub or home only widens its entry). */
  room(r: TokenRevocation): boolean {
    const now = this.nowS();
    if (this.size < this.maxEntries) return true;
    // once a second at most, as in `add`: a full list is not walked at every refused revocation
    if (now !== this.sweptAt) {
      this.sweptAt = now;
      this.sweep(expiredBy(now));
      if (this.size < this.maxEntries) return true;
    }
    return r.jti !== undefined ? this.byJti.has(r.jti) : r.sub !== undefined ? this.bySub.has(r.sub) : r.home !== undefined && this.byHome.has(r.home);
  }

  /** True when the whole token is refused (by its `jti` or `sub`); see revokedHomes for its homes. */
  isRevoked(c: TokenClaims): boolean {
    const now = this.nowS();
    const jtiExp = c.jti === undefined ? undefined : this.byJti.get(c.jti);
    if (jtiExp !== undefined && jtiExp > now) return true;
    return covered(this.bySub.get(c.sub), c, now);
  }

  /** The homes of the token taken from it (none on the hot path while no home is revoked). */
  revokedHomes(c: TokenClaims): readonly string[] {
    if (this.byHome.size === 0 || c.homes === undefined) return NONE;
    const now = this.nowS();
    let out: string[] | undefined;
    for (const home of c.homes) if (covered(this.byHome.get(home), c, now)) (out ??= []).push(home);
    return out ?? NONE;
  }

  /** True when `r` revokes a token with these claims, or takes a home from it (open sockets of a new revocation: OpenAppSockets). */
  static covers(r: TokenRevocation, c: TokenClaims): boolean {
    if (r.jti !== undefined) return c.jti === r.jti;
    const issuedBefore = issuedSecond(c) <= (r.before ?? Infinity);
    if (r.home !== undefined) return issuedBefore && c.homes?.has(r.home) === true;
    return r.sub === c.sub && issuedBefore;
  }

  private sweep(now: number): void {
    for (const [k, exp] of this.byJti) if (exp <= now) this.byJti.delete(k);
    for (const [k, e] of this.bySub) if (e.exp <= now) this.bySub.delete(k);
    for (const [k, e] of this.byHome) if (e.exp <= now) this.byHome.delete(k);
  }
}

/**
 * The second up to which entries are dropped as expired: the wall clock's, never past the clock the
 * process started with advanced by the monotonic one (clock.ts). Until 2026-12-06 one revocation
 * added while the clock read a month ahead dropped every entry, and revoked tokens worked again once
 * it was right, until the node restarted (a review of the day's fixes).
 */
function expiredBy(nowS: number): number {
  return Math.min(nowS, Math.floor(steadyWallMs() / 1000));
}

/** Keeps the later `before` and the later `exp` of two revocations of the same sub or home. */
function widen(map: Map<string, { before: number; exp: number }>, key: string, before: number, exp: number): void {
  const had = map.get(key);
  map.set(key, { before: Math.max(before, had?.before ?? 0), exp: Math.max(exp, had?.exp ?? 0) });
}

/** True when an entry by sub or home, live at `now`, covers a token issued when `c` was. */
function covered(e: { before: number; exp: number } | undefined, c: TokenClaims, now: number): boolean {
  return e !== undefined && e.exp > now && issuedSecond(c) <= e.before;
}

/**
 * The whole second a token was issued in: "issued in the same second as `before` is covered", and
 * JWT's NumericDate may carry a fraction (an issuer's `iat` of S + 0.5 escaped a revocation at S until 2026-12-06).
 */
function issuedSecond(c: TokenClaims): number {
  return Math.floor(c.iat ?? 0);
}
