/**
 * The client's positions and recovery against a fake node: resubscribing with `since`, dropping
 * duplicates, closing gaps, and telling the app to reload. The fake plays the server's part message
 * by message; every wait is on a message or an event, never on time.
 */
import { describe, expect, it } from 'vitest';
import type { AppEventMessage } from '../../proto/app.js';
import { ClientError, HubtierClient, type ReloadInfo, type SubResult } from '../../src/client/index.js';
import { fakeServerPerTest, Inbox, type FakeConnection } from '../helpers/fake-app-server.js';

const fx = fakeServerPerTest();

const client = (): HubtierClient => fx.client();

/** Subscribes to `home` and collects what its handlers receive. */
function listen(c: HubtierClient, home = 'h1') {
  const events = new Inbox<AppEventMessage>();
  const reloads = new Inbox<ReloadInfo>();
  const answers = new Inbox<SubResult>();
  const errors = new Inbox<ClientError>();
  const sub = c.subscribe(home, { onEvent: events.push, onReload: reloads.push, onSubscribed: answers.push, onError: errors.push });
  const offsets = () => events.items.map((e) => e.pos?.offset ?? null);
  /** waits until the event at `offset` was delivered (a barrier: everything sent before it was handled) */
  const reached = (offset: number) => events.next((e) => e.pos?.offset === offset);
  return { sub, events, reloads, answers, errors, offsets, reached };
}

/** Answers the n-th `sub` of home on conn with `result`, returning that request. */
async function answerSub(conn: FakeConnection, result: Partial<SubResult>, n = 0, home = 'h1'): Promise<any> {
  const req = await conn.sub(home, n);
  conn.ok(req.id, { home, ...result });
  return req;
}

describe('client positions and recovery (fake server)', () => {
  it('starts from the position of the first answer, and resubscribes with since the last event after a drop', async () => {
    const c = client();
    const l = listen(c);
    const first = await fx.server.connection(1);
    const req = await answerSub(first, { pos: { epoch: 'e1', offset: 4 } });
    expect(req.since).toBeUndefined();
    expect(await l.sub.ready).toEqual({ home: 'h1', pos: { epoch: 'e1', offset: 4 } });
    first.evt('h1', 5);
    first.evt('h1', 6);
    await l.reached(6);
    first.close(1001, 'going away');

    const second = await fx.server.connection(2);
    // as a node answers: pos is where the events it sends begin (since), the missed ones follow uncounted
    const again = await answerSub(second, { pos: { epoch: 'e1', offset: 6 }, recovered: true });
    expect(again.since).toEqual({ epoch: 'e1', offset: 6 });
    second.evt('h1', 7);
    second.evt('h1', 8);
    second.evt('h1', 9);
    await l.reached(9);
    expect(l.offsets()).toEqual([5, 6, 7, 8, 9]);
    expect(l.reloads.items).toEqual([]);
    expect(l.answers.items.map((a) => a.recovered)).toEqual([undefined, true]);
    expect(l.sub.position).toEqual({ epoch: 'e1', offset: 9 });
  });

  it('asks to carry its position into an epoch the history continues, and goes on in that epoch when the answer says so, without a reload', async () => {
    const l = listen(client());
    const first = await fx.server.connection(1);
    await answerSub(first, { pos: { epoch: 'e1', offset: 4 } });
    first.evt('h1', 5);
    await l.reached(5);
    first.close(1001, 'going away');
    // the node stopped uncleanly: a new epoch, which continues e1 up to what it kept
    const second = await fx.server.connection(2);
    const again = await answerSub(second, { pos: { epoch: 'e2', offset: 5 }, recovered: true });
    expect(again).toMatchObject({ since: { epoch: 'e1', offset: 5 }, carry: true });
    second.evt('h1', 6, {}, 'e2');
    second.evt('h1', 7, {}, 'e2');
    await l.reached(7);
    expect(l.offsets()).toEqual([5, 6, 7]);
    expect(l.reloads.items).toEqual([]);
    expect(l.sub.position).toEqual({ epoch: 'e2', offset: 7 });
    // a late event of the epoch left is dropped quietly: no gap asked about
    second.evt('h1', 6, {}, 'e1');
    second.evt('h1', 8, {}, 'e2');
    await l.reached(8);
    expect(l.offsets()).toEqual([5, 6, 7, 8]);
  });

  it('drops an event whose offset it has delivered already', async () => {
    const l = listen(client());
    const conn = await fx.server.connection(1);
    await answerSub(conn, { pos: { epoch: 'e1', offset: 4 } });
    for (const o of [5, 5, 4, 3, 6, 6]) conn.evt('h1', o);
    conn.evt('h1', 7);
    await l.reached(7);
    expect(l.offsets()).toEqual([5, 6, 7]);
  });

  it('resubscribes with since on a gap, holds the event past it, and delivers all in order once', async () => {
    const l = listen(client());
    const conn = await fx.server.connection(1);
    await answerSub(conn, { pos: { epoch: 'e1', offset: 4 } });
    conn.evt('h1', 5);
    conn.evt('h1', 7); // 6 went missing
    const resub = await answerSub(conn, { pos: { epoch: 'e1', offset: 5 }, recovered: true }, 1);
    expect(resub.since).toEqual({ epoch: 'e1', offset: 5 });
    conn.evt('h1', 6);
    conn.evt('h1', 7); // the recovery repeats 7, which the client holds already
    conn.evt('h1', 8);
    await l.reached(8);
    expect(l.offsets()).toEqual([5, 6, 7, 8]);
    expect(l.reloads.items).toEqual([]);
    // one resubscription for the one gap, after an unsub: a node answers a second sub of a home without recovering
    expect(conn.received.filter((m) => m.op !== 'cmd').map((m) => m.op)).toEqual(['sub', 'unsub', 'sub']);
  });

  it('calls onReload when the server cannot recover, and goes on from the position it gave', async () => {
    const l = listen(client());
    const first = await fx.server.connection(1);
    await answerSub(first, { pos: { epoch: 'e1', offset: 1 } });
    first.evt('h1', 2);
    await l.reached(2);
    first.close(1011, 'internal');
    const second = await fx.server.connection(2);
    const req = await answerSub(second, { pos: { epoch: 'e1', offset: 40 }, recovered: false, reason: 'too_old' });
    expect(req.since).toEqual({ epoch: 'e1', offset: 2 });
    expect(await l.reloads.next(() => true)).toEqual({ reason: 'too_old', pos: { epoch: 'e1', offset: 40 } });
    second.evt('h1', 40); // at the reload's position: part of the snapshot
    second.evt('h1', 41);
    await l.reached(41);
    expect(l.offsets()).toEqual([2, 41]);
  });

  it('calls onReload on a reload message and continues in the new epoch, dropping the old one', async () => {
    const l = listen(client());
    const conn = await fx.server.connection(1);
    await answerSub(conn, { pos: { epoch: 'e1', offset: 3 } });
    conn.send({ op: 'reload', home: 'h1', reason: 'epoch_changed', pos: { epoch: 'e2', offset: 0 } });
    conn.evt('h1', 4, {}, 'e1');
    conn.evt('h1', 1, {}, 'e2');
    await l.events.next(() => true);
    expect(l.reloads.items).toEqual([{ reason: 'epoch_changed', pos: { epoch: 'e2', offset: 0 } }]);
    expect(l.events.items.map((e) => e.pos)).toEqual([{ epoch: 'e2', offset: 1 }]);
  });

  it("takes a reload of a reason it does not know (a newer server's) as a reload, and goes on in the new epoch", async () => {
    const l = listen(client());
    const conn = await fx.server.connection(1);
    await answerSub(conn, { pos: { epoch: 'e1', offset: 3 } });
    conn.send({ op: 'reload', home: 'h1', reason: 'compacted', pos: { epoch: 'e2', offset: 100 } });
    conn.evt('h1', 101, {}, 'e2');
    await l.reached(101);
    expect(l.reloads.items).toEqual([{ reason: 'unavailable', pos: { epoch: 'e2', offset: 100 } }]);
  });

  it('asks where it stands when events come of an epoch no reload announced, and drops late ones of an epoch it left quietly', async () => {
    const c = client();
    const l = listen(c);
    const conn = await fx.server.connection(1);
    await answerSub(conn, { pos: { epoch: 'e1', offset: 3 } });
    // a reload it could not read (lost, or garbled): only the new epoch's events arrive
    conn.evt('h1', 8, {}, 'e2');
    const resub = await answerSub(conn, { pos: { epoch: 'e2', offset: 8 }, recovered: false, reason: 'epoch_changed' }, 1);
    expect(resub.since).toEqual({ epoch: 'e1', offset: 3 });
    expect(await l.reloads.next(() => true)).toEqual({ reason: 'epoch_changed', pos: { epoch: 'e2', offset: 8 } });
    // a late event of the epoch it left asks nothing; the next of e2 is delivered
    conn.evt('h1', 4, {}, 'e1');
    conn.evt('h1', 9, {}, 'e2');
    await l.reached(9);
    expect(l.offsets()).toEqual([9]);
    // a barrier: a later request reaches the fake after any sub the late event might have sent
    c.subscribe('h2', { onEvent: () => {} });
    await conn.sub('h2');
    expect(conn.received.filter((m: any) => m.op === 'sub' && m.home === 'h1')).toHaveLength(2);
  });

  it('asks once for a stray event of an unknown epoch that a recovery in the same epoch answers: no resubscription on every later event (review diff8)', async () => {
    const c = client();
    const l = listen(c);
    const conn = await fx.server.connection(1);
    await answerSub(conn, { pos: { epoch: 'e1', offset: 3 } });
    conn.evt('h1', 50, {}, 'e0'); // a stray event of an epoch this client never saw
    await answerSub(conn, { pos: { epoch: 'e1', offset: 3 }, recovered: true }, 1);
    for (let o = 4; o <= 12; o++) conn.evt('h1', o);
    await l.reached(12);
    c.subscribe('h2', { onEvent: () => {} });
    await conn.sub('h2');
    expect(conn.received.filter((m: any) => m.op === 'sub' && m.home === 'h1')).toHaveLength(2);
    expect(l.offsets()).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12]);
  });

  it('resubscribes with since holding only epoch and offset, whatever else a position carried', async () => {
    const l = listen(client());
    const first = await fx.server.connection(1);
    await answerSub(first, { pos: { epoch: 'e1', offset: 4 } });
    first.evt('h1', 5, { pos: { epoch: 'e1', offset: 5, shard: 3 } });
    await l.reached(5);
    first.close(1001, 'going away');
    const again = await answerSub(await fx.server.connection(2), { pos: { epoch: 'e1', offset: 5 }, recovered: true });
    expect(again.since).toEqual({ epoch: 'e1', offset: 5 });
  });

  it('delivers events without a position and does not move the position', async () => {
    const l = listen(client());
    const conn = await fx.server.connection(1);
    await answerSub(conn, { pos: { epoch: 'e1', offset: 3 } });
    conn.evt('h1', null, { device: 'no-pos' });
    conn.evt('h1', 4);
    await l.reached(4);
    expect(l.events.items.map((e) => (e.kind === 'state' ? e.device : ''))).toEqual(['no-pos', 'd1']);
    expect(l.sub.position).toEqual({ epoch: 'e1', offset: 4 });
  });

  it('tells the app to reload after a reconnect when the server keeps no positions', async () => {
    const l = listen(client());
    const first = await fx.server.connection(1);
    await answerSub(first, {}); // an answer of a node without history: {home}
    first.close(1001);
    const second = await fx.server.connection(2);
    const req = await answerSub(second, {});
    expect(req.since).toBeUndefined();
    expect(await l.reloads.next(() => true)).toEqual({ reason: 'unavailable', pos: null });
  });

  it('ends a subscription the server refuses: ready rejects, onError hears it, no resubscription after a reconnect', async () => {
    const c = client();
    const l = listen(c, 'h1');
    listen(c, 'h2');
    const first = await fx.server.connection(1);
    const req = await first.sub('h1');
    first.send({ op: 'err', id: req.id, code: 'forbidden', num: 201, temporary: false, msg: 'not yours' });
    const err = await l.sub.ready.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect(err).toMatchObject({ code: 'forbidden', num: 201, temporary: false, message: 'not yours' });
    expect(l.errors.items).toEqual([err]);
    first.close(1001);
    const second = await fx.server.connection(2);
    await second.sub('h2');
    expect(second.received.filter((m) => m.op === 'sub').map((m) => m.home)).toEqual(['h2']);
  });

  it('shares one subscription per home; the last unsubscribe sends unsub and stops delivery', async () => {
    const c = client();
    const a = listen(c);
    const b = listen(c);
    const conn = await fx.server.connection(1);
    await answerSub(conn, { pos: { epoch: 'e1', offset: 0 } });
    expect(await b.sub.ready).toMatchObject({ home: 'h1' });
    conn.evt('h1', 1);
    await Promise.all([a.reached(1), b.reached(1)]);
    a.sub.unsubscribe();
    conn.evt('h1', 2);
    await b.reached(2);
    expect(a.offsets()).toEqual([1]);
    b.sub.unsubscribe();
    expect(await conn.next((m) => m.op === 'unsub')).toMatchObject({ home: 'h1' });
    expect(conn.received.filter((m) => m.op === 'sub')).toHaveLength(1);
  });

  it('subscribes from a stored position (since) on the first sub too, again after a drop before the answer, and reloads when not recovered', async () => {
    const c = client();
    const events = new Inbox<AppEventMessage>();
    const reloads = new Inbox<ReloadInfo>();
    // a stored position may carry more than the protocol's two fields: only those are sent
    const stored = { epoch: 'e1', offset: 7, savedAt: 123 };
    const sub = c.subscribe('h1', { onEvent: events.push, onReload: reloads.push }, { since: stored });
    expect(sub.position).toEqual({ epoch: 'e1', offset: 7 });
    const first = await fx.server.connection(1);
    expect((await first.sub('h1')).since).toEqual({ epoch: 'e1', offset: 7 });
    first.close(1001);
    const second = await fx.server.connection(2);
    const req = await answerSub(second, { pos: { epoch: 'e2', offset: 30 }, recovered: false, reason: 'epoch_changed' });
    expect(req.since).toEqual({ epoch: 'e1', offset: 7 });
    expect(await sub.ready).toMatchObject({ recovered: false, reason: 'epoch_changed' });
    expect(reloads.items).toEqual([{ reason: 'epoch_changed', pos: { epoch: 'e2', offset: 30 } }]);
    second.evt('h1', 31, {}, 'e2');
    await events.next((e) => e.pos?.offset === 31);
    expect(sub.position).toEqual({ epoch: 'e2', offset: 31 });
  });

  it('refuses a since that is not a position with invalid_field, before sending anything', async () => {
    const c = client();
    for (const since of [{ epoch: 'e1', offset: -1 }, { epoch: 7, offset: 1 }, { epoch: 'e1', offset: 1.5 }]) {
      expect(() => c.subscribe('h1', { onEvent() {} }, { since: since as never })).toThrow(expect.objectContaining({ code: 'invalid_field', field: 'since' }));
    }
    const conn = await fx.server.connection(1);
    // a barrier: the client writes in order, so a sub made before would arrive before this
    void c.command('hub', 'd', { set: { on: true } }).catch(() => {});
    await conn.next((m) => m.op === 'cmd');
    expect(conn.received.filter((m) => m.op === 'sub')).toEqual([]);
  });
});
