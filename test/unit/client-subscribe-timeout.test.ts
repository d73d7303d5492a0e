/**
 * A `sub` the node never answers, against a fake node: the socket is taken for stuck and replaced
 * after subscribeTimeoutMs (4102), a command on it rejects with session_closed, and the home is
 * subscribed again from its position on the next socket. The client's timers are faked.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SUBSCRIBE_TIMEOUT_CLOSE, type ConnectionState, type SubResult } from '../../src/client/index.js';
import { fakeServerPerTest, Inbox } from '../helpers/fake-app-server.js';

const fx = fakeServerPerTest();

const isClosed = (s: ConnectionState): s is Extract<ConnectionState, { state: 'closed' }> => s.state === 'closed';

afterEach(() => {
  vi.useRealTimers();
});

describe('client subscribe timeout (fake server)', () => {
  it('replaces a socket that leaves a sub unanswered (4102), rejects the command sent on it, and subscribes again on the next', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const states = new Inbox<ConnectionState>();
    const c = fx.client({ onState: states.push, subscribeTimeoutMs: 10_000 });
    const answers = new Inbox<SubResult>();
    const sub = c.subscribe('h1', { onEvent() {}, onSubscribed: answers.push });
    const first = await fx.server.connection(1);
    await first.sub('h1');
    // the socket carries other traffic meanwhile (so the keepalive would not notice anything)
    const command = c.command('hub-1', 'lamp', { set: { on: true } }, { timeoutMs: 60_000 }).catch((e: unknown) => e);
    await first.next((m) => m.op === 'cmd');
    first.evt('h2', 1);
    await vi.advanceTimersByTimeAsync(10_000);
    const closed = await states.next(isClosed);
    expect(closed).toMatchObject({ code: SUBSCRIBE_TIMEOUT_CLOSE, unauthorized: false });
    expect(isClosed(closed) && closed.reason).toBe('no answer to the sub of h1 within 10000 ms (subscribeTimeoutMs)');
    expect(await command).toMatchObject({ code: 'session_closed', temporary: true });
    expect(await first.closed).toEqual({ code: SUBSCRIBE_TIMEOUT_CLOSE, reason: 'subscribe timeout' });
    await vi.advanceTimersByTimeAsync(10);
    const second = await fx.server.connection(2);
    const req = await second.sub('h1');
    second.ok(req.id, { home: 'h1', pos: { epoch: 'e1', offset: 3 } });
    expect(await sub.ready).toEqual({ home: 'h1', pos: { epoch: 'e1', offset: 3 } });
    expect(answers.items).toHaveLength(1);
  });

  it('does not wait for the answer of a sub that ended first (unsubscribed, or ended by the node): the socket stays', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const states = new Inbox<ConnectionState>();
    const c = fx.client({ onState: states.push, subscribeTimeoutMs: 10_000, keepaliveMs: 0 });
    const errors = new Inbox<unknown>();
    const mounted = c.subscribe('h1', { onEvent() {} });
    mounted.ready.catch(() => {});
    const taken = c.subscribe('h2', { onEvent() {}, onError: errors.push });
    taken.ready.catch(() => {});
    const conn = await fx.server.connection(1);
    await conn.sub('h1');
    await conn.sub('h2');
    // a component mounted and unmounted at once; the node takes h2 from the token (revocation by home)
    mounted.unsubscribe();
    await conn.next((m) => m.op === 'unsub');
    conn.send({ op: 'end', home: 'h2', code: 'forbidden', num: 201, temporary: false, msg: 'revoked' });
    expect(await errors.next(() => true)).toMatchObject({ code: 'forbidden' });
    await vi.advanceTimersByTimeAsync(30_000);
    expect(states.items.filter(isClosed)).toEqual([]);
  });

  it('never gives up an unanswered sub with subscribeTimeoutMs 0, and refuses a negative one', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    expect(() => fx.client({ subscribeTimeoutMs: -1 })).toThrow(RangeError);
    const states = new Inbox<ConnectionState>();
    const c = fx.client({ onState: states.push, subscribeTimeoutMs: 0, keepaliveMs: 0 });
    c.subscribe('h1', { onEvent() {} });
    await (await fx.server.connection(1)).sub('h1');
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(states.items.filter(isClosed)).toEqual([]);
  });
});
