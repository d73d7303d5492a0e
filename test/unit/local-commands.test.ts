import { describe, expect, it } from 'vitest';
import { withLocalCommands } from '../../src/actors/local-commands.js';
import { SessionIndex } from '../../src/actors/session-index.js';
import { BusUnavailableError, RequestTimeoutError, type Bus, type BusMessage } from '../../src/ports/bus/bus.js';
import { TierError } from '../../src/errors.js';

/** A bus whose requests fail with `failure` (or answer [1] when it is null); counts them. */
function busFailingWith(failure: () => Error | null): Bus & { requests: string[] } {
  const requests: string[] = [];
  return {
    requests,
    publish() {},
    subscribe: () => ({ unsubscribe() {} }),
    async request(subject) {
      requests.push(subject);
      const err = failure();
      if (err) throw err;
      return Uint8Array.from([1]);
    },
    flush: async () => {},
    close: async () => {},
  };
}

/** A session of hub `hubId` that answers each command with its bytes reversed, or never when `silent`. */
function sessionOf(hubId: string, silent = false) {
  const seen: BusMessage[] = [];
  return {
    hubId,
    seen,
    onBusMessage(msg: BusMessage) {
      seen.push(msg);
      if (!silent) msg.respond(Uint8Array.from(msg.data).reverse());
    },
  };
}

describe('withLocalCommands', () => {
  it('hands a command to the session held here when the bus is down, and answers with what it responds', async () => {
    const sessions = new SessionIndex<ReturnType<typeof sessionOf>>();
    const hub = sessionOf('hub-1');
    sessions.claim(hub);
    const bus = withLocalCommands(busFailingWith(() => new BusUnavailableError('hub.hub-1.cmd')), sessions);
    expect(Array.from(await bus.request('hub.hub-1.cmd', Uint8Array.from([1, 2, 3]), 1_000))).toEqual([3, 2, 1]);
    expect(hub.seen.map((m) => [m.subject, m.replyTo === undefined])).toEqual([['hub.hub-1.cmd', false]]);
  });

  it('goes over the bus while it is up, even for a hub held here: the bus decides which session is current', async () => {
    const sessions = new SessionIndex<ReturnType<typeof sessionOf>>();
    const hub = sessionOf('hub-1');
    sessions.claim(hub);
    const inner = busFailingWith(() => null);
    const bus = withLocalCommands(inner, sessions);
    expect(Array.from(await bus.request('hub.hub-1.cmd', Uint8Array.from([9]), 1_000))).toEqual([1]);
    expect(inner.requests).toEqual(['hub.hub-1.cmd']);
    expect(hub.seen).toEqual([]);
  });

  it('passes the failure on for a hub not held here, for other subjects, and for other failures', async () => {
    const sessions = new SessionIndex<ReturnType<typeof sessionOf>>();
    const hub = sessionOf('hub-1');
    sessions.claim(hub);
    const down = withLocalCommands(busFailingWith(() => new BusUnavailableError('x')), sessions);
    await expect(down.request('hub.hub-2.cmd', Uint8Array.from([1]), 1_000)).rejects.toBeInstanceOf(BusUnavailableError);
    await expect(down.request('hub.hub-1.takeover', Uint8Array.from([1]), 1_000)).rejects.toBeInstanceOf(BusUnavailableError);
    const other = withLocalCommands(busFailingWith(() => new TierError('draining')), sessions);
    await expect(other.request('hub.hub-1.cmd', Uint8Array.from([1]), 1_000)).rejects.toMatchObject({ code: 'draining' });
    expect(hub.seen).toEqual([]);
  });

  it('times out a command its session does not answer, and takes no answer after that', async () => {
    const sessions = new SessionIndex<ReturnType<typeof sessionOf>>();
    const hub = sessionOf('hub-1', true);
    sessions.claim(hub);
    const bus = withLocalCommands(busFailingWith(() => new BusUnavailableError('x')), sessions);
    await expect(bus.request('hub.hub-1.cmd', Uint8Array.from([1]), 20)).rejects.toBeInstanceOf(RequestTimeoutError);
    expect(hub.seen[0]!.respond(Uint8Array.from([1]))).toBe(false);
  });
});
