import { mkdtemp, rm } from 'node:fs/promises';
import { afterEach } from 'vitest';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDataStore, type DataStore } from '../../src/ports/lmdb.js';
import { LmdbPushQueue } from '../../src/ports/push-queue/push-queue-lmdb.js';
import { LmdbRuleStore } from '../../src/ports/rule-store/rule-store-lmdb.js';
import { hubKey, kindsKey, type StoredHub } from '../../src/ports/shadow-store/shadow-store-lmdb-layout.js';
import type { PushQueueFactory } from './push-queue.contract.js';
import type { RuleStoreFactory } from './rule-store.contract.js';

/** A hub's entry in the embedded shadow store: [epoch, cursor boot, cursor seq, its number]. */
export function shadowEntry(data: DataStore, hubId: string): StoredHub | undefined {
  return data.db<unknown>('shadows').get(hubKey(hubId) as unknown as string) as StoredHub | undefined;
}

/** A hub's kinds record in the embedded shadow store. */
export function shadowKinds(data: DataStore, hubId: string): unknown {
  return data.db<unknown>('shadows').get(kindsKey(hubId) as unknown as string);
}

/** The key of one of a hub's records in the embedded shadow store, `[its number, ...rest]` (its entry read). */
export function shadowKey(data: DataStore, hubId: string, ...rest: string[]): [number, ...string[]] {
  const entry = shadowEntry(data, hubId);
  if (!entry) throw new Error(`no shadow entry for ${hubId}`);
  return [entry[3], ...rest];
}

/** A DataStore in a fresh temporary directory; `remove` closes it and deletes the directory. */
export async function tempDataStore(): Promise<{ data: DataStore; dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'hubtier-lmdb-'));
  const data = openDataStore(dir, { owner: 'test' });
  return {
    data,
    dir,
    async remove() {
      await data.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * For a test file: `temp()` gives a fresh DataStore removed after its test; `cleanups` runs first
 * what else a test opened (a store reopened on the same directory).
 */
export function tempDataStoresPerTest(): { temp: () => Promise<{ data: DataStore; dir: string }>; cleanups: Array<() => Promise<void>> } {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });
  return {
    cleanups,
    async temp() {
      const tmp = await tempDataStore();
      cleanups.push(() => tmp.remove());
      return tmp;
    },
  };
}

/** An LmdbRuleStore over a fresh DataStore; closing it removes the directory. */
export const lmdbRuleStore: RuleStoreFactory = async (options) => {
  const tmp = await tempDataStore();
  const store = await LmdbRuleStore.open(tmp.data, options);
  return {
    store,
    async close() {
      await store.close();
      await tmp.remove();
    },
  };
};

/** An LmdbPushQueue over a fresh DataStore; closing it removes the directory. */
export const lmdbPushQueue: PushQueueFactory = async (options) => {
  const tmp = await tempDataStore();
  const queue = await LmdbPushQueue.open(tmp.data, options);
  return {
    queue,
    async close() {
      await queue.close();
      await tmp.remove();
    },
  };
};
