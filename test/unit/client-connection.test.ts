/**
 * The client's connection against a fake node: a token asked for on every attempt (again after a
 * 401), states with close codes and reasons, backoff delays from an injected random source, close().
 * Delays are read from the states the client reports, never measured.
 */
import WebSocket from 'ws';
import { describe, expect, it, vi } from 'vitest';
import { APP_SUBPROTOCOL } from '../../proto/app.js';
import { ClientError, HubtierClient, KEEPALIVE_CLOSE, type ClientOptions, type ConnectionState, type WebSocketConstructor, type WebSocketLike } from '../../src/client/index.js';
import { fakeServerPerTest, Inbox } from '../helpers/fake-app-server.js';

const fx = fakeServerPerTest();

function client(extra: Partial<ClientOptions> = {}): { c: HubtierClient; states: Inbox<ConnectionState> } {
  const states = new Inbox<ConnectionState>();
  const c = fx.client({ onState: states.push, ...extra });
  return { c, states };
}

// both implementations fit the option's type (checked by tsc; a browser's global is absent in Node 20)
export const implementations: Array<WebSocketConstructor | undefined> = [WebSocket, (globalThis as { WebSocket?: typeof globalThis.WebSocket }).WebSocket];

const isOpen = (s: ConnectionState) => s.state === 'open';
const isClosed = (s: ConnectionState): s is Extract<ConnectionState, { state: 'closed' }> => s.state === 'closed';

describe('client connection (fake server)', () => {
  it('sends the token as the bearer subprotocol and asks the token function again before every attempt', async () => {
    let calls = 0;
    const { states } = client({ token: async () => `tok-${++calls}` });
    (await fx.server.connection(1)).close(4005, 'draining');
    (await fx.server.connection(2)).close(1001, 'going away');
    await fx.server.connection(3);
    await states.next(isOpen, 3);
    expect(fx.server.connections.map((c) => c.token)).toEqual(['tok-1', 'tok-2', 'tok-3']);
    expect(calls).toBe(3);
  });

  it('offers the fixed subprotocol before the bearer one, so that the token does not come back in the answer', async () => {
    const seen: string[][] = [];
    class Spy extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        seen.push([protocols ?? []].flat());
      }
    }
    const { states } = client({ WebSocket: Spy, token: 'tok' });
    await states.next(isOpen);
    expect(seen).toEqual([[APP_SUBPROTOCOL, 'bearer.tok']]);
  });

  it('refuses a connectTimeoutMs that is not 0 or a positive number of ms', () => {
    for (const connectTimeoutMs of [-1, Number.NaN]) expect(() => client({ connectTimeoutMs })).toThrow(RangeError);
  });

  it('refuses every delay a timer does not take (past 2^31 − 1 ms, Infinity: it would fire at once), naming the option', () => {
    for (const name of ['connectTimeoutMs', 'subscribeTimeoutMs', 'keepaliveMs', 'keepaliveTimeoutMs', 'stableAfterMs', 'commandTimeoutMs', 'commandMarginMs'] as const) {
      for (const ms of [2 ** 31, Infinity]) expect(() => client({ [name]: ms })).toThrow(new RangeError(`${name} must be a number of ms from 0 to 2147483647 (24.8 days) (got ${ms})`));
      expect(() => client({ [name]: 2 ** 31 - 1 })).not.toThrow();
    }
    expect(() => client({ backoff: { initialMs: 2 ** 32 } })).toThrow(/^backoff\.maxMs must be at least initialMs, at most 2147483647/);
    expect(() => client({ backoff: { maxMs: Infinity } })).toThrow(/^backoff\.maxMs/);
  });

  it('after a 401 at the upgrade, says so and connects with the token the function gives next', async () => {
    fx.server.accept = (t) => t !== 'expired';
    const tokens = ['expired', 'fresh'];
    const { states } = client({ token: () => tokens.shift() ?? 'none' });
    const refused = await states.next(isClosed);
    expect(refused).toMatchObject({ state: 'closed', code: 1006, unauthorized: true });
    expect(isClosed(refused) && refused.reason).toMatch(/401/);
    await states.next(isOpen);
    expect(fx.server.tokens).toEqual(['expired', 'fresh']);
    expect(fx.server.connections.map((c) => c.token)).toEqual(['fresh']);
  });

  it('reports connecting, open and closed with the server’s code and reason, then reconnects', async () => {
    const { states } = client();
    const first = await fx.server.connection(1);
    await states.next(isOpen);
    first.close(4005, 'draining');
    const closed = await states.next(isClosed);
    expect(closed).toMatchObject({ state: 'closed', code: 4005, reason: 'draining', unauthorized: false });
    await states.next(isOpen, 2);
    expect(states.items.map((s) => s.state)).toEqual(['connecting', 'open', 'closed', 'connecting', 'open']);
    expect(states.items[3]).toEqual({ state: 'connecting', attempt: 1 });
  });

  it('says unauthorized when the server closes with 4007 (a revoked token)', async () => {
    const { states } = client();
    (await fx.server.connection(1)).close(4007, 'token_revoked');
    expect(await states.next(isClosed)).toMatchObject({ code: 4007, unauthorized: true });
  });

  it('grows the delay exponentially up to the cap, jittered by the random source', async () => {
    fx.server.accept = () => false;
    const { states } = client({ backoff: { initialMs: 8, maxMs: 32, factor: 2, jitter: 0.5 }, random: () => 0.5 });
    await states.next(isClosed, 5);
    // ceilings 8, 16, 32, 32, 32, each × (1 − 0.5 × 0.5)
    expect(states.items.filter(isClosed).slice(0, 5).map((s) => s.reconnectInMs)).toEqual([6, 12, 24, 24, 24]);
  });

  it('draws the jitter from the random source on every attempt', async () => {
    fx.server.accept = () => false;
    const draws = [0, 0.999, 0.5];
    const { states } = client({ backoff: { initialMs: 10, maxMs: 10, jitter: 1 }, random: () => draws.shift() ?? 0 });
    await states.next(isClosed, 3);
    expect(states.items.filter(isClosed).slice(0, 3).map((s) => s.reconnectInMs)).toEqual([10, 0, 5]);
  });

  it('starts the backoff over after a stable connection, and not after a short one', async () => {
    const delays = async (stableAfterMs: number) => {
      const { c, states } = client({ backoff: { initialMs: 8, maxMs: 64, factor: 2, jitter: 0 }, stableAfterMs });
      const base = fx.server.connections.length;
      for (let n = 1; n <= 3; n++) (await fx.server.connection(base + n)).close(1001);
      await states.next(isClosed, 3);
      await c.close();
      return states.items.filter(isClosed).slice(0, 3).map((s) => s.reconnectInMs);
    };
    expect(await delays(0)).toEqual([8, 8, 8]);
    expect(await delays(3_600_000)).toEqual([8, 16, 32]);
  });

  it('keeps trying when the token function fails, and reports why', async () => {
    let calls = 0;
    const { states } = client({
      token: () => {
        if (++calls === 1) throw new Error('no session');
        return 'tok';
      },
    });
    expect(await states.next(isClosed)).toMatchObject({ code: 1006, reason: 'token: no session' });
    await states.next(isOpen);
    expect(fx.server.connections).toHaveLength(1);
  });

  it('sends one sub for a home subscribed from a state listener as the socket opens', async () => {
    let c: HubtierClient | null = null;
    const opened = new Inbox<true>();
    const { c: made } = client({
      onState: (s) => {
        if (s.state !== 'open' || !c) return;
        c.subscribe('h1', { onEvent() {} });
        opened.push(true);
      },
    });
    c = made;
    const conn = await fx.server.connection(1);
    await opened.next(() => true);
    // a barrier: the client writes in order, so a second sub from the open would arrive before this
    void c.command('hub', 'd', { set: { on: true } }).catch(() => {});
    await conn.next((m) => m.op === 'cmd');
    expect(conn.received.filter((m) => m.op === 'sub')).toHaveLength(1);
  });

  it('close() closes with 1000, ends for good and refuses new work', async () => {
    const { c, states } = client();
    const conn = await fx.server.connection(1);
    await states.next(isOpen);
    await c.close();
    expect(await conn.closed).toMatchObject({ code: 1000 });
    expect(c.state).toMatchObject({ state: 'closed', reconnectInMs: null });
    await expect(c.command('hub', 'd', { set: { on: true } })).rejects.toMatchObject({ code: 'session_closed' });
    expect(() => c.subscribe('h1', { onEvent() {} })).toThrow(ClientError);
    expect(await c.close()).toBeUndefined(); // twice is fine
  });

  it('close() on a link that never answers the close resolves after keepaliveTimeoutMs', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      // a socket whose close handshake never completes (a dead link): no close event, ever
      const made: Mute[] = [];
      class Mute implements WebSocketLike {
        readyState = 0;
        closedWith: unknown[] | null = null;
        onopen: WebSocketLike['onopen'] = null;
        onmessage: WebSocketLike['onmessage'] = null;
        onclose: WebSocketLike['onclose'] = null;
        onerror: WebSocketLike['onerror'] = null;
        constructor() {
          made.push(this);
        }
        send(): void {}
        close(...args: unknown[]): void {
          this.closedWith = args;
          this.readyState = 2;
        }
      }
      const { c, states } = client({ WebSocket: Mute, keepaliveTimeoutMs: 4_000 });
      await new Promise<void>((resolve) => setImmediate(resolve));
      const ws = made[0]!;
      ws.readyState = 1;
      ws.onopen?.({});
      await states.next(isOpen);
      const done = c.close();
      expect(ws.closedWith).toEqual([1000, 'closed by the client']);
      await vi.advanceTimersByTimeAsync(4_000);
      await done;
      expect(c.state).toEqual({ state: 'closed', code: 1000, reason: 'closed by the client (the close was not answered within 4000 ms)', unauthorized: false, reconnectInMs: null });
      expect(made).toHaveLength(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('close() while waiting to reconnect ends at once, and no attempt follows', async () => {
    // the client's retry timer is faked, so the test can run past the delay without waiting for it
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      fx.server.accept = () => false;
      let calls = 0;
      const { c, states } = client({ token: () => `t${++calls}`, backoff: { initialMs: 60_000, maxMs: 60_000, jitter: 0 } });
      expect(await states.next(isClosed)).toMatchObject({ reconnectInMs: 60_000 });
      await c.close();
      vi.advanceTimersByTime(120_000);
      await Promise.resolve();
      expect(states.items.filter(isClosed).map((s) => s.reconnectInMs)).toEqual([60_000, null]);
      expect(calls).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('reconnectNow(): a client waiting out its backoff connects at once (review "clientlib": the network back, it waited up to maxMs)', async () => {
    fx.server.accept = () => false;
    const { c, states } = client({ backoff: { initialMs: 60_000, maxMs: 60_000, factor: 2, jitter: 0 } });
    expect(await states.next(isClosed)).toMatchObject({ reconnectInMs: 60_000 });
    fx.server.accept = () => true;
    c.reconnectNow();
    await states.next(isOpen);
    expect(states.items.map((s) => s.state)).toEqual(['connecting', 'closed', 'connecting', 'open']);
    // open: nothing to do but check the link, which answers
    c.reconnectNow();
    const conn = await fx.server.connection(fx.server.connections.length);
    const ping = await conn.next((m) => m.op === 'ping');
    conn.ok(ping.id, { ts: 0 });
    await c.close();
    c.reconnectNow();
    expect(states.items.at(-1)).toMatchObject({ state: 'closed', reconnectInMs: null });
  });

  it('reconnectNow() on an open link that died unnoticed pings at once and replaces it within keepaliveTimeoutMs', async () => {
    const { c, states } = client({ keepaliveMs: 600_000, keepaliveTimeoutMs: 20 });
    const first = await fx.server.connection(1);
    await states.next(isOpen);
    c.reconnectNow();
    await first.next((m) => m.op === 'ping');
    expect(await states.next(isClosed)).toMatchObject({ code: KEEPALIVE_CLOSE });
    await fx.server.connection(2);
  });

  it('pings after a silence and keeps a link that answers', async () => {
    const { states } = client({ keepaliveMs: 20, keepaliveTimeoutMs: 1_000 });
    const conn = await fx.server.connection(1);
    let answered = 0;
    await new Promise<void>((threeAnswered) =>
      conn.ws.on('message', (data) => {
        const m = JSON.parse(data.toString());
        if (m.op !== 'ping') return;
        conn.ok(m.id, { ts: 0 });
        if (++answered === 3) threeAnswered();
      }),
    );
    expect(fx.server.connections).toHaveLength(1);
    expect(states.items.filter(isClosed)).toEqual([]);
  });

  it('gives up a link that does not answer its ping (4100) and reconnects; subscriptions resume from their position', async () => {
    const { c, states } = client({ keepaliveMs: 20, keepaliveTimeoutMs: 20 });
    c.subscribe('home-1', { onEvent: () => {} });
    const first = await fx.server.connection(1);
    const sub = await first.sub('home-1');
    first.ok(sub.id, { pos: { epoch: 'e1', offset: 4 } });
    // the fake server answers nothing more: a dead link
    await first.next((m) => m.op === 'ping');
    const closed = await states.next(isClosed);
    expect(closed).toMatchObject({ state: 'closed', code: KEEPALIVE_CLOSE, unauthorized: false });
    const second = await fx.server.connection(2);
    expect(await second.sub('home-1')).toMatchObject({ since: { epoch: 'e1', offset: 4 } });
  });
});
