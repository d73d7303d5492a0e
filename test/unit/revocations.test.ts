import { describe, expect, it } from 'vitest';
import { CloseCode } from '../../proto/errors.js';
import { RevocationList } from '../../src/auth/revocations.js';
import { OpenAppSockets } from '../../src/transport/app-sockets.js';

describe('RevocationList', () => {
  it('revokes by jti, and by sub for tokens issued at or before the time; forgets entries once they expire', () => {
    let now = 1_000;
    const list = new RevocationList(() => now);
    list.add({ jti: 'j1', exp: 2_000 });
    list.add({ sub: 'alice', before: 1_000, exp: 3_000 });
    expect(list.isRevoked({ sub: 'bob', jti: 'j1', iat: 900 })).toBe(true);
    expect(list.isRevoked({ sub: 'bob', jti: 'j2', iat: 900 })).toBe(false);
    expect(list.isRevoked({ sub: 'alice', iat: 1_000 })).toBe(true);
    expect(list.isRevoked({ sub: 'alice' })).toBe(true); // no iat: issued at 0
    expect(list.isRevoked({ sub: 'alice', iat: 1_001 })).toBe(false);
    expect(list.size).toBe(2);
    now = 2_000;
    list.add({ jti: 'j3', exp: 2_500 }); // sweeps
    expect(list.isRevoked({ sub: 'bob', jti: 'j1', iat: 900 })).toBe(false);
    expect(list.size).toBe(2);
    now = 3_000;
    list.add({ jti: 'j4', exp: 2_999 }); // already expired: not kept
    expect(list.size).toBe(0);
  });

  it('keeps at most maxEntries, the oldest added going first', () => {
    const list = new RevocationList(() => 0, 3);
    for (let i = 0; i < 5; i++) list.add({ jti: `j${i}`, exp: 10 });
    expect(list.size).toBe(3);
    expect(list.isRevoked({ sub: 's', jti: 'j0' })).toBe(false);
    expect(list.isRevoked({ sub: 's', jti: 'j4' })).toBe(true);
  });
});

describe('OpenAppSockets', () => {
  it('closes exactly the sockets a revocation covers, with 4007 token_revoked, and forgets closed ones', () => {
    const sockets = new OpenAppSockets();
    const closed: string[] = [];
    const socket = (name: string) => ({ close: (code: number, reason: string) => closed.push(`${name} ${code} ${reason}`) });
    const a1 = socket('a1');
    const a2 = socket('a2');
    const b = socket('b');
    const user = (sub: string, jti: string, iat: number) => ({ kind: 'user' as const, sub, homes: new Set<string>(), jti, iat });
    sockets.opened(a1, user('alice', 'j1', 100));
    sockets.opened(a2, user('alice', 'j2', 200));
    sockets.opened(b, user('bob', 'j3', 100));
    const admin = socket('admin');
    sockets.opened(admin, { kind: 'admin' });
    expect(sockets.size).toBe(4);
    expect(sockets.revoke({ jti: 'j3', exp: 1_000 })).toBe(1);
    expect(sockets.revoke({ sub: 'alice', before: 150, exp: 1_000 })).toBe(1);
    expect(closed).toEqual([`b ${CloseCode.unauthorized} token_revoked`, `a1 ${CloseCode.unauthorized} token_revoked`]);
    sockets.closed(a2, user('alice', 'j2', 200));
    sockets.closed(admin, { kind: 'admin' });
    expect(sockets.size).toBe(0);
  });

  it('closeAll (a drain) closes every open socket, those of the admin token too, once', () => {
    const sockets = new OpenAppSockets();
    const closed: string[] = [];
    const socket = (name: string) => ({ close: (code: number, reason: string) => closed.push(`${name} ${code} ${reason}`) });
    sockets.opened(socket('a'), { kind: 'user', sub: 'alice', homes: new Set<string>(), jti: 'j1', iat: 1 });
    sockets.opened(socket('admin'), { kind: 'admin' });
    expect(sockets.closeAll(CloseCode.draining, 'draining')).toBe(2);
    expect(closed.sort()).toEqual([`a ${CloseCode.draining} draining`, `admin ${CloseCode.draining} draining`]);
    expect(sockets.size).toBe(0);
    expect(sockets.closeAll(CloseCode.draining, 'draining')).toBe(0);
  });
});
