/**
 * A `sub` the node refuses, against a fake node: a temporary refusal (`busy`: the node's session
 * for the socket is full) keeps the subscription and its position and subscribes again after a
 * growing, jittered wait on the same socket; a refusal that is not temporary (`limit_exceeded`,
 * the 65th home of a socket) ends it. Until 2026-12-06 any refusal ended it for good.
 */
import { describe, expect, it } from 'vitest';
import type { ClientError, SubResult } from '../../src/client/index.js';
import { fakeServerPerTest, Inbox } from '../helpers/fake-app-server.js';

const fx = fakeServerPerTest();

const refuse = (code: string, num: number, temporary: boolean) => (id: number) => ({ op: 'err', id, code, num, temporary, msg: `refused ${code}` });
const busy = refuse('busy', 303, true);

describe('client sub refusals (fake server)', () => {
  it('a busy sub is sent again, with its position, after a backoff that grows; then it is answered and nothing ended', async () => {
    const waits: number[] = [];
    const c = fx.client({ backoff: { initialMs: 40, maxMs: 1_000, factor: 2, jitter: 0 }, keepaliveMs: 0 });
    const errors = new Inbox<ClientError>();
    const answers = new Inbox<SubResult>();
    const sub = c.subscribe('h1', { onEvent() {}, onError: errors.push, onSubscribed: answers.push }, { since: { epoch: 'e1', offset: 7 } });
    const conn = await fx.server.connection(1);
    let at = Date.now();
    for (let n = 0; n < 3; n++) {
      const req = await conn.sub('h1', n);
      if (n > 0) waits.push(Date.now() - at);
      expect(req.since).toEqual({ epoch: 'e1', offset: 7 });
      at = Date.now();
      if (n < 2) conn.send(busy(req.id));
      else conn.ok(req.id, { home: 'h1', pos: { epoch: 'e1', offset: 9 }, recovered: true });
    }
    expect(await sub.ready).toMatchObject({ home: 'h1', recovered: true });
    // the first retry after about initialMs, the second after about twice that (timers fire late, never early)
    expect(waits[0]).toBeGreaterThanOrEqual(39);
    expect(waits[1]).toBeGreaterThanOrEqual(79);
    expect(errors.items).toEqual([]);
    expect(answers.items).toHaveLength(1);
    expect(fx.server.connections).toHaveLength(1);
  });

  it('a sub refused limit_exceeded (not temporary) ends: onError, ready rejects, no sub sent again', async () => {
    const c = fx.client({ backoff: { initialMs: 5, maxMs: 10 }, keepaliveMs: 0 });
    const errors = new Inbox<ClientError>();
    const sub = c.subscribe('h65', { onEvent() {}, onError: errors.push });
    const conn = await fx.server.connection(1);
    conn.send(refuse('limit_exceeded', 108, false)((await conn.sub('h65')).id));
    await expect(sub.ready).rejects.toMatchObject({ code: 'limit_exceeded', temporary: false });
    expect(errors.items).toMatchObject([{ code: 'limit_exceeded' }]);
    await new Promise((r) => setTimeout(r, 60));
    expect(conn.received.filter((m) => m.op === 'sub')).toHaveLength(1);
  });

  it('unsubscribed while waiting to retry a busy sub: nothing more is sent for the home', async () => {
    const c = fx.client({ backoff: { initialMs: 30, maxMs: 30, jitter: 0 }, keepaliveMs: 0 });
    const sub = c.subscribe('h1', { onEvent() {} });
    sub.ready.catch(() => {});
    const conn = await fx.server.connection(1);
    conn.send(busy((await conn.sub('h1')).id));
    await new Promise((r) => setTimeout(r, 5));
    sub.unsubscribe();
    await new Promise((r) => setTimeout(r, 80));
    expect(conn.received.filter((m) => m.op === 'sub')).toHaveLength(1);
    await expect(sub.ready).rejects.toMatchObject({ code: 'session_closed' });
  });
});
