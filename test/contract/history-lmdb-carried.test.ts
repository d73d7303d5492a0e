/**
 * The embedded history after an unclean stop (a kill -9, an OOM kill): a new epoch that continues
 * the one before. The stop kept every event it had committed (every one acknowledged) and lost its
 * last second's, whose offsets it gives again; `carried` answers a position of the earlier epoch as
 * the current one's while it names what is stored, so an app away through the crash recovers
 * instead of reloading (review "kill9": its device events were never shown). Not across a clean
 * stop's epoch (it keeps its epoch), a file's new lineage, or an offset past what was kept.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import type { LmdbEventHistory } from '../../src/ports/history/history-lmdb.js';
import { historyNodes } from './fixtures/history-lmdb-nodes.js';

const nodes = historyNodes();
const { start, stop } = nodes;
/** Above Linux's largest pid (4,194,304): a lock holder that is surely gone. */
const GONE_PID = 4_194_305;

async function append(history: LmdbEventHistory, home: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) history.appendNow(home, Uint8Array.from([i]));
  await history.durable(home);
}

const epochOf = async (history: LmdbEventHistory) => (await history.position('h')).epoch;

it('answers a position of the epoch before an unclean stop as the new epoch\'s, up to the offset the stop kept, through later starts', async () => {
  const dir = nodes.dir();
  let node = await start(dir);
  await append(node.history, 'h', 5);
  await append(node.history, 'quiet', 2);
  const e1 = await epochOf(node.history);
  await stop(node, true);

  node = await start(dir);
  const e2 = await epochOf(node.history);
  expect(e2).not.toBe(e1);
  expect(await node.history.carried!('h', { epoch: e1, offset: 5 })).toEqual({ epoch: e2, offset: 5 });
  expect(await node.history.carried!('h', { epoch: e1, offset: 0 })).toEqual({ epoch: e2, offset: 0 });
  // an app given events the stop lost (offsets 6, 7 published, never committed)
  expect(await node.history.carried!('h', { epoch: e1, offset: 7 })).toBeNull();
  // the new epoch gives 6 and 7 again: an app at 6 of e1 had another event there
  await append(node.history, 'h', 2);
  expect(await node.history.carried!('h', { epoch: e1, offset: 6 })).toBeNull();
  expect(await node.history.carried!('h', { epoch: e1, offset: 5 })).toEqual({ epoch: e2, offset: 5 });
  const read = await node.history.read('h', { epoch: e2, offset: 3 }, 7, 100);
  expect(read.ok && read.entries.map((e) => e.offset)).toEqual([4, 5, 6, 7]);
  // a home nothing was appended to since: up to its newest
  expect(await node.history.carried!('quiet', { epoch: e1, offset: 2 })).toEqual({ epoch: e2, offset: 2 });
  expect(await node.history.carried!('quiet', { epoch: e1, offset: 3 })).toBeNull();
  // not an epoch of this lineage, nor the current one
  expect(await node.history.carried!('h', { epoch: 'another', offset: 1 })).toBeNull();
  expect(await node.history.carried!('h', { epoch: e2, offset: 1 })).toBeNull();

  // a clean stop keeps the epoch, and what the new one noted
  await stop(node, false);
  node = await start(dir);
  expect(await epochOf(node.history)).toBe(e2);
  expect(await node.history.carried!('h', { epoch: e1, offset: 5 })).toEqual({ epoch: e2, offset: 5 });
  expect(await node.history.carried!('h', { epoch: e1, offset: 6 })).toBeNull();

  // another unclean stop: both earlier epochs carry on into the third
  await append(node.history, 'h', 1);
  await stop(node, true);
  node = await start(dir);
  const e3 = await epochOf(node.history);
  expect(await node.history.carried!('h', { epoch: e1, offset: 5 })).toEqual({ epoch: e3, offset: 5 });
  expect(await node.history.carried!('h', { epoch: e1, offset: 6 })).toBeNull();
  expect(await node.history.carried!('h', { epoch: e2, offset: 8 })).toEqual({ epoch: e3, offset: 8 });
  expect(await node.history.carried!('h', { epoch: e2, offset: 9 })).toBeNull();
});

it('carries nothing across a clean stop (the epoch stays) or a file copied back (a lineage of its own)', async () => {
  const dir = nodes.dir();
  let node = await start(dir);
  await append(node.history, 'h', 3);
  const e1 = await epochOf(node.history);
  await stop(node, false);
  node = await start(dir);
  expect(await epochOf(node.history)).toBe(e1);
  expect(await node.history.carried!('h', { epoch: e1, offset: 3 })).toBeNull();
  await stop(node, false);
  // history.mdb put back from a copy: another inode, its offsets given again since the copy
  const file = join(dir, 'history.mdb');
  const { copyFileSync, renameSync } = await import('node:fs');
  copyFileSync(file, `${file}.copy`);
  renameSync(`${file}.copy`, file);
  writeFileSync(join(dir, 'node.lock'), `${GONE_PID}\ngone\n`);
  node = await start(dir);
  const e2 = await epochOf(node.history);
  expect(e2).not.toBe(e1);
  expect(await node.history.carried!('h', { epoch: e1, offset: 3 })).toBeNull();
});
