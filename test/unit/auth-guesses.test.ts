/**
 * Wrong admin tokens on the public port (the API takes the admin token as a bearer): counted by
 * the client's address as on the admin port; past the limit the address is refused
 * `rate_limited` unchecked, the right admin token too, while user JWTs, which are not guesses of
 * it, go on. Before, one client tried 2,000 admin tokens in 2.8 s on /v1/admin/hubs unhindered.
 */
import { describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/auth/authenticator.js';
import { GuessLimit, guessWatch } from '../../src/auth/guess-limit.js';
import { createLogger } from '../../src/log/logger.js';

const ADMIN = 'guesses-admin-token-0123456789';
const SECRET = 'guesses-jwt-secret-0123456789abcdef';

describe('Authenticator with a guess limit', () => {
  it('past the limit an address is refused rate_limited for any non-JWT bearer, the admin token too; user tokens and other addresses go on', async () => {
    let now = 0;
    const refused: string[] = [];
    const auth = new Authenticator(ADMIN, SECRET, { guesses: guessWatch(createLogger('silent'), (r) => refused.push(r), new GuessLimit({ limit: 3, windowMs: 10_000, now: () => now })) });
    const outcome = (header: string, remote?: string) => auth.fromHeader(header, remote).then((p) => p.kind, (err: { code: string }) => err.code);
    const user = await auth.issue('alice', ['h1'], 3_600);
    for (let i = 0; i < 3; i++) expect(await outcome(`Bearer wrong-admin-${i}`, '10.0.0.9')).toBe('unauthorized');
    // the refusal says when the window lets the address in again (Retry-After)
    await expect(auth.fromHeader(`Bearer ${ADMIN}`, '10.0.0.9')).rejects.toMatchObject({ code: 'rate_limited', retryAfterMs: 10_000 });
    // a forged JWT is not a guess of the admin token; the user's own token still works
    expect(await outcome('Bearer aaa.bbb.ccc', '10.0.0.9')).toBe('unauthorized');
    expect(await outcome(`Bearer ${user}`, '10.0.0.9')).toBe('user');
    expect(await outcome(`Bearer ${ADMIN}`, '10.0.0.8')).toBe('admin');
    // callers that name no address (internal) are not limited
    expect(await outcome(`Bearer ${ADMIN}`)).toBe('admin');
    now = 10_000;
    expect(await outcome(`Bearer ${ADMIN}`, '10.0.0.9')).toBe('admin');
    expect(refused).toEqual(['token', 'token', 'token', 'locked']);
  });
});
