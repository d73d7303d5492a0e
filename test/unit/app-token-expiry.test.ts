/**
 * An app socket outlives the check of its token at the upgrade: its session enforces `exp` (RFC
 * 7519: not accepted on or after it). On a fake wall clock and a fake timer wheel: a request after
 * `exp` is refused `unauthorized` and the socket closed 4007 `token_expired` even when the wheel
 * has not fired yet; the wheel closes an idle socket at `exp`; a wheel that runs ahead of the wall
 * clock does not close early; tokens that never expire hold no timer, and a closed session's timer
 * is cancelled (nothing is left on the wheel).
 */
import { describe, expect, it } from 'vitest';
import type { AppReply } from '../../proto/app.js';
import { CloseCode } from '../../proto/errors.js';
import { AppSession, type AppLink, type FeedSubscriber } from '../../src/actors/app-session.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import type { Principal } from '../../src/auth/authenticator.js';
import { createLogger } from '../../src/log/logger.js';

/** Wall clock and wheel clock start apart: the session must use the wall clock for `exp`. */
const WALL_START = 1_750_000_000_000;
const EXP_S = WALL_START / 1000 + 60;

class RecordingLink implements AppLink {
  open = true;
  readonly replies: AppReply[] = [];
  readonly closes: string[] = [];
  reply(msg: AppReply): void {
    if (this.open) this.replies.push(msg);
  }
  subscriber(): FeedSubscriber {
    throw new Error('not used');
  }
  leave(): void {}
  closeAfterReplies(code: number, reason: string): void {
    if (!this.open) return;
    this.open = false;
    this.closes.push(`${code} ${reason}`);
  }
}

function session(principal: Principal) {
  const clocks = { wall: WALL_START, wheel: 5_000 };
  const timers = new TimerWheel({ now: () => clocks.wheel });
  const link = new RecordingLink();
  const s = new AppSession(
    principal,
    link,
    {
      system: { timers, log: createLogger('silent'), mailboxSize: 16, now: () => clocks.wall },
      feeds: { acquire() {}, release() {}, position: () => null, catchUp: async () => true },
      sendCommand: async () => 'ran',
      homeOf: async () => 'h1',
      commandTimeoutMs: 1_000,
      maxSubscriptions: 4,
    },
    'app:test',
  );
  /** both clocks move on by `ms` and the wheel fires what is due */
  const pass = (ms: number) => {
    clocks.wall += ms;
    clocks.wheel += ms;
    timers.advance();
  };
  const ping = (id: number) => s.tell({ type: 'request', request: { op: 'ping', id } });
  return { s, link, timers, clocks, pass, ping };
}

const user = (exp?: number): Principal => ({ kind: 'user', sub: 'ann', homes: new Set(['h1']), ...(exp === undefined ? {} : { exp }) });

describe('an app session enforces its token’s exp', () => {
  it('refuses a request made at exp with its id and closes 4007 token_expired, though the wheel has not fired', () => {
    const { link, clocks, ping, timers } = session(user(EXP_S));
    clocks.wall = EXP_S * 1000 - 1;
    ping(1);
    expect(link.replies).toMatchObject([{ op: 'ok', id: 1 }]);
    // the wall clock reaches exp; the wheel has not moved (its timer is late, or not due on its clock)
    clocks.wall = EXP_S * 1000;
    ping(2);
    expect(link.replies[1]).toMatchObject({ op: 'err', id: 2, code: 'unauthorized', num: 200, temporary: false, msg: 'token expired' });
    expect(link.closes).toEqual([`${CloseCode.unauthorized} token_expired`]);
    expect(timers.size).toBe(1);
  });

  it('closes an idle socket at exp, within the slack of a second', () => {
    const { link, pass, timers } = session(user(EXP_S));
    pass(59_999);
    expect(link.closes).toEqual([]);
    pass(1_010);
    expect(link.closes).toEqual([`${CloseCode.unauthorized} token_expired`]);
    expect(timers.size).toBe(0);
  });

  it('waits for the wall clock when the wheel runs ahead of it', () => {
    const { link, clocks, timers, pass } = session(user(EXP_S));
    clocks.wheel += 61_010;
    timers.advance();
    expect(link.closes).toEqual([]);
    expect(timers.size).toBe(1);
    // the rest of the wall clock's minute, then it closes
    pass(59_990);
    expect(link.closes).toEqual([]);
    pass(1_020);
    expect(link.closes).toEqual([`${CloseCode.unauthorized} token_expired`]);
  });

  it('a closed session leaves nothing on the wheel; the admin token and tokens without exp hold no timer', () => {
    const open = session(user(EXP_S));
    expect(open.timers.size).toBe(1);
    open.s.tell({ type: 'closed' });
    expect(open.timers.size).toBe(0);
    for (const principal of [{ kind: 'admin' } as const, user()]) {
      const { timers, link, pass, ping } = session(principal);
      expect(timers.size).toBe(0);
      pass(86_400_000);
      ping(1);
      expect(link.replies).toMatchObject([{ op: 'ok', id: 1 }]);
      expect(link.closes).toEqual([]);
    }
  });
});
