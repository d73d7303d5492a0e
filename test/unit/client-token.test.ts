/**
 * The token function against a fake node: one that never settles is given up with the attempt
 * (connectTimeoutMs, 4101) and asked again after the backoff; one that throws, rejects or gives no
 * string fails the attempt; close() while it runs ends at once, and what it gives later opens nothing.
 * The client's timers are faked where a test runs past a timeout; sockets are counted as they are made.
 */
import WebSocket from 'ws';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CONNECT_TIMEOUT_CLOSE, type ClientOptions, type ConnectionState } from '../../src/client/index.js';
import { fakeServerPerTest, Inbox } from '../helpers/fake-app-server.js';

const fx = fakeServerPerTest();

const isOpen = (s: ConnectionState) => s.state === 'open';
const isClosed = (s: ConnectionState): s is Extract<ConnectionState, { state: 'closed' }> => s.state === 'closed';

/** A token the test settles when it likes (or never). */
function deferred() {
  let resolve: (token: unknown) => void = () => {};
  let reject: (err: unknown) => void = () => {};
  const promise = new Promise<string>((res, rej) => ((resolve = res as (t: unknown) => void), (reject = rej)));
  return { promise, resolve, reject };
}

/** The client with a WebSocket class that counts the sockets it makes. */
function client(token: ClientOptions['token'], extra: Partial<ClientOptions> = {}) {
  const states = new Inbox<ConnectionState>();
  const made: string[][] = [];
  class Counted extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      made.push([protocols ?? []].flat());
    }
  }
  const c = fx.client({ token, WebSocket: Counted, onState: states.push, backoff: { initialMs: 500, maxMs: 500, jitter: 0 }, ...extra });
  return { c, states, made };
}

/** Lets every settled promise run its callbacks (setImmediate is not faked). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

afterEach(() => {
  vi.useRealTimers();
});

describe('client token function (fake server)', () => {
  it('gives up a token function that never settles after connectTimeoutMs (4101, a token reason), asks again after the backoff, and a late token opens nothing', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const first = deferred();
    const tokens = [first.promise, Promise.resolve('fresh')];
    const { states, made } = client(() => tokens.shift() ?? 'none');
    expect(states.items).toEqual([{ state: 'connecting', attempt: 0 }]);
    await vi.advanceTimersByTimeAsync(10_000);
    const closed = await states.next(isClosed);
    expect(closed).toMatchObject({ code: CONNECT_TIMEOUT_CLOSE, unauthorized: false, reconnectInMs: 500 });
    expect(isClosed(closed) && closed.reason).toBe('token: the token function gave none within 10000 ms (connectTimeoutMs)');
    expect(made).toEqual([]);
    await vi.advanceTimersByTimeAsync(500);
    await states.next(isOpen);
    expect(states.items[2]).toEqual({ state: 'connecting', attempt: 1 });
    // the first attempt's token comes at last: it was given up, so no second socket opens
    first.resolve('late');
    await settle();
    expect(made).toHaveLength(1);
    expect(fx.server.tokens).toEqual(['fresh']);
    expect(states.items.map((s) => s.state)).toEqual(['connecting', 'closed', 'connecting', 'open']);
  });

  it('a token function that rejects after its attempt was given up reports nothing and starts no second retry', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const first = deferred();
    let calls = 0;
    const { states } = client(() => (++calls === 1 ? first.promise : 'tok'));
    await vi.advanceTimersByTimeAsync(10_000);
    await states.next(isClosed);
    first.reject(new Error('too late'));
    await settle();
    await vi.advanceTimersByTimeAsync(500);
    await states.next(isOpen);
    expect(states.items.filter(isClosed)).toHaveLength(1);
    expect(calls).toBe(2);
  });

  it('retries a token function that rejects with the backoff, reporting why', async () => {
    let calls = 0;
    const { states } = client(
      async () => {
        if (++calls < 3) throw new Error(`refresh failed ${calls}`);
        return 'tok';
      },
      { backoff: { initialMs: 1, maxMs: 1 } },
    );
    await states.next(isOpen);
    expect(states.items.filter(isClosed).map((s) => [s.code, s.reason])).toEqual([
      [1006, 'token: refresh failed 1'],
      [1006, 'token: refresh failed 2'],
    ]);
    expect(fx.server.tokens).toEqual(['tok']);
  });

  it('takes a token function that gives no non-empty string for a failed attempt, never a socket with bearer.undefined', async () => {
    const bad: unknown[] = [undefined, '', 42, null];
    const { states, made } = client(() => (bad.length > 0 ? (bad.shift() as string) : 'tok'), { backoff: { initialMs: 1, maxMs: 1 } });
    await states.next(isOpen);
    expect(states.items.filter(isClosed).map((s) => s.reason)).toEqual([
      'token: the token function gave undefined, not a non-empty string',
      'token: the token function gave an empty string, not a non-empty string',
      'token: the token function gave number, not a non-empty string',
      'token: the token function gave object, not a non-empty string',
    ]);
    expect(made).toEqual([[expect.any(String), 'bearer.tok']]);
  });

  it('refuses a token option that is neither a non-empty string nor a function', () => {
    for (const token of ['', 42, undefined]) expect(() => client(token as string)).toThrow(TypeError);
  });

  it('close() while the token is fetched ends at once; the token given afterwards opens no socket', async () => {
    const pending = deferred();
    const { c, states, made } = client(() => pending.promise);
    await c.close();
    expect(c.state).toMatchObject({ state: 'closed', code: 1000, reconnectInMs: null });
    pending.resolve('tok');
    await settle();
    expect(made).toEqual([]);
    expect(states.items.map((s) => s.state)).toEqual(['connecting', 'closed']);
  });

  it('close() while waiting out a token function that hangs: no retry and no socket when it settles', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const pending = deferred();
    let calls = 0;
    const { c, states, made } = client(() => (++calls, pending.promise));
    await vi.advanceTimersByTimeAsync(10_000);
    await states.next(isClosed);
    await c.close();
    pending.resolve('tok');
    await vi.advanceTimersByTimeAsync(60_000);
    await settle();
    expect(made).toEqual([]);
    expect(calls).toBe(1);
    expect(states.items.filter(isClosed).map((s) => s.reconnectInMs)).toEqual([500, null]);
  });
});
