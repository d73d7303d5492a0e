/**
 * Edges of `carried` (review "diff27"): a home erased in the new epoch before its first chunk was
 * written still has its start (else a position whose event the crash lost was answered carried),
 * and the starts noted go with the homes let go at rest (they stayed for every home ever appended to).
 */
import { expect, it } from 'vitest';
import type { LmdbEventHistory } from '../../src/ports/history/history-lmdb.js';
import { historyNodes } from './fixtures/history-lmdb-nodes.js';

const nodes = historyNodes();
const { start, stop } = nodes;
const epochOf = async (h: LmdbEventHistory, home = 'h') => (await h.position(home)).epoch;

/** appends `n` events that a crash then loses: given to apps, never written */
function lostTail(h: LmdbEventHistory, home: string, n: number): void {
  for (let i = 0; i < n; i++) h.appendNow(home, Uint8Array.from([99]));
  // the open chunk dropped unwritten, as the crash drops it
  const any = h as unknown as { homes: Map<string, { open: unknown }>; opens: Map<string, unknown> };
  any.homes.get(home)!.open = null;
  any.opens.delete(home);
}

it('a home removed in the new epoch before its first flush: the start of its offsets there is never written, and a lost offset of the epoch before is carried', async () => {
  const dir = nodes.dir();
  let node = await start(dir);
  for (let i = 0; i < 5; i++) node.history.appendNow('h', Uint8Array.from([i]));
  await node.history.durable('h');
  lostTail(node.history, 'h', 1); // E1 gave offset 6 to an app; the crash loses it
  const e1 = await epochOf(node.history);
  await stop(node, true);

  node = await start(dir);
  const e2 = await epochOf(node.history);
  expect(await node.history.carried!('h', { epoch: e1, offset: 6 })).toBeNull();
  node.history.appendNow('h', Uint8Array.from([7])); // E2 gives 6 again: another event
  await node.history.remove('h');
  await stop(node, false); // clean stop
  node = await start(dir);
  expect(await epochOf(node.history)).toBe(e2);
  // E1's offset 6 was another event than E2's 6
  expect(await node.history.carried!('h', { epoch: e1, offset: 6 })).toBeNull();
});

it('the starts noted stay in memory for every home ever appended to, after the homes are forgotten at rest', async () => {
  const dir = nodes.dir();
  let t = Date.now();
  let node = await start(dir, 'commit', () => t);
  node.history.appendNow('x', Uint8Array.from([1]));
  await node.history.durable('x');
  await stop(node, true);
  node = await start(dir, 'commit', () => t);
  for (let i = 0; i < 20_000; i++) node.history.appendNow(`home-${i}`, Uint8Array.from([1]));
  await node.history.settle();
  t += 120_000;
  await node.history.sweep();
  const started = (node.history as unknown as { starts: { started: Map<string, number> } }).starts.started;
  expect(started.size).toBeLessThanOrEqual(node.history.homesKept);
});
