/**
 * The moment a socket's token expires, against a fake node playing the real one's part: every
 * request is answered `err unauthorized`, then the socket closes 4007 `token_expired`. With a token
 * function, a `sub` or command caught in that window waits for the fresh token's socket (once);
 * with a string token, or refused again there, it ends as before. Also the command refusals the
 * client makes itself: `set` with `method`, and a command never written (`sent: false`).
 */
import { describe, expect, it } from 'vitest';
import { ClientError, type ClientOptions } from '../../src/client/index.js';
import { fakeServerPerTest, Inbox, type FakeConnection } from '../helpers/fake-app-server.js';

const fx = fakeServerPerTest();

const tokens = () => {
  let n = 0;
  return () => `tok-${++n}`;
};

/** What the node does at exp: refuses the request, then closes the socket. */
function expire(conn: FakeConnection, id: number): void {
  conn.send({ op: 'err', id, code: 'unauthorized', num: 200, temporary: false, msg: 'token expired' });
  conn.close(4007, 'token_expired');
}

const isSub = (home: string) => (m: any) => m.op === 'sub' && m.home === home;
const isCmd = (m: any) => m.op === 'cmd';

/** A client subscribed to h1 whose first socket's token expired as its `sub` arrived, and the fresh token's socket. */
async function subscribedThenExpired() {
  const c = fx.client({ token: tokens() });
  const errors = new Inbox<ClientError>();
  const sub = c.subscribe('h1', { onEvent() {}, onError: errors.push });
  const first = await fx.server.connection(1);
  expire(first, (await first.next(isSub('h1'))).id);
  return { c, errors, sub, second: await fx.server.connection(2) };
}

describe('client across a token expiry (fake server)', () => {
  it('keeps a subscription refused unauthorized at exp and subscribes it again with the fresh token', async () => {
    const { errors, sub, second } = await subscribedThenExpired();
    expect(second.token).toBe('tok-2');
    const again = await second.next(isSub('h1'));
    second.ok(again.id, { home: 'h1', pos: { epoch: 'e1', offset: 4 } });
    expect(await sub.ready).toMatchObject({ home: 'h1', pos: { epoch: 'e1', offset: 4 } });
    expect(sub.position).toEqual({ epoch: 'e1', offset: 4 });
    expect(errors.items).toEqual([]);
  });

  it('ends the subscription when the fresh token’s socket refuses it unauthorized too', async () => {
    const { c, errors, sub, second } = await subscribedThenExpired();
    expire(second, (await second.next(isSub('h1'))).id);
    expect(await sub.ready.catch((e: unknown) => e)).toMatchObject({ code: 'unauthorized', temporary: false });
    expect(errors.items.map((e) => e.code)).toEqual(['unauthorized']);
    // ended: the third socket subscribes nothing (a command made now is written after the subs of the open)
    const third = await fx.server.connection(3);
    c.command('hub-1', 'lamp', { set: { on: true } }).catch(() => {});
    await third.next(isCmd);
    expect(third.received.filter(isSub('h1'))).toEqual([]);
  });

  it('with a string token (no fresh one to come), unauthorized ends the subscription as before', async () => {
    const plain = fx.client();
    const ended = plain.subscribe('h1', { onEvent() {} });
    const conn = await fx.server.connection(1);
    expire(conn, (await conn.next(isSub('h1'))).id);
    expect(await ended.ready.catch((e: unknown) => e)).toMatchObject({ code: 'unauthorized' });
  });

  it('with a token function, forbidden (a home not in the token) still ends the subscription', async () => {
    const fresh = fx.client({ token: tokens() });
    const theirs = fresh.subscribe('not-mine', { onEvent() {} });
    const conn2 = await fx.server.connection(1);
    const req = await conn2.next(isSub('not-mine'));
    conn2.send({ op: 'err', id: req.id, code: 'forbidden', num: 201, temporary: false, msg: 'not in the token' });
    expect(await theirs.ready.catch((e: unknown) => e)).toMatchObject({ code: 'forbidden' });
  });

  it('sends a command refused unauthorized at exp again with the fresh token, once', async () => {
    const c = fx.client({ token: tokens() });
    const result = c.command('hub-1', 'lamp', { set: { on: true } });
    const first = await fx.server.connection(1);
    const req = await first.next(isCmd);
    expire(first, req.id);
    const second = await fx.server.connection(2);
    const again = await second.next(isCmd);
    // the same command, with what is left of its time
    expect(again).toEqual({ ...req, timeoutMs: expect.any(Number) });
    expect(again.timeoutMs).toBeLessThanOrEqual(req.timeoutMs);
    second.ok(again.id, { on: true });
    expect(await result).toEqual({ on: true });

    // refused on the fresh socket too: rejected as the node said
    const twice = c.command('hub-1', 'lamp', { set: { on: false } }).catch((e: unknown) => e);
    const r2 = await second.next((m) => isCmd(m) && m.set.on === false);
    expire(second, r2.id);
    const third = await fx.server.connection(3);
    expire(third, (await third.next(isCmd)).id);
    expect(await twice).toMatchObject({ code: 'unauthorized', temporary: false });
  });

  it('with a string token, a command refused unauthorized rejects at once', async () => {
    const c = fx.client();
    const result = c.command('hub-1', 'lamp', { set: { on: true } }).catch((e: unknown) => e);
    const conn = await fx.server.connection(1);
    expire(conn, (await conn.next(isCmd)).id);
    expect(await result).toMatchObject({ code: 'unauthorized' });
  });

  it('refuses set with method from plain JavaScript (invalid_field method) without sending it', async () => {
    const c = fx.client();
    const body = { set: { on: true }, method: 'unlock' } as unknown as Parameters<typeof c.command>[2];
    const err = await c.command('hub-1', 'lamp', body).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect(err).toMatchObject({ code: 'invalid_field', num: 103, field: 'method' });
    const conn = await fx.server.connection(1);
    c.command('hub-1', 'lamp', { method: 'ping' }).catch(() => {});
    await conn.next(isCmd);
    expect(conn.received.filter(isCmd)).toHaveLength(1);
  });

  it('a command never written rejects command_timeout with sent: false; one written and unanswered with sent: true', async () => {
    const opts: Partial<ClientOptions> = { commandTimeoutMs: 50, commandMarginMs: 50 };
    fx.server.accept = () => false;
    const c = fx.client(opts);
    const unsent = await c.command('hub-1', 'lamp', { set: { on: true } }).catch((e: unknown) => e);
    expect(unsent).toMatchObject({ code: 'command_timeout', temporary: true, sent: false });
    expect((unsent as Error).message).toMatch(/^not sent/);
    fx.server.accept = () => true;
    const conn = await fx.server.connection(1);
    const silent = c.command('hub-1', 'lamp', { set: { on: true } }).catch((e: unknown) => e);
    await conn.next(isCmd);
    expect(await silent).toMatchObject({ code: 'command_timeout', sent: true });
  });
});
