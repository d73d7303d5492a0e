/**
 * The services' event stream `<prefix>events` (channel `eventStream` of proto/asyncapi.yaml) as a
 * real redis-server holds it: events of two homes go through the EventPublisher into a
 * RedisEventHistory, the stream is read back with XRANGE, and every entry, with its event, is
 * checked against the document and against the position the bus carried.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import type { AppEventMessage } from '../../proto/app.js';
import { EventPublisher } from '../../src/actors/event-publisher.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { createLogger } from '../../src/log/logger.js';
import { MemoryBus } from '../../src/ports/bus/bus-memory.js';
import { RedisEventHistory } from '../../src/ports/history/history-redis.js';
import { closeRedis, connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { positionOf, withPosition } from '../../src/protocol/app-events.js';
import { decodeValue } from '../../src/protocol/codec.js';
import { doc, examples, misfit, problems, schema } from '../helpers/asyncapi.js';

const log = createLogger('silent');
let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

const ts = 1_700_000_000_000;
/** Every kind of event, of two homes, interleaved. */
const EVENTS: AppEventMessage[] = [
  { op: 'evt', kind: 'online', home: 'h1', hub: 'hub-7', node: 'node-a', ts },
  { op: 'evt', kind: 'state', home: 'h1', hub: 'hub-7', device: 'temp-1', attrs: { temp: 21.5, ok: true, err: null, name: 'hall' }, version: 8, ts },
  { op: 'evt', kind: 'online', home: 'home-42', hub: 'hub-9', node: 'node-a', ts },
  { op: 'evt', kind: 'event', home: 'h1', hub: 'hub-7', device: 'button-1', event: 'double_press', params: { count: 2 }, ts },
  { op: 'evt', kind: 'devices', home: 'h1', hub: 'hub-7', joined: [{ d: 'plug-2', k: 'plug', m: 'ZP-100' }], left: ['lamp-9'], ts },
  { op: 'evt', kind: 'offline', home: 'home-42', hub: 'hub-9', reason: '4001', ts },
  { op: 'evt', kind: 'offline', home: 'h1', hub: 'hub-7', reason: '1006', ts },
  { op: 'evt', kind: 'removed', home: 'home-42', hub: 'hub-9', reason: 'deleted', ts },
];

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('AsyncAPI document and the Redis event stream', () => {
  it('every entry fits the document, its event is a StoredEvent, and its position is the one the bus carried', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const history = new RedisEventHistory(await connectRedis(redis.url, { name: 'test-asyncapi-history', log }), { maxEvents: 100, maxAgeMs: 60_000 }, { keys, log, eventStreamMaxLen: 1000 });
    const wheel = new TimerWheel();
    const bus = new MemoryBus(wheel, log);
    const onBus = new Map<string, Uint8Array>();
    bus.subscribe('evt.>', (m) => {
      const pos = positionOf(m.data);
      onBus.set(`${(decodeValue(m.data) as AppEventMessage).home} ${pos?.epoch}/${pos?.offset}`, m.data);
    });
    const publisher = new EventPublisher(bus, history, log, () => {});
    for (const event of EVENTS) publisher.publish(event, 1);
    await publisher.settled();
    expect(onBus.size).toBe(EVENTS.length);

    // the stream entry follows the history append without being awaited: poll until all are there
    const client = await connectRedis(redis.url, { name: 'test-asyncapi-stream', log });
    const key = keys.single('events');
    expect(doc.channels.eventStream!.address!.replace('{prefix}', keys.prefix)).toBe(key);
    let rows: Array<[Buffer, Buffer[]]> = [];
    for (let i = 0; i < 200 && rows.length < EVENTS.length; i++) {
      rows = (await client.xrangeBuffer(key, '-', '+')) as Array<[Buffer, Buffer[]]>;
      if (rows.length < EVENTS.length) await new Promise((r) => setTimeout(r, 10));
    }
    expect(rows).toHaveLength(EVENTS.length);

    const perHome = new Map<string, AppEventMessage[]>();
    for (const [id, fields] of rows) {
      expect(id.toString()).toMatch(/^\d+-\d+$/);
      const names = fields.filter((_, i) => i % 2 === 0).map(String);
      expect(names).toEqual(Object.keys(examples('EventStreamEntry').state as object));
      const [home, epoch, offset, event] = fields.filter((_, i) => i % 2 === 1) as [Buffer, Buffer, Buffer, Buffer];
      const entry = { home: home.toString(), epoch: epoch.toString(), offset: offset.toString(), event };
      expect(misfit('appendEvent', entry), JSON.stringify({ ...entry, event: hex(event) })).toEqual([]);
      const stored = decodeValue(event) as AppEventMessage;
      expect(problems(schema('StoredEvent'), stored), JSON.stringify(stored)).toEqual([]);
      expect(stored.home).toBe(entry.home);
      // the bus carried these bytes with the entry's epoch and offset spliced in as `pos`
      const pos = { epoch: entry.epoch, offset: Number(entry.offset) };
      const carried = onBus.get(`${entry.home} ${pos.epoch}/${pos.offset}`);
      expect(carried, `${entry.home} ${entry.offset}`).toBeDefined();
      expect(hex(withPosition(event, pos))).toBe(hex(carried!));
      expect(pos).toEqual({ epoch: (await history.position(entry.home)).epoch, offset: (perHome.get(entry.home)?.length ?? 0) + 1 });
      perHome.set(entry.home, [...(perHome.get(entry.home) ?? []), stored]);
    }
    // a home's entries from one node: every event, in order, offsets from 1 without a hole
    for (const home of ['h1', 'home-42']) expect(perHome.get(home), home).toEqual(EVENTS.filter((e) => e.home === home));

    await closeRedis(client);
    await history.close();
    wheel.close();
    await bus.close();
  });

  it('a lost note fits the document as `EventStreamLost`, at the home\'s newest offset, and is no `EventStreamEntry`', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const history = new RedisEventHistory(await connectRedis(redis.url, { name: 'test-asyncapi-lost', log }), { maxEvents: 100, maxAgeMs: 60_000 }, { keys, log, eventStreamMaxLen: 1000 });
    const pos = await history.append('h1', Uint8Array.from([0x80]));
    await history.noteLost('h1');
    const client = await connectRedis(redis.url, { name: 'test-asyncapi-lost-stream', log });
    const rows = (await client.xrange(keys.single('events'), '-', '+')) as Array<[string, string[]]>;
    const entry = Object.fromEntries(rows.at(-1)![1].flatMap((v, i, f) => (i % 2 ? [] : [[v, f[i + 1]!]])));
    expect(entry).toEqual({ home: 'h1', epoch: pos.epoch, offset: String(pos.offset), lost: '1' });
    expect(Object.keys(entry)).toEqual(Object.keys(examples('EventStreamLost').lost as object));
    expect(misfit('appendEvent', entry)).toEqual([]);
    expect(problems(schema('EventStreamEntry'), entry)).not.toEqual([]);
    await closeRedis(client);
    await history.close();
  });

  it('a home\'s erasure deletes its entries over several pages, keeps the others\', and adds an `erased` entry that fits the document', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const history = new RedisEventHistory(await connectRedis(redis.url, { name: 'test-asyncapi-erase', log }), { maxEvents: 100, maxAgeMs: 60_000 }, { keys, log, eventStreamMaxLen: 100_000 });
    // 2,500 entries (the walk reads 1,000 a call), the erased home's a third, interleaved with a
    // home named like an Object.prototype member and one whose id starts with the erased one's
    const homes = ['h1', 'toString', 'h10'];
    const appended = await Promise.all(Array.from({ length: 2_500 }, (_, i) => history.append(homes[i % 3]!, Uint8Array.from([0x80]))));
    await history.noteLost('h1');
    const client = await connectRedis(redis.url, { name: 'test-asyncapi-erase-stream', log });
    const entries = async () =>
      ((await client.xrange(keys.single('events'), '-', '+')) as Array<[string, string[]]>).map(([, f]) => Object.fromEntries(f.flatMap((v, i) => (i % 2 ? [] : [[v, f[i + 1]!]]))));
    const count = (all: Array<Record<string, string>>, home: string) => all.filter((e) => e.home === home).length;
    expect(count(await entries(), 'h1')).toBe(835);

    expect(await history.forget('h1')).toBe(835);
    const after = await entries();
    expect([count(after, 'toString'), count(after, 'h10')]).toEqual([833, 833]);
    const top = appended.filter((_, i) => i % 3 === 0).at(-1)!;
    const note = { home: 'h1', epoch: top.epoch, offset: String(top.offset), erased: '1' };
    expect(after.filter((e) => e.home === 'h1')).toEqual([note]);
    expect(after.at(-1)).toEqual(note);
    expect(Object.keys(note)).toEqual(Object.keys(examples('EventStreamErased').erased as object));
    expect(misfit('appendEvent', note)).toEqual([]);
    for (const other of ['EventStreamEntry', 'EventStreamLost']) expect(problems(schema(other), note), other).not.toEqual([]);
    // the history of the home keeps its offsets: the next event continues them
    expect((await history.position('h1')).offset).toBe(top.offset);

    // sent again: nothing to delete, one more note; a home that never had an event: a note without a position
    expect(await history.forget('h1')).toBe(0);
    expect(await history.forget('never-seen')).toBe(0);
    const last = await entries();
    expect(last.filter((e) => e.home === 'h1')).toEqual([note, note]);
    expect(last.at(-1)).toEqual({ home: 'never-seen', erased: '1' });
    expect(misfit('appendEvent', last.at(-1))).toEqual([]);
    expect(Object.keys(last.at(-1)!)).toEqual(Object.keys(examples('EventStreamErased').unknown as object));
    await closeRedis(client);
    await history.close();
  });

  it('a history without the services\' stream erases nothing there', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const history = new RedisEventHistory(await connectRedis(redis.url, { name: 'test-asyncapi-erase-off', log }), { maxEvents: 100, maxAgeMs: 60_000 }, { keys, log, eventStreamMaxLen: 0 });
    await history.append('h1', Uint8Array.from([0x80]));
    expect(await history.forget('h1')).toBe(0);
    const client = await connectRedis(redis.url, { name: 'test-asyncapi-erase-off-stream', log });
    expect(await client.exists(keys.single('events'))).toBe(0);
    await closeRedis(client);
    await history.close();
  });
});
