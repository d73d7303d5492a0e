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

  it('a token whose iat has a fraction (a JWT NumericDate may) issued in the revocation\'s second is covered, by sub and by home', () => {
    const list = new RevocationList(() => 1_000);
    list.add({ sub: 'alice', before: 1_000, exp: 3_000 });
    list.add({ home: 'h1', before: 1_000, exp: 3_000 });
    expect(list.isRevoked({ sub: 'alice', iat: 1_000.5 })).toBe(true);
    expect(list.isRevoked({ sub: 'alice', iat: 1_001 })).toBe(false);
    expect(RevocationList.covers({ sub: 'alice', before: 1_000, exp: 3_000 }, { sub: 'alice', iat: 1_000.999 })).toBe(true);
    expect(RevocationList.covers({ home: 'h1', before: 1_000, exp: 3_000 }, { sub: 'dan', iat: 1_000.5, homes: new Set(['h1']) })).toBe(true);
    expect(list.revokedHomes({ sub: 'dan', iat: 1_000.5, homes: new Set(['h1']) })).toEqual(['h1']);
    expect(list.revokedHomes({ sub: 'dan', iat: 1_001, homes: new Set(['h1']) })).toEqual([]);
  });

  it('takes a home from the tokens issued at or before the time, which keep their other homes; none while no home is revoked', () => {
    let now = 1_000;
    const list = new RevocationList(() => now);
    const token = (homes: string[], iat?: number) => ({ sub: 'carol', iat, homes: new Set(homes) });
    expect(list.revokedHomes(token(['h1', 'h2'], 900))).toEqual([]);
    list.add({ home: 'h1', before: 1_000, exp: 3_000 });
    // names like Object.prototype members are homes like any other
    list.add({ home: 'toString', before: 1_000, exp: 3_000 });
    expect(list.revokedHomes(token(['h1', 'h2'], 900))).toEqual(['h1']);
    expect(list.revokedHomes(token(['h1', 'h2', 'toString'], 1_000))).toEqual(['h1', 'toString']);
    expect(list.revokedHomes(token(['h1']))).toEqual(['h1']); // no iat: issued at 0
    expect(list.revokedHomes(token(['h1', 'h2'], 1_001))).toEqual([]);
    expect(list.revokedHomes(token(['h2', 'constructor', 'hasOwnProperty'], 900))).toEqual([]);
    // the whole token stands: only its home goes
    expect(list.isRevoked(token(['h1'], 900))).toBe(false);
    // a later one for the same home widens it
    list.add({ home: 'h1', before: 1_500, exp: 3_500 });
    expect(list.revokedHomes(token(['h1'], 1_400))).toEqual(['h1']);
    expect(list.size).toBe(2);
    now = 3_000;
    list.add({ jti: 'j9', exp: 3_001 }); // sweeps the expired toString entry
    expect(list.revokedHomes(token(['h1', 'toString'], 900))).toEqual(['h1']);
    now = 3_500;
    list.add({ jti: 'j10', exp: 3_501 });
    expect(list.revokedHomes(token(['h1'], 900))).toEqual([]);
    expect(list.size).toBe(1);
  });

  it('a revocation added while the wall clock reads a month ahead drops none in force (until 2026-12-06 every one went until a restart)', () => {
    const real = Math.floor(Date.now() / 1000);
    let now = real;
    const list = new RevocationList(() => now);
    list.add({ jti: 'stolen', exp: real + 30 * 86_400 });
    now = real + 31 * 86_400;
    list.add({ jti: 'other', exp: now + 30 * 86_400 });
    // another node's notice, made before the step: kept though the clock reads it expired
    list.add({ sub: 'fired', before: real, exp: real + 30 * 86_400 });
    now = real;
    expect(list.isRevoked({ sub: 'x', jti: 'stolen' })).toBe(true);
    expect(list.isRevoked({ sub: 'fired', iat: real - 10 })).toBe(true);
    expect(list.size).toBe(3);
  });

  it('a storm of revocations in one second walks the entries once, not once per add', () => {
    const list = new RevocationList(() => 1_000);
    let walked = 0;
    class Counting<K, V> extends Map<K, V> {
      override *[Symbol.iterator](): MapIterator<[K, V]> {
        for (const e of super[Symbol.iterator]()) {
          walked++;
          yield e;
        }
      }
    }
    (list as unknown as { byJti: Map<string, number> }).byJti = new Counting<string, number>();
    for (let i = 0; i < 10_000; i++) list.add({ jti: `j${i}`, exp: 2_000 });
    expect(list.size).toBe(10_000);
    expect(walked).toBeLessThan(20_000);
  });

  it('never drops a live entry: at maxEntries a new one has no room, one that widens an entry has, expired ones make room', () => {
    let now = 0;
    const list = new RevocationList(() => now, 3);
    list.add({ jti: 'j0', exp: 10 });
    list.add({ sub: 'alice', before: 0, exp: 20 });
    list.add({ home: 'h1', before: 0, exp: 20 });
    expect(list.room({ jti: 'j1', exp: 30 })).toBe(false);
    expect(list.room({ sub: 'bob', before: 0, exp: 30 })).toBe(false);
    expect(list.room({ home: 'h2', before: 0, exp: 30 })).toBe(false);
    expect([list.room({ jti: 'j0', exp: 30 }), list.room({ sub: 'alice', before: 1, exp: 30 }), list.room({ home: 'h1', before: 1, exp: 30 })]).toEqual([true, true, true]);
    // added anyway (another node's notice, the store at start): kept, and every live one still refused
    list.add({ jti: 'j1', exp: 30 });
    expect(list.size).toBe(4);
    expect(['j0', 'j1'].map((jti) => list.isRevoked({ sub: 's', jti }))).toEqual([true, true]);
    now = 20;
    expect(list.room({ jti: 'j2', exp: 30 })).toBe(true);
    expect(list.size).toBe(1);
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
    expect(sockets.revoke({ jti: 'j3', exp: 1_000 })).toEqual({ closed: 1, narrowed: 0 });
    expect(sockets.revoke({ sub: 'alice', before: 150, exp: 1_000 })).toEqual({ closed: 1, narrowed: 0 });
    expect(closed).toEqual([`b ${CloseCode.unauthorized} token_revoked`, `a1 ${CloseCode.unauthorized} token_revoked`]);
    sockets.closed(a2, user('alice', 'j2', 200));
    sockets.closed(admin, { kind: 'admin' });
    expect(sockets.size).toBe(0);
  });

  it('a home revocation narrows the sockets of tokens that keep other homes, closes those left with none, and no other', () => {
    const sockets = new OpenAppSockets();
    const seen: string[] = [];
    const socket = (name: string, narrows = true) => ({
      close: (code: number, reason: string) => seen.push(`${name} ${code} ${reason}`),
      ...(narrows ? { loseHomes: (homes: readonly string[]) => seen.push(`${name} lost ${homes.join(',')}`) } : {}),
    });
    const user = (sub: string, homes: string[], iat: number) => ({ kind: 'user' as const, sub, homes: new Set(homes), jti: `${sub}-${iat}`, iat });
    sockets.opened(socket('alice-both'), user('alice', ['h1', 'h2'], 100));
    sockets.opened(socket('dave-both-old-socket', false), user('dave', ['h1', 'h2'], 100));
    sockets.opened(socket('bob-h1'), user('bob', ['h1'], 100));
    sockets.opened(socket('bob-h2'), user('bob', ['h2'], 100));
    sockets.opened(socket('carol-h1-later'), user('carol', ['h1'], 300));
    sockets.opened(socket('admin'), { kind: 'admin' });
    expect(sockets.revoke({ home: 'h1', before: 200, exp: 1_000 })).toEqual({ closed: 2, narrowed: 1 });
    expect(seen).toEqual(['alice-both lost h1', `dave-both-old-socket ${CloseCode.unauthorized} token_revoked`, `bob-h1 ${CloseCode.unauthorized} token_revoked`]);
    expect(sockets.size).toBe(4);
    // the same notice again (sent again after a reconnect): alice's socket no longer has h1
    expect(sockets.revoke({ home: 'h1', before: 200, exp: 1_000 })).toEqual({ closed: 0, narrowed: 0 });
    // a reconcile after a missed notice: h2 goes too, which leaves alice none (closed) and bob's h2 socket none
    const list = new RevocationList(() => 0);
    list.add({ home: 'h1', before: 200, exp: 1_000 });
    list.add({ home: 'h2', before: 200, exp: 1_000 });
    expect(sockets.enforce(list)).toEqual({ closed: 2, narrowed: 0 });
    expect(seen.slice(3)).toEqual([`alice-both ${CloseCode.unauthorized} token_revoked`, `bob-h2 ${CloseCode.unauthorized} token_revoked`]);
    expect(sockets.size).toBe(2); // carol's later token and the admin's
  });

  it('a reconcile narrows a socket whose token lost one home of several, and closes one revoked whole', () => {
    const sockets = new OpenAppSockets();
    const seen: string[] = [];
    const socket = (name: string) => ({ close: () => seen.push(`${name} closed`), loseHomes: (homes: readonly string[]) => seen.push(`${name} lost ${homes.join(',')}`) });
    sockets.opened(socket('erin'), { kind: 'user', sub: 'erin', homes: new Set(['h1', 'h2', 'toString']), jti: 'e1', iat: 100 });
    sockets.opened(socket('frank'), { kind: 'user', sub: 'frank', homes: new Set(['h1', 'h2']), jti: 'f1', iat: 100 });
    const list = new RevocationList(() => 0);
    list.add({ home: 'toString', before: 200, exp: 1_000 });
    list.add({ jti: 'f1', exp: 1_000 });
    expect(sockets.enforce(list)).toEqual({ closed: 1, narrowed: 1 });
    expect(seen).toEqual(['erin lost toString', 'frank closed']);
    // enforced again: nothing more
    expect(sockets.enforce(list)).toEqual({ closed: 0, narrowed: 0 });
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
