/**
 * The Redis history's rules marks (history-redis-marks.ts), per node and home: written with the
 * node's appends (or within NOTE_MS), those past events no rule listens to with the liveness
 * renewal, never per note; a node that dies
 * leaves the events it appended past its mark, which exactly one other node claims (its own
 * process's next start finds them too), and a clean stop leaves none. Real redis-server.
 */
import type { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { createLogger } from '../../src/log/logger.js';
import { RedisEventHistory } from '../../src/ports/history/history-redis.js';
import type { UnevaluatedHome } from '../../src/ports/history/history.js';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { eventually } from '../helpers/eventually.js';

const RETENTION = { maxEvents: 1_000, maxAgeMs: 3_600_000 };
const log = createLogger('silent');
/** short, so a killed node is found dead soon; long enough that a live one renews in time */
const TTL_MS = 600;

let redis: Backend;
let open: Array<{ history: RedisEventHistory; client: Redis }> = [];
afterEach(async () => {
  await Promise.allSettled(open.map((o) => (o.client.status === 'end' ? Promise.resolve() : o.history.close())));
  open = [];
});
afterAll(async () => {
  await redis?.stop();
});

async function node(keys: RedisKeys, nodeId: string, ttlMs = TTL_MS) {
  redis ??= await startRedis();
  const client = await connectRedis(redis.url, { name: `test-marks-${nodeId}`, log });
  const history = new RedisEventHistory(client, RETENTION, { keys, log, eventStreamMaxLen: 0, nodeId, marksTtlMs: ttlMs });
  open.push({ history, client });
  return { history, marks: history.marks!, client };
}

/** kill -9: the connection drops, nothing is written on the way out. */
function kill(n: { history: RedisEventHistory; client: Redis }): void {
  n.client.disconnect();
}

async function inspector() {
  return connectRedis(redis.url, { name: 'test-marks-inspect', log });
}

/** What `by` claims once `dead`'s liveness has lapsed. */
function claimedBy(signal: AbortSignal, by: { marks: { claimOrphans?(): Promise<UnevaluatedHome[]> } }, dead: string): Promise<UnevaluatedHome[]> {
  return eventually(signal, `${dead} to be found dead`, async () => {
    const found = await by.marks.claimOrphans!();
    return found.length > 0 ? found : undefined;
  });
}

const bytes = (n: number) => Uint8Array.from([n]);
/** The token of what the claim took for `homeId`, for `replayed`. */
const takenFor = (homes: UnevaluatedHome[], homeId: string) => homes.find((h) => h.homeId === homeId)!.taken!;
const offsets = (homes: UnevaluatedHome[]) => Object.fromEntries(homes.map((h) => [h.homeId, h.entries.map((e) => e.offset)]));

describe('the Redis history keeps rules marks per node', () => {
  it('with the appends: a field per home spanning what the node appended past its mark, gone once done', async ({ signal }) => {
    const keys = new RedisKeys(uniquePrefix());
    // no renewal during the test (every ttl/3): what is written goes with the appends
    const a = await node(keys, 'a', 600_000);
    const look = await inspector();
    const hash = keys.node('a', 'rules-marks');
    await Promise.all([a.history.append('h', bytes(1)), a.history.append('h', bytes(2)), a.history.append('h', bytes(3))]);
    // the append call put the field just below them
    expect(await look.hget(hash, 'h')).toBe('0 3');
    // past an event no rule listens to: not with the next append (the liveness renewal takes it),
    // unless the home has a mark past an evaluated event going too (the higher of the two)
    a.marks.note('h', 1, false);
    await a.history.append('x', bytes(1));
    expect(await look.hget(hash, 'h')).toBe('0 3');
    a.marks.note('h', 1, true);
    a.marks.note('h', 2, false);
    await a.history.append('x', bytes(2));
    expect(await look.hget(hash, 'h')).toBe('2 3');
    // past an event a rule ran on, with no append to carry it: sent within NOTE_MS
    a.marks.note('h', 3, true);
    await eventually(signal, 'the field to go', async () => ((await look.hget(hash, 'h')) === null ? true : undefined));
    // the next events of the home: a field just below them again, not back at the old mark
    await a.history.append('h', bytes(4));
    expect(await look.hget(hash, 'h')).toBe('3 4');
    // marks only move forward
    a.marks.note('h', 2, true);
    await a.history.append('x', bytes(2));
    expect(await look.hget(hash, 'h')).toBe('3 4');
    await look.quit();
  });

  it("a dead node's events past its mark go to one node that claims them, which keeps them until it is done", async ({ signal }) => {
    const keys = new RedisKeys(uniquePrefix());
    const [a, b, c] = [await node(keys, 'a'), await node(keys, 'b'), await node(keys, 'c')];
    // one home with hubs on two nodes: a's events 1, 2, 4; b's 3
    await a.history.append('h', bytes(1));
    const appending = Date.now();
    await a.history.append('h', bytes(2));
    const appended = Date.now();
    await b.history.append('h', bytes(3));
    await a.history.append('h', bytes(4));
    a.marks.note('h', 1, true);
    await a.history.append('other', bytes(1));
    // b is done with its own
    b.marks.note('h', 3, true);
    await b.history.append('other', bytes(2));
    kill(a);
    expect(await b.marks.claimOrphans()).toEqual([]);
    const claimed = await claimedBy(signal, c, 'a');
    // a's range past its mark (b's event 3 inside it is evaluated again: at least once)
    expect(offsets(claimed)).toEqual({ h: [2, 3, 4], other: [1] });
    const first = claimed.find((h) => h.homeId === 'h')!.entries[0]!;
    expect(Buffer.from(first.data)).toEqual(Buffer.from([2]));
    // its time as stored (Redis' clock, whole ms, on this machine's): when it was appended
    expect(first.at).toBeGreaterThanOrEqual(appending - 1);
    expect(first.at).toBeLessThanOrEqual(appended + 1);
    // claimed once
    expect(await b.marks.claimOrphans()).toEqual([]);
    expect(await c.marks.claimOrphans()).toEqual([]);
    // c keeps them as taken fields: were c to die before its rules are through, they are replayed again
    const look = await inspector();
    const hash = keys.node('c', 'rules-marks');
    expect(await look.hgetall(hash)).toEqual({ '~h': '1 4', '~other': '0 1' });
    expect(await look.exists(keys.node('a', 'rules-marks'))).toBe(0);
    // c's own events and marks of the home leave the taken field alone (review "kill9b" F3)
    await c.history.append('h', bytes(5));
    c.marks.note('h', 5, true);
    await eventually(signal, "c's own field to go", async () => ((await look.hget(hash, 'h')) === null ? true : undefined));
    expect(await look.hget(hash, '~h')).toBe('1 4');
    // the replay through: each goes
    c.marks.replayed!('h', takenFor(claimed, 'h'));
    c.marks.replayed!('other', takenFor(claimed, 'other'));
    await eventually(signal, "c's fields to go", async () => ((await look.hlen(hash)) === 0 ? true : undefined));
    await look.quit();
  });

  it('a node dying while it replays what it took: the next node replays it again, however far its own events went', async ({ signal }) => {
    const keys = new RedisKeys(uniquePrefix());
    const [a, b] = [await node(keys, 'a'), await node(keys, 'b')];
    await a.history.append('h', bytes(1));
    await a.history.append('h', bytes(2));
    kill(a);
    const claimed = await claimedBy(signal, b, 'a');
    expect(offsets(claimed)).toEqual({ h: [1, 2] });
    // b's own events of the home, evaluated past a's, before its replay of a's is through
    await b.history.append('h', bytes(3));
    b.marks.note('h', 3, true);
    await b.history.append('h', bytes(4));
    const look = await inspector();
    await eventually(signal, "b's own mark to be written", async () => ((await look.hget(keys.node('b', 'rules-marks'), 'h')) === '3 4' ? true : undefined));
    await look.quit();
    kill(b);
    const c = await node(keys, 'c');
    const again = await claimedBy(signal, c, 'b');
    // a's events (b's replay never ended) and b's own past its mark, not the one b was done with
    expect(offsets(again)).toEqual({ h: [1, 2, 4] });
  });

  it("a node's next process finds what its last one took and had not replayed, and lets it go once replayed", async ({ signal }) => {
    const keys = new RedisKeys(uniquePrefix());
    const [a, b] = [await node(keys, 'a'), await node(keys, 'b')];
    await a.history.append('h', bytes(1));
    kill(a);
    await claimedBy(signal, b, 'a');
    kill(b);
    const next = await node(keys, 'b');
    const found = await next.marks.unevaluated();
    expect(offsets(found)).toEqual({ h: [1] });
    const look = await inspector();
    const hash = keys.node('b', 'rules-marks');
    expect(await look.hgetall(hash)).toEqual({ '~h': '0 1' });
    next.marks.replayed!('h', takenFor(found, 'h'));
    await eventually(signal, 'the field to go', async () => ((await look.hlen(hash)) === 0 ? true : undefined));
    await look.quit();
  });

  it('a clean stop before the replay of what it took is through leaves its marks lapsed: another node claims them', async ({ signal }) => {
    const keys = new RedisKeys(uniquePrefix());
    const [a, b] = [await node(keys, 'a'), await node(keys, 'b')];
    await a.history.append('h', bytes(1));
    kill(a);
    await claimedBy(signal, b, 'a');
    await b.history.close();
    const c = await node(keys, 'c');
    expect(offsets(await c.marks.claimOrphans())).toEqual({ h: [1] });
  });

  it("two claims of one home: each keeps its own span, goes once its replay is through, and the events evaluated live between them are not replayed (review \"diff28\" F3, F4)", async ({ signal }) => {
    const keys = new RedisKeys(uniquePrefix());
    const [a, b, c, live] = [await node(keys, 'a'), await node(keys, 'b'), await node(keys, 'c'), await node(keys, 'live')];
    await a.history.append('h', bytes(1));
    kill(a);
    await claimedBy(signal, c, 'a');
    // events 2-4 appended and evaluated by a live node
    for (const n of [2, 3, 4]) await live.history.append('h', bytes(n));
    live.marks.note('h', 4, true);
    await b.history.append('h', bytes(5));
    kill(b);
    const second = await claimedBy(signal, c, 'b');
    expect(offsets(second)).toEqual({ h: [5] });
    const look = await inspector();
    const hash = keys.node('c', 'rules-marks');
    expect(await look.hget(hash, '~h')).toBe('0 1,4 5');
    // c dies with both replays running: the next node replays what a and b owed, not 2-4
    const d = await node(keys, 'd');
    kill(c);
    expect(offsets(await claimedBy(signal, d, 'c'))).toEqual({ h: [1, 5] });
    expect(await look.hget(keys.node('d', 'rules-marks'), '~h')).toBe('0 1,4 5');
    await look.quit();
  });

  it("each claim's span goes once its own replay is through, whatever the order", async ({ signal }) => {
    const keys = new RedisKeys(uniquePrefix());
    const [a, b, c] = [await node(keys, 'a'), await node(keys, 'b'), await node(keys, 'c')];
    await a.history.append('h', bytes(1));
    kill(a);
    const first = await claimedBy(signal, c, 'a');
    await b.history.append('h', bytes(2));
    kill(b);
    const second = await claimedBy(signal, c, 'b');
    const look = await inspector();
    const hash = keys.node('c', 'rules-marks');
    expect(await look.hget(hash, '~h')).toBe('0 1,1 2');
    // the second through first (the first dropped so far): only its span goes
    c.marks.replayed!('h', takenFor(second, 'h'));
    await eventually(signal, "the second's span to go", async () => ((await look.hget(hash, '~h')) === '0 1' ? true : undefined));
    c.marks.replayed!('h', takenFor(first, 'h'));
    await eventually(signal, 'the field to go', async () => ((await look.hget(hash, '~h')) === null ? true : undefined));
    await look.quit();
  });

  it("a node's next process finds its own marks at start; after a clean stop none", async () => {
    const keys = new RedisKeys(uniquePrefix());
    const a = await node(keys, 'a');
    await a.history.append('h', bytes(1));
    await a.history.append('h', bytes(2));
    a.marks.note('h', 1, true);
    await a.history.append('x', bytes(1));
    kill(a);
    const again = await node(keys, 'a');
    expect(offsets(await again.marks.unevaluated())).toEqual({ h: [2], x: [1] });
    // once per start
    expect(await again.marks.unevaluated()).toEqual([]);
    open = open.filter((o) => o.history !== again.history);
    await again.history.close();
    const third = await node(keys, 'a');
    expect(await third.marks.unevaluated()).toEqual([]);
    const other = await node(keys, 'b');
    expect(await other.marks.claimOrphans()).toEqual([]);
  });

  it('a clean stop owing a replay (runs cut by the close) leaves its marks lapsed: claimed by another node at once, or found by its next process', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const a = await node(keys, 'a');
    for (let n = 1; n <= 3; n++) await a.history.append('h', bytes(n));
    a.marks.note('h', 1, true);
    await a.marks.owe!();
    open = open.filter((o) => o.history !== a.history);
    await a.history.close();
    // its liveness lapsed with the stop, not a ttl later: the mark noted before it went with it
    const b = await node(keys, 'b', 60_000);
    expect(offsets(await b.marks.claimOrphans!())).toEqual({ h: [2, 3] });
    expect(await b.marks.claimOrphans!()).toEqual([]);

    const c = await node(keys, 'c');
    await c.history.append('k', bytes(1));
    await c.marks.owe!();
    open = open.filter((o) => o.history !== c.history);
    await c.history.close();
    const again = await node(keys, 'c');
    expect(offsets(await again.marks.unevaluated())).toEqual({ k: [1] });
  });

  it('without a node id the history keeps no marks', async () => {
    redis ??= await startRedis();
    const keys = new RedisKeys(uniquePrefix());
    const history = new RedisEventHistory(await connectRedis(redis.url, { name: 'test-no-marks', log }), RETENTION, { keys, log, eventStreamMaxLen: 0 });
    await history.append('h', bytes(1));
    expect(history.marks).toBeUndefined();
    const look = await inspector();
    expect(await look.keys(`${keys.prefix}*rules-marks*`)).toEqual([]);
    await look.quit();
    await history.close();
  });
});
