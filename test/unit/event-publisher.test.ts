/**
 * The event publisher: events go to the bus with their history position, in the order they were
 * published, through a history that answers at once (memory, embedded) or later (Redis); an event
 * the history refuses still goes out, without a position, and is counted. The rules see what goes
 * out, when it goes out: an event of a session taken over neither.
 */
import { describe, expect, it } from 'vitest';
import type { AppEventMessage } from '../../proto/app.js';
import { EventPublisher, type EventPublisherOptions } from '../../src/actors/event-publisher.js';
import { createLogger } from '../../src/log/logger.js';
import type { Bus } from '../../src/ports/bus/bus.js';
import { NotedLostError, StaleSessionError, type EventHistory, type EventSource, type Position } from '../../src/ports/history/history.js';
import { MemoryEventHistory } from '../../src/ports/history/history-memory.js';
import { positionOf } from '../../src/protocol/app-events.js';
import { decodeValue } from '../../src/protocol/codec.js';

const event = (n: number): AppEventMessage => ({ op: 'evt', kind: 'state', home: 'home-1', hub: 'hub-1', device: 'd1', attrs: { n }, version: n, ts: n });

function publisherOver(history: EventHistory | undefined, options?: EventPublisherOptions) {
  const sent: Array<{ subject: string; pos: Position | null; ts: number }> = [];
  const bus = { publish: (subject: string, data: Uint8Array) => sent.push({ subject, pos: positionOf(data), ts: (decodeValue(data) as { ts: number }).ts }) } as unknown as Bus;
  const seen: number[] = [];
  const publisher = new EventPublisher(bus, history, createLogger('silent'), (e) => seen.push(e.ts), options);
  return { publisher, sent, seen };
}

/**
 * A history whose appends resolve later (as Redis does), in call order; `fail` refuses appends;
 * an append whose source's epoch is below `newest` is refused as stale.
 */
function deferredHistory(fail: boolean | ((call: number) => boolean) = false, newest = 0): EventHistory & { sources: Array<EventSource | undefined> } {
  const memory = new MemoryEventHistory({ maxEvents: 10, maxAgeMs: 60_000 });
  const sources: Array<EventSource | undefined> = [];
  return {
    sources,
    retention: memory.retention,
    append: (home, data, source) => {
      sources.push(source);
      const stale = source !== undefined && source.epoch < newest;
      const fails = typeof fail === 'function' ? fail(sources.length) : fail;
      return new Promise((resolve, reject) => setTimeout(() => (fails ? reject(new Error('down')) : stale ? reject(new StaleSessionError(source)) : resolve(memory.append(home, data))), 1));
    },
    read: (...a) => memory.read(...a),
    position: (home) => memory.position(home),
    remove: (home) => memory.remove(home),
    close: () => memory.close(),
  };
}

describe('EventPublisher', () => {
  it('publishes in the same turn with the position of a history that answers at once', () => {
    const history = new MemoryEventHistory({ maxEvents: 10, maxAgeMs: 60_000 });
    const { publisher, sent, seen } = publisherOver(history);
    for (let n = 1; n <= 3; n++) publisher.publish(event(n), 1);
    expect(seen).toEqual([1, 2, 3]);
    expect(sent.map((s) => s.pos?.offset)).toEqual([1, 2, 3]);
    expect(sent[0]!.subject).toMatch(/home-1\.hub-1$/);
  });

  it('durable: with a history that answers later, resolves once the home\'s events published so far are appended (or given up on)', async () => {
    for (const fail of [false, true]) {
      const { publisher, sent } = publisherOver(deferredHistory(fail));
      publisher.publish(event(1), 1);
      publisher.publish(event(2), 1);
      await publisher.durable('home-1');
      expect(sent.map((s) => s.ts)).toEqual([1, 2]);
      // nothing under way for another home, or once done
      await publisher.durable('home-2');
      await publisher.durable('home-1');
    }
  });

  it('publishes in order once a later history answers, hands the rules each event then, and settles after the last', async () => {
    const { publisher, sent, seen } = publisherOver(deferredHistory());
    for (let n = 1; n <= 3; n++) publisher.publish(event(n), 1);
    expect([sent, seen]).toEqual([[], []]);
    await publisher.settled();
    expect(sent.map((s) => s.pos?.offset)).toEqual([1, 2, 3]);
    expect(seen).toEqual([1, 2, 3]);
  });

  it('publishes without a position what the history refuses, at once or later, and counts it', async () => {
    const throwing = new MemoryEventHistory({ maxEvents: 10, maxAgeMs: 60_000 });
    throwing.appendNow = () => {
      throw new Error('disk full');
    };
    const now = publisherOver(throwing);
    now.publisher.publish(event(1), 1);
    expect(now.sent).toEqual([{ subject: expect.any(String), pos: null, ts: 1 }]);
    expect(now.publisher.historyFailures).toBe(1);

    const later = publisherOver(deferredHistory(true));
    later.publisher.publish(event(1), 1);
    later.publisher.publish(event(2), 1);
    await later.publisher.settled();
    expect(later.sent.map((s) => s.pos)).toEqual([null, null]);
    expect(later.seen).toEqual([1, 2]); // published, so the rules see them too
    expect(later.publisher.historyFailures).toBe(2);
  });

  it('has the history note the home\'s events lost before it publishes one without a position (apps recovering from before it then reload), unless the history noted it itself', async () => {
    const order: string[] = [];
    const failing = (err: Error): EventHistory => ({
      ...deferredHistory(),
      append: () => new Promise((_, reject) => setTimeout(() => reject(err), 1)),
      noteLost: async (home) => void order.push(`noted ${home}`),
    });
    const bus = (history: EventHistory) => new EventPublisher({ publish: () => void order.push('published') } as unknown as Bus, history, createLogger('silent'), () => {});
    const down = bus(failing(new Error('Connection is closed.')));
    down.publish(event(1), 1);
    down.publish(event(2), 1);
    await down.settled();
    // one note, or one per failure as they come apart in time: a note first either way
    expect(order[0]).toBe('noted home-1');
    expect(order.filter((o) => o === 'published')).toHaveLength(2);
    order.length = 0;
    const late = bus(failing(new NotedLostError('reached redis late')));
    late.publish(event(1), 1);
    await late.settled();
    expect(order).toEqual(['published']);
  });

  it('holds an event until its lost note is made while Redis is away (tried again), and past the wait lets the next ones go without waiting', async () => {
    const order: string[] = [];
    let refuse = 2;
    const history: EventHistory = {
      ...deferredHistory(true),
      noteLost: async () => {
        if (refuse-- > 0) {
          order.push('note refused');
          throw new Error("Stream isn't writeable");
        }
        order.push('noted');
      },
    };
    const bus = { publish: () => void order.push('published') } as unknown as Bus;
    const publisher = new EventPublisher(bus, history, createLogger('silent'), () => {});
    publisher.publish(event(1), 1);
    await publisher.settled();
    // published only once the note was made: an app reading the position after it is told to reload
    expect(order).toEqual(['note refused', 'note refused', 'noted', 'published']);

    order.length = 0;
    const away: EventHistory = {
      ...history,
      noteLost: async () => {
        order.push('note refused');
        throw new Error('down');
      },
    };
    const waiting = new EventPublisher(bus, away, createLogger('silent'), () => {}, { lostNoteWaitMs: 30 });
    waiting.publish(event(1), 1);
    await waiting.settled();
    expect(order.at(-1)).toBe('published');
    expect(order.filter((o) => o === 'note refused').length).toBeGreaterThan(1);
    // the wait is spent: the next event is tried once and goes out
    order.length = 0;
    waiting.publish(event(2), 1);
    await waiting.settled();
    expect(order).toEqual(['note refused', 'published']);
  });

  it('publishes without a position after at most the wait when the lost note does not answer (a hung Redis)', async () => {
    const sent: number[] = [];
    const history: EventHistory = { ...deferredHistory(true), noteLost: () => new Promise(() => {}) };
    const publisher = new EventPublisher({ publish: () => void sent.push(1) } as unknown as Bus, history, createLogger('silent'), () => {}, { laterSessionWaitMs: 20, lostNoteWaitMs: 20 });
    publisher.publish(event(1), 1);
    await publisher.settled();
    expect(sent).toEqual([1]);
  });

  it('hands the history the hub and session of each event, and neither publishes nor hands the rules an event of a session taken over (counted)', async () => {
    const history = deferredHistory(false, 5);
    const { publisher, sent, seen } = publisherOver(history);
    publisher.publish(event(1), 4); // a session the history has seen a later one of
    publisher.publish(event(2), 5);
    await publisher.settled();
    expect(history.sources).toEqual([{ hub: 'hub-1', epoch: 4 }, { hub: 'hub-1', epoch: 5 }]);
    expect(sent.map((s) => s.pos?.offset)).toEqual([1]);
    expect(seen).toEqual([2]);
    expect([publisher.staleEvents, publisher.historyFailures]).toEqual([1, 0]);
  });

  it('asks the directory before it publishes without a position, and drops an event of a hub a later session holds (a node that froze with an append on the wire)', async () => {
    const asked: Array<[string, number]> = [];
    const { publisher, sent, seen } = publisherOver(deferredHistory(true), {
      laterSession: async (hub, epoch) => {
        asked.push([hub, epoch]);
        return epoch < 5;
      },
    });
    publisher.publish(event(1), 4);
    publisher.publish(event(2), 5);
    await publisher.settled();
    expect(asked).toEqual([['hub-1', 4], ['hub-1', 5]]);
    expect(sent.map((s) => [s.ts, s.pos])).toEqual([[2, null]]);
    expect(seen).toEqual([2]);
    expect([publisher.staleEvents, publisher.historyFailures]).toEqual([1, 1]);
  });

  it('keeps the order: events whose appends succeed after one that failed wait for the directory\'s answer about it', async () => {
    let answer: (later: boolean) => void = () => {};
    const { publisher, sent, seen } = publisherOver(deferredHistory((call) => call === 1), {
      laterSession: () => new Promise((resolve) => (answer = resolve)),
    });
    for (let n = 1; n <= 3; n++) publisher.publish(event(n), 1);
    await new Promise((r) => setTimeout(r, 5));
    expect(sent).toEqual([]);
    answer(false);
    await publisher.settled();
    expect(sent.map((s) => [s.ts, s.pos?.offset ?? null])).toEqual([[1, null], [2, 1], [3, 2]]);
    expect(seen).toEqual([1, 2, 3]);
    // the queue empty, an event goes out as its append answers
    publisher.publish(event(4), 1);
    await publisher.settled();
    expect(sent.map((s) => s.ts)).toEqual([1, 2, 3, 4]);
  });

  it('asks once for the events of one session that fail while its answer is awaited (a hung Redis)', async () => {
    let asked = 0;
    let answer: (later: boolean) => void = () => {};
    const { publisher, sent } = publisherOver(deferredHistory(true), {
      laterSession: () => {
        asked++;
        return new Promise((resolve) => (answer = resolve));
      },
    });
    for (let n = 1; n <= 3; n++) publisher.publish(event(n), 4);
    await new Promise((r) => setTimeout(r, 5));
    answer(true);
    await publisher.settled();
    expect(asked).toBe(1);
    expect(sent).toEqual([]);
    expect(publisher.staleEvents).toBe(3);
  });

  it('publishes without a position when the directory fails or is slower than its wait, and keeps the events\' order whatever order the answers come in', async () => {
    const answers: Array<(later: boolean) => void> = [];
    const { publisher, sent } = publisherOver(deferredHistory(true), {
      laterSessionWaitMs: 30,
      laterSession: (_hub, epoch) =>
        epoch === 1 ? new Promise(() => {}) : epoch === 2 ? Promise.reject(new Error('redis down')) : new Promise((resolve) => answers.push(resolve)),
    });
    for (let n = 1; n <= 4; n++) publisher.publish(event(n), n);
    // the answers of the last two come first, the last one's before the third's
    await new Promise((r) => setTimeout(r, 5));
    answers[1]!(false);
    answers[0]!(false);
    await publisher.settled();
    expect(sent.map((s) => [s.ts, s.pos])).toEqual([[1, null], [2, null], [3, null], [4, null]]);
  });

  it('publishes without a position when there is no history', () => {
    const { publisher, sent } = publisherOver(undefined);
    publisher.publish(event(1), 1);
    expect(sent).toEqual([{ subject: expect.any(String), pos: null, ts: 1 }]);
  });
});
