import { randomUUID } from 'node:crypto';
import { createSigner, createVerifier, TokenError } from 'fast-jwt';
import { AuthError } from '../errors.js';
import { AdminTokens } from './admin-tokens.js';
import { MAX_TTL_S } from '../schemas/hubs.js';
import type { TokenClaims } from './revocations.js';
import { checkAdminToken, type GuessWatch } from './guess-limit.js';
import { wellFormed } from '../protocol/well-formed.js';

/**
 * Who is calling: the administrator (everything) or a user limited to the homes of the token;
 * `jti`, `iat` and `exp` (Unix seconds) as the token carries them, for revocation.
 */
export type Principal = { kind: 'admin' } | { kind: 'user'; sub: string; homes: ReadonlySet<string>; jti?: string; iat?: number; exp?: number };

export interface AuthenticatorOptions {
  /**
   * wrong admin tokens by client address (guess-limit.ts), for calls that name their address: a
   * bearer not shaped as a JWT is an admin-token guess; absent: not limited
   */
  guesses?: GuessWatch;
  /** @default true: a user token without `exp` is refused (it would never expire) */
  requireExp?: boolean;
  /** revoked tokens: refused as `unauthorized`; revoked homes: taken from the token's */
  revoked?: { isRevoked(claims: TokenClaims): boolean; revokedHomes(claims: TokenClaims): readonly string[] };
  /** when set, a user token must carry this `aud` (alone or among others): one minted for another service is refused */
  audience?: string | undefined;
  /** when set, a user token must carry this `iss` */
  issuer?: string | undefined;
  /**
   * @default 300 (s): how far ahead of this node's clock a token's `iat` may be; later is refused, as
   * revoking a user's tokens "issued before" would not reach it
   */
  skewS?: number;
  /**
   * The cluster's one clock (ms; Redis's `TIME`), null where there is none (one node): minted
   * tokens' `iat` and revocations' default `before` are read on it, so a node whose clock runs
   * ahead mints no token that a revocation made on another node at the same moment misses.
   */
  sharedNow?: () => Promise<number | null>;
  /** more HS256 keys that verify user tokens but never sign (JWT_SECRETS_ACCEPTED: a rotation's other key) */
  jwtSecretsAccepted?: readonly string[];
  /** told of each token let in by an accepted key, so an operator sees when the old one is no longer used */
  onAccepted?: () => void;
}

type Verify = (token: string) => Record<string, unknown>;

/** Three base64url parts: a JWT (a user token); anything else is taken for the admin token. */
const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]*$/;

/** A token not shaped as a JWT: checked as the admin token (and counted by the guess limit when wrong). */
export function adminShaped(token: string): boolean {
  return !JWT_SHAPE.test(token);
}

/**
 * Checks bearer credentials: the configured admin token, or an HS256 JWT signed with the JWT
 * secret (or one of the keys accepted beside it during a rotation; only JWT_SECRET signs) carrying
 * `sub`, `homes: string[]` and `exp` (enforced; required unless configured otherwise), not revoked
 * (by its `jti`, or its `sub` and `iat`).
 *
 * Verification is synchronous (fast-jwt, node:crypto HMAC), so `fromToken` settles in the
 * microtasks of its caller's turn: an app socket's upgrade is then answered inside uWS's upgrade
 * callback. An upgrade answered from a later turn goes through `res.cork`, which in the uWS v20.30
 * binaries may close the new socket right after `open` (uNetworking/uWebSockets#1928).
 */
/** How far ahead of a node's clock a token's `iat` may be (s): revocations by `jti` are kept this much past 30 days. */
export const CLOCK_SKEW_S = 300;

/** Longest `sub` and `jti`: what `POST /v1/admin/tokens/revoke` takes (src/schemas/fleet.ts RevokeRequest). */
export const MAX_NAME = 128;

function revocableName(v: unknown): boolean {
  return typeof v === 'string' && v.length >= 1 && v.length <= MAX_NAME && wellFormed(v);
}

export class Authenticator {
  private readonly admin: AdminTokens;
  private readonly verify: Verify;
  /** tried only on a bad signature under `verify`: a token of the current key costs one HMAC, as before */
  private readonly verifyAccepted: Verify[];
  private readonly sign: (payload: Record<string, unknown>) => string;
  private readonly requireExp: boolean;
  private readonly skewS: number;
  /** the latest `iat` this node minted (s): a revocation made here after it covers it, whatever the clock did */
  private lastIssuedS = 0;

  constructor(
    /** the admin token, or the node's one check of it with a rotation's others (src/auth/admin-tokens.ts) */
    adminToken: string | AdminTokens,
    jwtSecret: string,
    private readonly options: AuthenticatorOptions = {},
  ) {
    this.admin = typeof adminToken === 'string' ? new AdminTokens(adminToken) : adminToken;
    const { audience, issuer } = options;
    const verifier = (key: string): Verify =>
      createVerifier({
        key,
        algorithms: ['HS256'],
        ...(audience === undefined ? {} : { allowedAud: audience }),
        ...(issuer === undefined ? {} : { allowedIss: issuer }),
        // fast-jwt checks aud and iss only when the token has them
        requiredClaims: [...(audience === undefined ? [] : ['aud']), ...(issuer === undefined ? [] : ['iss'])],
        // checked below with the skew `iat` has: fast-jwt allowed none, and an issuer a few seconds
        // ahead that writes nbf = iat had its fresh tokens refused as not permanent (2026-12-06)
        ignoreNotBefore: true,
      });
    this.verify = verifier(jwtSecret);
    this.verifyAccepted = (options.jwtSecretsAccepted ?? []).map(verifier);
    this.sign = createSigner({ key: jwtSecret, algorithm: 'HS256', ...(audience === undefined ? {} : { aud: audience }), ...(issuer === undefined ? {} : { iss: issuer }) });
    this.requireExp = options.requireExp ?? true;
    this.skewS = options.skewS ?? CLOCK_SKEW_S;
  }

  /** From an `Authorization` header value (`Bearer <token>`). */
  async fromHeader(header: string | undefined, remote?: string): Promise<Principal> {
    if (!header) throw new AuthError('unauthorized', 'Authorization: Bearer <token> is required');
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new AuthError('unauthorized', 'Authorization must be "Bearer <token>"');
    return this.fromToken(m[1]!, remote);
  }

  /** `remote`: the client's address, where wrong admin tokens are limited by it. */
  async fromToken(token: string, remote?: string): Promise<Principal> {
    const guesses = this.options.guesses;
    if (guesses !== undefined && remote !== undefined && adminShaped(token)) {
      const verdict = checkAdminToken(this.admin, token, remote, 'api', guesses);
      if (verdict.ok) return { kind: 'admin' };
      if (verdict.lockedMs > 0) throw new AuthError('rate_limited', `too many wrong admin tokens from this address: try again in ${Math.ceil(verdict.lockedMs / 1000)} s`, { retryAfterMs: verdict.lockedMs });
      throw new AuthError('unauthorized', 'invalid token');
    }
    if (this.admin.matches(token)) return { kind: 'admin' };
    let payload;
    try {
      payload = this.verifyAny(token);
    } catch (err) {
      throw new AuthError('unauthorized', `invalid token: ${(err as Error).message}`, { cause: err });
    }
    const homes = payload.homes;
    if (typeof payload.sub !== 'string' || !Array.isArray(homes) || !homes.every((h) => typeof h === 'string')) {
      throw new AuthError('unauthorized', 'token must carry sub and homes: string[]');
    }
    // a token must be revocable by what it names: the revocation route takes a sub or jti of 1..128
    // well-formed characters, so another issuer's 200-character sub could only be stopped by
    // rotating JWT_SECRET (review "unicode")
    if (!revocableName(payload.sub)) throw new AuthError('unauthorized', `token sub must be 1..${MAX_NAME} characters of well-formed Unicode (a revocation names it)`);
    if (payload.jti !== undefined && !revocableName(payload.jti)) throw new AuthError('unauthorized', `token jti must be a string of 1..${MAX_NAME} characters of well-formed Unicode (a revocation names it)`);
    if (this.requireExp && typeof payload.exp !== 'number') throw new AuthError('unauthorized', 'token must carry exp (tokens that never expire are refused: TIER_JWT_REQUIRE_EXP)');
    const granted = new Set(homes as string[]);
    const p: Principal = { kind: 'user', sub: payload.sub, homes: granted };
    if (payload.jti !== undefined) p.jti = payload.jti as string;
    if (typeof payload.iat === 'number') {
      if (payload.iat > Date.now() / 1000 + this.skewS) throw new AuthError('unauthorized', `token issued in the future (iat more than ${this.skewS} s ahead of this node's clock)`);
      p.iat = payload.iat;
    }
    if (payload.nbf !== undefined && (typeof payload.nbf !== 'number' || payload.nbf > Date.now() / 1000 + this.skewS)) {
      throw new AuthError('unauthorized', `token not yet valid (nbf not a number, or more than ${this.skewS} s ahead of this node's clock)`);
    }
    if (typeof payload.exp === 'number') {
      // a revocation is kept 30 days (MAX_TTL_S) and the skew `iat` may be ahead: a token living longer
      // (minted elsewhere, or an exp written in ms) came back once its revocation was dropped (review
      // "wrap"). Without `iat` its life is not known: held to 30 days from now at each use alone
      const from = p.iat ?? Date.now() / 1000 + this.skewS;
      if (payload.exp - from > MAX_TTL_S) throw new AuthError('unauthorized', `token lives longer than a revocation is kept (exp more than 30 days after ${p.iat === undefined ? "this node's clock" : 'iat'}): mint tokens of at most 30 days`);
      p.exp = payload.exp;
    }
    const revoked = this.options.revoked;
    if (revoked === undefined) return p;
    if (revoked.isRevoked(p)) throw new AuthError('unauthorized', 'token revoked');
    for (const home of revoked.revokedHomes(p)) granted.delete(home);
    // a token left with none of the homes it named grants nothing
    if (granted.size === 0 && homes.length > 0) throw new AuthError('unauthorized', 'token revoked');
    return p;
  }

  /** The claims under JWT_SECRET, or under an accepted key when only the signature failed; else the first key's error. */
  private verifyAny(token: string): Record<string, unknown> {
    try {
      return this.verify(token);
    } catch (err) {
      if (this.verifyAccepted.length === 0 || (err as TokenError).code !== TokenError.codes.invalidSignature) throw err;
      for (const verify of this.verifyAccepted) {
        let payload;
        try {
          payload = verify(token);
        } catch (other) {
          // signed with this key but refused (expired, wrong audience): that is the token's answer
          if ((other as TokenError).code !== TokenError.codes.invalidSignature) throw other;
          continue;
        }
        this.options.onAccepted?.();
        return payload;
      }
      throw err;
    }
  }

  /** Mints a user token (admin API, demo page, tests), with a fresh `jti` so it can be revoked alone. */
  async issue(sub: string, homes: string[], ttlS: number): Promise<string> {
    const iat = Math.floor((await this.now()) / 1000);
    this.lastIssuedS = Math.max(this.lastIssuedS, iat);
    return this.sign({ homes, sub, jti: randomUUID(), iat, exp: iat + ttlS });
  }

  /**
   * "Now" for a revocation of a user's tokens "issued before now" (ms): the cluster's clock, and
   * never before a token this node minted (a step back of its clock after minting one had that
   * token escape the revocation). Tokens minted elsewhere are stamped by their own clocks.
   */
  async revocationNow(): Promise<number> {
    return Math.max(await this.now(), this.lastIssuedS * 1000);
  }

  /** The cluster's clock where there is one and it answers, else this node's. */
  private async now(): Promise<number> {
    const shared = await this.options.sharedNow?.().catch(() => null);
    return shared ?? Date.now();
  }
}

export function canSeeHome(p: Principal, homeId: string): boolean {
  return p.kind === 'admin' || p.homes.has(homeId);
}

export function requireHome(p: Principal, homeId: string): void {
  if (!canSeeHome(p, homeId)) throw new AuthError('forbidden', `not allowed to access home ${homeId}`);
}

export function requireAdmin(p: Principal): void {
  if (p.kind !== 'admin') throw new AuthError('forbidden', 'admin token required');
}
