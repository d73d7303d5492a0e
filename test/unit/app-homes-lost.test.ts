/**
 * An app session whose token loses one home of several (a revocation by home): its subscription to
 * that home ends in place (the feed released, the topic left, an `end` message that fits the
 * AsyncAPI document), later requests for that home are refused `forbidden`, and the other homes go
 * on. A home it was not subscribed to ends silently.
 */
import { describe, expect, it } from 'vitest';
import type { AppEndMessage, AppReply, AppRequest } from '../../proto/app.js';
import { AppSession, type AppLink, type FeedSubscriber } from '../../src/actors/app-session.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { createLogger } from '../../src/log/logger.js';
import { misfit } from '../helpers/asyncapi.js';

class RecordingLink implements AppLink {
  open = true;
  readonly sent: Array<AppReply | AppEndMessage> = [];
  readonly left: string[] = [];
  reply(msg: AppReply | AppEndMessage): void {
    this.sent.push(msg);
  }
  subscriber(homeId: string, id: number, wanted: () => boolean): FeedSubscriber {
    return {
      get open() {
        return wanted();
      },
      answer: (result) => this.sent.push({ op: 'ok', id, result }),
      send: () => 0,
      drained: async () => {},
      reload: () => {},
      join: () => {},
    };
  }
  leave(homeId: string): void {
    this.left.push(homeId);
  }
  closeAfterReplies(): void {
    this.open = false;
  }
}

function session() {
  const timers = new TimerWheel();
  const link = new RecordingLink();
  const held = new Map<string, number>();
  const hubs: Record<string, string> = { 'hub-1': 'h1', 'hub-2': 'h2' };
  const s = new AppSession(
    { kind: 'user', sub: 'ann', homes: new Set(['h1', 'h2', 'toString']), iat: 100 },
    link,
    {
      system: { timers, log: createLogger('silent'), mailboxSize: 16 },
      feeds: {
        acquire: (h) => void held.set(h, (held.get(h) ?? 0) + 1),
        release: (h) => void held.set(h, held.get(h)! - 1),
        position: () => null,
        catchUp: async (_h, _since, sub) => (sub.answer({ home: _h, pos: null }), true),
      },
      sendCommand: async () => 'ran',
      homeOf: async (hub) => hubs[hub] ?? null,
      commandTimeoutMs: 1_000,
      maxSubscriptions: 4,
    },
    'app:test',
  );
  const request = (request: AppRequest) => s.tell({ type: 'request', request });
  const settle = () => new Promise((r) => setTimeout(r, 0));
  return { s, link, held, request, settle, timers };
}

describe('an app session whose token loses a home', () => {
  it('ends that subscription in place, refuses the home from then on, and keeps the others', async () => {
    const { s, link, held, request, settle, timers } = session();
    request({ op: 'sub', id: 1, home: 'h1' });
    request({ op: 'sub', id: 2, home: 'h2' });
    await settle();
    expect(link.sent.map((m) => m.op)).toEqual(['ok', 'ok']);

    // h1 subscribed, toString not: only h1 gets an `end`
    s.tell({ type: 'homesLost', homes: ['h1', 'toString'] });
    const end = link.sent[2]!;
    expect(end).toEqual({ op: 'end', home: 'h1', code: 'forbidden', num: 201, temporary: false, msg: 'the token no longer grants home h1 (revoked)' });
    expect(misfit('sendEnd', end)).toEqual([]);
    expect(link.sent).toHaveLength(3);
    expect(link.left).toEqual(['h1']);
    expect(Object.fromEntries(held)).toEqual({ h1: 0, h2: 1 });
    expect([...(s.principal as { homes: ReadonlySet<string> }).homes]).toEqual(['h2']);

    // from then on: h1 refused, h2 as before
    request({ op: 'sub', id: 3, home: 'h1' });
    request({ op: 'cmd', id: 4, hub: 'hub-1', device: 'lamp', set: { on: true } });
    request({ op: 'cmd', id: 5, hub: 'hub-2', device: 'lamp', set: { on: true } });
    request({ op: 'sub', id: 6, home: 'h2' });
    await settle();
    const byId = (id: number) => link.sent.find((m) => 'id' in m && m.id === id);
    expect(byId(3)).toMatchObject({ op: 'err', code: 'forbidden' });
    expect(byId(4)).toMatchObject({ op: 'err', code: 'forbidden' });
    expect(byId(5)).toMatchObject({ op: 'ok', result: 'ran' });
    expect(byId(6)).toMatchObject({ op: 'ok' });
    expect(link.open).toBe(true);

    s.tell({ type: 'closed' });
    expect(Object.fromEntries(held)).toEqual({ h1: 0, h2: 0 });
    timers.close();
  });
});
