/**
 * An app socket's link closes the socket at the first message uWS drops (past its backpressure
 * limit), and sends nothing after it: kept open, later answers went out once the socket drained,
 * and the app saw a gap (pings past the 99,883rd unanswered, later ones answered). The real-server
 * test (test/integration/app-answers-backpressure.test.ts) cannot tell this close from uWS's own
 * `closeOnBackpressureLimit`, which shuts the socket in that flow too.
 */
import { describe, expect, it } from 'vitest';
import { CloseCode } from '../../proto/errors.js';
import { UwsAppLink } from '../../src/transport/app-gateway.js';
import { WriteBatch } from '../../src/transport/write-batch.js';
import type { WebSocket } from '../../src/transport/uws.js';

/** uWS's send statuses: written, buffered (backpressure), dropped */
const SENT = 0;
const DROPPED = 2;

/** A uWS socket whose sends answer `statuses` in turn (then SENT), recording what was sent and the end. */
function fakeSocket(statuses: number[]) {
  const sent: string[] = [];
  const ends: Array<[number, string]> = [];
  const ws = {
    getUserData: () => ({ remote: '127.0.0.1' }),
    cork: (fn: () => void) => fn(),
    send: (payload: string | Uint8Array) => {
      const status = statuses.shift() ?? SENT;
      if (status !== DROPPED) sent.push(String(payload));
      return status;
    },
    getBufferedAmount: () => 0,
    end: (code: number, reason: string) => void ends.push([code, reason]),
    subscribe: () => true,
    unsubscribe: () => true,
  };
  return { ws: ws as unknown as WebSocket<never>, sent, ends };
}

const ids = (sent: string[]) => sent.map((s) => (JSON.parse(s) as { id: number }).id);

describe('an app socket past its backpressure limit', () => {
  it('is closed 4009 at the first answer dropped, and no later answer is sent', () => {
    const { ws, sent, ends } = fakeSocket([SENT, SENT, DROPPED]);
    const writes = new WriteBatch((err) => {
      throw err;
    });
    const link = new UwsAppLink(ws as never, 'json', writes, 512, () => {});
    for (let id = 0; id < 5; id++) link.reply({ op: 'ok', id });
    writes.flush();
    expect(ids(sent)).toEqual([0, 1]);
    expect(ends).toEqual([[CloseCode.backpressure, 'backpressure']]);
    expect(link.open).toBe(false);
  });

  it('stops a recovery at the event dropped and closes, sending nothing after it', () => {
    const { ws, sent, ends } = fakeSocket([SENT, DROPPED]);
    const link = new UwsAppLink(ws as never, 'msgpack', new WriteBatch(() => {}), 1 << 20, () => {});
    const feed = link.subscriber('home-1', 7, () => true);
    // four events, each an empty msgpack array (what they hold does not matter here)
    const events = [1, 2, 3, 4].map(() => new Uint8Array([0x90]));
    expect(feed.send(events, 0)).toBe(1);
    expect(ends).toEqual([[CloseCode.backpressure, 'backpressure']]);
    expect(feed.open).toBe(false);
    expect(feed.send(events, 1)).toBe(3);
    expect(sent).toHaveLength(1);
  });
});
