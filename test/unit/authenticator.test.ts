/**
 * The authenticator on its own: tokens it issues verify; forged, re-signed, unsigned, expired and
 * exp-less tokens are refused `unauthorized`; and a verdict settles in its caller's turn, which is
 * what keeps an app socket's upgrade inside uWS's upgrade callback (see Authenticator).
 */
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/auth/authenticator.js';
import { settledIn } from '../helpers/settled-in.js';

const SECRET = 'authenticator-test-secret-0123456789';
const auth = new Authenticator('authenticator-admin-token-0123', SECRET);
const key = new TextEncoder().encode(SECRET);


const refusal = async (token: string) => auth.fromToken(token).then(() => 'accepted', (err: { code: string }) => err.code);

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

  it('settles in the caller’s turn, accepted or refused (an app upgrade is answered inside uWS’s callback)', async () => {
    const good = await auth.issue('bob', ['h1'], 60);
    expect(await settledIn(auth.fromToken(good))).toBe('this turn');
    expect(await settledIn(auth.fromToken(`${good}x`))).toBe('this turn');
    expect(await settledIn(auth.fromHeader(`Bearer ${good}`))).toBe('this turn');
  });
});
