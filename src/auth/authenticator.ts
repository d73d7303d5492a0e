import { timingSafeEqual } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import { AuthError } from '../errors.js';

/** Who is calling: the administrator (everything) or a user limited to the homes of the token. */
export type Principal = { kind: 'admin' } | { kind: 'user'; sub: string; homes: ReadonlySet<string> };

/**
 * Checks bearer credentials: the configured admin token, or an HS256 JWT signed with the JWT
 * secret carrying `sub` and `homes: string[]` (and `exp` when present is enforced).
 */
export class Authenticator {
  private readonly admin: Buffer;
  private readonly key: Uint8Array;

  constructor(adminToken: string, jwtSecret: string) {
    this.admin = Buffer.from(adminToken);
    this.key = new TextEncoder().encode(jwtSecret);
  }

  /** From an `Authorization` header value (`Bearer <token>`). */
  async fromHeader(header: string | undefined): Promise<Principal> {
    if (!header) throw new AuthError('unauthorized', 'Authorization: Bearer <token> is required');
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new AuthError('unauthorized', 'Authorization must be "Bearer <token>"');
    return this.fromToken(m[1]!);
  }

  async fromToken(token: string): Promise<Principal> {
    const given = Buffer.from(token);
    if (given.length === this.admin.length && timingSafeEqual(given, this.admin)) return { kind: 'admin' };
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'] }));
    } catch (err) {
      throw new AuthError('unauthorized', `invalid token: ${(err as Error).message}`, { cause: err });
    }
    const homes = payload.homes;
    if (typeof payload.sub !== 'string' || !Array.isArray(homes) || !homes.every((h) => typeof h === 'string')) {
      throw new AuthError('unauthorized', 'token must carry sub and homes: string[]');
    }
    return { kind: 'user', sub: payload.sub, homes: new Set(homes as string[]) };
  }

  /** Mints a user token (admin API, demo page, tests). */
  async issue(sub: string, homes: string[], ttlS: number): Promise<string> {
    return new SignJWT({ homes }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime(`${ttlS}s`).sign(this.key);
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
