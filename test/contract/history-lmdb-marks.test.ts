/**
 * The embedded history's rules marks (history-lmdb-marks.ts): written with the history's commits,
 * not per note; after an unclean stop (a lock left by a process that is gone) the events past each
 * home's mark are answered once, across the epoch the start begins; none after a clean stop or
 * when the file was discarded (DATA_SYNC=os).
 */
import { expect, describe, it } from 'vitest';
import { historyNodes, type HistoryNode } from './fixtures/history-lmdb-nodes.js';

const nodes = historyNodes();
const { start } = nodes;
/** Stops cleanly, then leaves the lock of a process that died: the next start is unclean. */
const crash = (node: HistoryNode) => nodes.stop(node, true);

const bytes = (n: number) => Uint8Array.from([n]);

describe('the embedded history keeps the rules marks', () => {
  it('with its commits, not per note: past an evaluated event at the next, others within seconds', async () => {
    const dir = nodes.dir();
    let now = 1_000_000;
    const node = await start(dir, 'commit', () => now);
    const marks = node.store.side('history').openDB({ name: 'rules-marks', encoding: 'msgpack' });
    node.history.appendNow('h', bytes(1));
    await node.history.durable('h');
    // the home's first chunk carried a mark below it: its event is not evaluated yet
    expect(marks.get('h')).toBe(0);
    node.history.marks.note('h', 1, true);
    await new Promise((resolve) => setImmediate(resolve));
    expect(marks.get('h')).toBe(0);
    // the next commit (another home's event here) carries it
    node.history.appendNow('x', bytes(1));
    await node.history.durable('x');
    expect(marks.get('h')).toBe(1);
    // past an event no rule listens to: not with the next commits, nor with the home's own chunk...
    node.history.appendNow('h', bytes(2));
    node.history.marks.note('h', 2, false);
    node.history.appendNow('y', bytes(1));
    await node.history.durable('y');
    await node.history.durable('h');
    expect(marks.get('h')).toBe(1);
    // ...but with the first one 5 s after the last such write
    now += 5_000;
    node.history.appendNow('z', bytes(1));
    await node.history.durable('z');
    expect(marks.get('h')).toBe(2);
    // a clean stop writes every mark
    node.history.marks.note('h', 3, false);
    await node.history.settle();
    expect(marks.get('h')).toBe(3);
  });

  it('after an unclean stop: the events past each mark once, across the new epoch; a mark past the newest event comes back to it', async () => {
    const dir = nodes.dir();
    let node = await start(dir);
    const before = (await node.history.position('a')).epoch;
    // a: its one event acknowledged (durable), never evaluated; b: two of three evaluated
    node.history.appendNow('a', bytes(1));
    for (let n = 1; n <= 3; n++) node.history.appendNow('b', bytes(n));
    await Promise.all([node.history.durable('a'), node.history.durable('b')]);
    node.history.marks.note('b', 2, true);
    // c: evaluated through 5, of which only 2 were stored (the rest lost with the process, say)
    node.history.appendNow('c', bytes(1));
    node.history.appendNow('c', bytes(2));
    node.history.marks.note('c', 5, true);
    await crash(node);

    node = await start(dir);
    expect((await node.history.position('a')).epoch).not.toBe(before);
    const homes = await node.history.marks.unevaluated();
    expect(homes.map((h) => [h.homeId, h.entries.map((e) => [e.offset, ...e.data])])).toEqual([
      ['a', [[1, 1]]],
      ['b', [[3, 3]]],
    ]);
    expect(homes[0]!.entries[0]!.at).toBeGreaterThan(Date.now() - 60_000);
    // every marked home, its mark brought back to its newest stored offset (c's), once; and what it stores
    expect(node.history.marks.marked()).toEqual([
      { homeId: 'a', mark: 0, top: 1 },
      { homeId: 'b', mark: 2, top: 3 },
      { homeId: 'c', mark: 2, top: 2 },
    ]);
    expect(node.history.marks.marked()).toEqual([]);
    expect(node.history.marks.stored('b').map((e) => [e.offset, ...e.data])).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
    expect(await node.history.marks.unevaluated()).toEqual([]);
    // c's offsets go on from 2: an event stored there after this start is not behind its mark
    expect(node.history.appendNow('c', bytes(3)).offset).toBe(3);
    await node.history.durable('c');
    await crash(node);

    node = await start(dir);
    expect((await node.history.marks.unevaluated()).map((h) => [h.homeId, h.entries.map((e) => e.offset)])).toEqual([
      ['a', [1]],
      ['b', [3]],
      ['c', [3]],
    ]);
  });

  it("after a clean stop that owed a replay (runs cut by the close): the events past each mark once; the next clean stop owes nothing", async () => {
    const dir = nodes.dir();
    let node = await start(dir);
    const before = (await node.history.position('a')).epoch;
    for (let n = 1; n <= 3; n++) node.history.appendNow('a', bytes(n));
    await node.history.durable('a');
    node.history.marks.note('a', 1, true);
    await node.history.marks.owe();
    const stop = () => nodes.stop(node);
    await stop();

    node = await start(dir);
    // a clean stop: the history's epoch goes on (apps recover), yet the rules get their events
    expect((await node.history.position('a')).epoch).toBe(before);
    expect((await node.history.marks.unevaluated()).map((h) => [h.homeId, h.entries.map((e) => e.offset)])).toEqual([['a', [2, 3]]]);
    expect(await node.history.marks.unevaluated()).toEqual([]);
    // owed once: the next clean stop, owing nothing, leaves nothing to replay (3 past the mark too)
    node.history.marks.note('a', 2, true);
    await stop();
    node = await start(dir);
    expect(await node.history.marks.unevaluated()).toEqual([]);
  });

  it('after a clean stop, or an unclean one with DATA_SYNC=os whose lock names no boot id (a machine crash: the file starts over): none', async () => {
    const dir = nodes.dir();
    let node = await start(dir, 'os');
    node.history.appendNow('a', bytes(1));
    await node.history.durable('a');
    await nodes.stop(node);
    node = await start(dir, 'os');
    expect(await node.history.marks.unevaluated()).toEqual([]);
    await crash(node);
    node = await start(dir, 'os');
    expect(await node.history.marks.unevaluated()).toEqual([]);
  });
});
