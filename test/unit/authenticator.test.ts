/**
 * The authenticator on its own: tokens it issues verify; forged, re-signed, unsigned, expired and
 * exp-less tokens are refused `unauthorized`; and a verdict settles in its caller's turn, which is
 * what keeps an app socket's upgrade inside uWS's upgrade callback (see Authenticator).
 */
import { SignJWT } from 'jose';
import { describe, expect, it, vi } from 'vitest';
import { AdminTokens } from '../../src/auth/admin-tokens.js';
import { Authenticator } from '../../src/auth/authenticator.js';
import { RevocationList } from '../../src/auth/revocations.js';
import { settledIn } from '../helpers/settled-in.js';

const SECRET = 'authenticator-test-secret-0123456789';
const auth = new Authenticator('authenticator-admin-token-0123', SECRET);
const key = new TextEncoder().encode(SECRET);


const refusal = async (token: string) => auth.fromToken(token).then(() => 'accepted', (err: { code: string }) => err.code);

const claims = async (a: Authenticator, token: string) => {
  const p = await a.fromToken(token);
  if (p.kind !== 'user') throw new Error('not a user');
  return p;
};

describe('Authenticator', () => {
  it('accepts the tokens it issues, with their claims', async () => {
    const p = await auth.fromToken(await auth.issue('bob', ['h1', 'h2'], 60));
    expect(p).toMatchObject({ kind: 'user', sub: 'bob', homes: new Set(['h1', 'h2']), jti: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    if (p.kind !== 'user') throw new Error('not a user');
    expect(p.exp! - p.iat!).toBe(60);
  });

  it('accepts a token another HS256 implementation signed with the secret (jose)', async () => {
    const token = await new SignJWT({ homes: ['h1'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('eve').setExpirationTime('1m').sign(key);
    expect(await auth.fromToken(token)).toMatchObject({ kind: 'user', sub: 'eve' });
  });

  it('refuses a sub or jti a revocation cannot name: empty, over 128 characters, a lone surrogate, not a string (review "unicode")', async () => {
    const signed = (sub: string, jti?: unknown) => new SignJWT({ homes: ['h1'], ...(jti === undefined ? {} : { jti: jti as string }) }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('1m').sign(key);
    for (const sub of ['', 'u'.repeat(129), 'a\ud800b']) expect(await refusal(await signed(sub)), JSON.stringify(sub)).toBe('unauthorized');
    for (const jti of ['', 'j'.repeat(129), '\udc00', 42]) expect(await refusal(await signed('eve', jti)), JSON.stringify(jti)).toBe('unauthorized');
    // at the limit, and text beyond ASCII, are taken
    expect(await claims(auth, await signed('u'.repeat(128), 'j'.repeat(128)))).toMatchObject({ sub: 'u'.repeat(128), jti: 'j'.repeat(128) });
    expect(await claims(auth, await signed('zoë 🚪'))).toMatchObject({ sub: 'zoë 🚪' });
  });

  it('refuses a forged signature, another algorithm, no signature, an expired token and one without exp', async () => {
    const good = await auth.issue('bob', ['h1'], 60);
    const [header, payload] = good.split('.');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${payload}.`;
    const hs384 = await new SignJWT({ homes: ['h1'] }).setProtectedHeader({ alg: 'HS384' }).setSubject('bob').setExpirationTime('1m').sign(key);
    const otherKey = await new SignJWT({ homes: ['h1'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').setExpirationTime('1m').sign(new TextEncoder().encode(`${SECRET}x`));
    const expired = await new SignJWT({ homes: ['h1'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').setExpirationTime(Math.floor(Date.now() / 1000) - 10).sign(key);
    const noExp = await new SignJWT({ homes: ['h1'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').sign(key);
    for (const token of [`${header}.${payload}.AAAA`, none, hs384, otherKey, expired, noExp, 'a.b.c', '%%', '']) expect(await refusal(token), token).toBe('unauthorized');
  });

  it('refuses a token issued more than the clock skew ahead (a revocation of its sub "issued before now" would not reach it)', async () => {
    const at = (iat: number) => new SignJWT({ homes: ['h1'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').setIssuedAt(iat).setExpirationTime('2h').sign(key);
    const now = Math.floor(Date.now() / 1000);
    expect(await refusal(await at(now + 3_600))).toBe('unauthorized');
    expect(await refusal(await at(now + 60))).toBe('accepted');
  });

  it('refuses a token that lives longer than a revocation is kept (30 days after iat, or after now without one): an exp in ms, a 90-day token', async () => {
    const nowS = Math.floor(Date.now() / 1000);
    const signed = (exp: number, iat?: number) => {
      const jwt = new SignJWT({ homes: ['h1'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').setExpirationTime(exp);
      return (iat === undefined ? jwt : jwt.setIssuedAt(iat)).sign(key);
    };
    const lives = /^token lives longer than a revocation is kept \(exp more than 30 days after (iat|this node's clock)\)/;
    await expect(auth.fromToken(await signed(Date.now()))).rejects.toThrow(lives);
    await expect(auth.fromToken(await signed(nowS + 90 * 86_400, nowS))).rejects.toThrow(/after iat/);
    await expect(auth.fromToken(await signed(nowS + 31 * 86_400))).rejects.toThrow(/after this node's clock/);
    // issued 10 days ago for 35: refused though it ends within 30 days of now (its revocation would end first)
    await expect(auth.fromToken(await signed(nowS + 25 * 86_400, nowS - 10 * 86_400))).rejects.toThrow(/after iat/);
    // 30 days and a few minutes: the skew is not added to a known life (a revocation would end first: review diff10)
    await expect(auth.fromToken(await signed(nowS + 30 * 86_400 + 290, nowS))).rejects.toThrow(/after iat/);
    // 30 days (the longest the node mints), with or without iat: accepted
    await expect(auth.fromToken(await signed(nowS + 30 * 86_400, nowS))).resolves.toMatchObject({ sub: 'bob' });
    await expect(auth.fromToken(await signed(nowS + 30 * 86_400))).resolves.toMatchObject({ sub: 'bob' });
  });

  it('takes `nbf` with the same skew as `iat`: an issuer a few seconds ahead that writes nbf = iat is accepted (until 2026-12-06 refused), one an hour ahead or an nbf not a number is not', async () => {
    const at = (nbf: number | string) =>
      new SignJWT({ homes: ['h1'], nbf: nbf as number }).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').setIssuedAt().setExpirationTime('3h').sign(key);
    const now = Math.floor(Date.now() / 1000);
    expect(await refusal(await at(now + 10))).toBe('accepted');
    expect(await refusal(await at(now - 10))).toBe('accepted');
    const late = await auth.fromToken(await at(now + 3_600)).catch((err: Error) => err.message);
    expect(late).toContain('token not yet valid');
    expect(await refusal(await at('soon'))).toBe('unauthorized');
  });

  it('with an audience and an issuer configured, refuses tokens for another service or without them, and mints tokens that carry them', async () => {
    const strict = new Authenticator('authenticator-admin-token-0123', SECRET, { audience: 'hubtier', issuer: 'acme-auth' });
    const signed = (claims: Record<string, unknown>) => new SignJWT({ homes: ['h1'], ...claims }).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').setExpirationTime('1m').sign(key);
    const verdict = async (token: string) => strict.fromToken(token).then(() => 'accepted', (err: { code: string }) => err.code);
    expect(await verdict(await signed({ aud: 'hubtier', iss: 'acme-auth' }))).toBe('accepted');
    expect(await verdict(await signed({ aud: ['billing', 'hubtier'], iss: 'acme-auth' }))).toBe('accepted');
    expect(await verdict(await signed({ aud: 'billing', iss: 'acme-auth' }))).toBe('unauthorized');
    expect(await verdict(await signed({ aud: 'hubtier', iss: 'evil' }))).toBe('unauthorized');
    expect(await verdict(await signed({ iss: 'acme-auth' }))).toBe('unauthorized');
    expect(await verdict(await signed({ aud: 'hubtier' }))).toBe('unauthorized');
    expect(await verdict(await strict.issue('bob', ['h1'], 60))).toBe('accepted');
    // the default accepts tokens with any aud and iss, as before
    expect(await refusal(await signed({ aud: 'billing', iss: 'evil' }))).toBe('accepted');
  });

  it('refuses a signed token whose homes are not all strings, or not a list (a mutation review found no test)', async () => {
    const signed = (homes: unknown) => new SignJWT({ homes }).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').setExpirationTime('1m').sign(key);
    for (const homes of [['h1', 2], [['h1']], [{ h: 1 }], 'h1', null]) expect(await refusal(await signed(homes)), JSON.stringify(homes)).toBe('unauthorized');
    expect(await refusal(await signed(['h1', 'h2']))).toBe('accepted');
  });

  it('settles in the caller’s turn, accepted or refused (an app upgrade is answered inside uWS’s callback)', async () => {
    const good = await auth.issue('bob', ['h1'], 60);
    expect(await settledIn(auth.fromToken(good))).toBe('this turn');
    expect(await settledIn(auth.fromToken(`${good}x`))).toBe('this turn');
    expect(await settledIn(auth.fromHeader(`Bearer ${good}`))).toBe('this turn');
  });
});

describe('revocations', () => {
  it('refuses a revoked token; takes a revoked home from a token, which keeps its others; refuses one left with none', async () => {
    const list = new RevocationList();
    const node = new Authenticator('authenticator-admin-token-0123', SECRET, { revoked: list });
    const both = await node.issue('dan', ['h1', 'h2'], 3_600);
    const onlyH1 = await node.issue('erin', ['h1'], 3_600);
    const onlyH2 = await node.issue('erin', ['h2'], 3_600);
    const before = (await claims(node, both)).iat!;
    list.add({ home: 'h1', before, exp: before + 3_600 });
    expect(await node.fromToken(both)).toMatchObject({ kind: 'user', sub: 'dan', homes: new Set(['h2']) });
    await expect(node.fromToken(onlyH1)).rejects.toMatchObject({ code: 'unauthorized', message: 'token revoked' });
    expect(await node.fromToken(onlyH2)).toMatchObject({ homes: new Set(['h2']) });
    // a token issued after the revocation's time grants the home again
    const later = vi.spyOn(Date, 'now').mockReturnValue((before + 2) * 1000);
    try {
      expect(await node.fromToken(await node.issue('dan', ['h1', 'h2'], 3_600))).toMatchObject({ homes: new Set(['h1', 'h2']) });
    } finally {
      later.mockRestore();
    }
    list.add({ jti: (await claims(node, onlyH2)).jti!, exp: before + 3_600 });
    await expect(node.fromToken(onlyH2)).rejects.toMatchObject({ code: 'unauthorized', message: 'token revoked' });
  });
});

describe('token times and revocations across clocks', () => {

  it('mints iat on the cluster’s clock, not on a node clock that runs ahead', async () => {
    // the node's clock 120 s ahead of the cluster's, both fixed: iat must be the cluster's second
    const cluster = 1_764_900_000_000;
    const ahead = vi.spyOn(Date, 'now').mockReturnValue(cluster + 120_000);
    try {
      const node = new Authenticator('authenticator-admin-token-0123', SECRET, { sharedNow: async () => cluster });
      const p = await claims(node, await node.issue('alice', ['h1'], 3_600));
      expect(p.iat).toBe(cluster / 1000);
      // a revocation "before now" made elsewhere at the same moment (on the cluster's clock) covers it
      const list = new RevocationList();
      list.add({ sub: 'alice', before: cluster / 1000, exp: p.exp! });
      expect(list.isRevoked(p)).toBe(true);
    } finally {
      ahead.mockRestore();
    }
  });

  it('a revocation made after a token, on a clock stepped back since, still covers it', async () => {
    const node = new Authenticator('authenticator-admin-token-0123', SECRET);
    const p = await claims(node, await node.issue('bob', ['h1'], 3_600));
    const wall = Date.now;
    const back = vi.spyOn(Date, 'now').mockImplementation(() => wall.call(Date) - 60_000);
    try {
      const now = await node.revocationNow();
      expect(now).toBeGreaterThanOrEqual(p.iat! * 1000);
      const list = new RevocationList();
      list.add({ sub: 'bob', before: Math.floor(now / 1000), exp: p.exp! });
      expect(list.isRevoked(p)).toBe(true);
    } finally {
      back.mockRestore();
    }
  });

  it('falls back to its own clock when the cluster’s does not answer', async () => {
    const own = vi.spyOn(Date, 'now').mockReturnValue(1_764_900_042_000);
    try {
      const node = new Authenticator('authenticator-admin-token-0123', SECRET, { sharedNow: () => Promise.reject(new Error('redis away')) });
      const p = await claims(node, await node.issue('carol', ['h1'], 60));
      expect(p.iat).toBe(1_764_900_042);
    } finally {
      own.mockRestore();
    }
  });

  describe('a rotation: values accepted beside JWT_SECRET and ADMIN_TOKEN', () => {
    const NEXT = 'authenticator-next-secret-0123456789';
    const OTHER_ADMIN = 'authenticator-other-admin-0123';
    const signed = (secret: string, exp: number | string = '1m') => new SignJWT({ homes: ['h1'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').setExpirationTime(exp).sign(new TextEncoder().encode(secret));
    const rotating = () => {
      const accepted: string[] = [];
      const admin = new AdminTokens('authenticator-admin-token-0123', [OTHER_ADMIN], () => accepted.push('admin'));
      const node = new Authenticator(admin, NEXT, { jwtSecretsAccepted: [SECRET], onAccepted: () => accepted.push('jwt') });
      return { node, accepted };
    };

    it('accepts tokens of the accepted key and counts them; its own key counts nothing', async () => {
      const { node, accepted } = rotating();
      expect(await node.fromToken(await signed(SECRET))).toMatchObject({ kind: 'user', sub: 'bob' });
      expect(accepted).toEqual(['jwt']);
      expect(await node.fromToken(await signed(NEXT))).toMatchObject({ kind: 'user', sub: 'bob' });
      expect(await node.fromToken(OTHER_ADMIN)).toEqual({ kind: 'admin' });
      expect(await node.fromToken('authenticator-admin-token-0123')).toEqual({ kind: 'admin' });
      expect(accepted).toEqual(['jwt', 'admin']);
    });

    it('signs with JWT_SECRET alone: a node without the accepted key takes what it mints', async () => {
      const { node } = rotating();
      const token = await node.issue('bob', ['h1'], 60);
      expect(await new Authenticator('authenticator-admin-token-0123', NEXT).fromToken(token)).toMatchObject({ sub: 'bob' });
      expect(await refusal(token)).toBe('unauthorized');
    });

    it('refuses an unknown key, and an expired token of the accepted key as expired, not as forged', async () => {
      const { node, accepted } = rotating();
      const expired = await signed(SECRET, Math.floor(Date.now() / 1000) - 10);
      const err = await node.fromToken(expired).then(() => null, (e: Error & { code: string }) => e);
      expect(err).toMatchObject({ code: 'unauthorized', message: expect.stringMatching(/expired/) });
      const unknown = await node.fromToken(await signed(`${SECRET}x`)).then(() => null, (e: Error & { code: string }) => e);
      expect(unknown).toMatchObject({ code: 'unauthorized', message: expect.stringMatching(/signature/) });
      expect(await node.fromToken(`${OTHER_ADMIN}x`).then(() => 'accepted', (e: { code: string }) => e.code)).toBe('unauthorized');
      expect(accepted).toEqual([]);
    });
  });
});
