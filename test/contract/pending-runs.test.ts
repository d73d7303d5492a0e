import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDataStore, type DataStore } from '../../src/ports/lmdb.js';
import { LmdbPendingRuns } from '../../src/ports/pending-runs/pending-runs-lmdb.js';
import { MemoryPendingRuns } from '../../src/ports/pending-runs/pending-runs-memory.js';
import { pendingRunsContract, type PendingRunsFactory } from './pending-runs.contract.js';

/** Every PendingRuns adapter runs the same contract; a new backend is one more line here. */
const implementations: Array<[name: string, make: PendingRunsFactory]> = [
  [
    'MemoryPendingRuns',
    async () => {
      const runs = new MemoryPendingRuns();
      return { runs, close: () => runs.close() };
    },
  ],
  [
    // a DataStore in a fresh directory; reopen closes the environment and opens it again
    'LmdbPendingRuns',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'hubtier-delays-'));
      let store: DataStore = openDataStore(dir, { sync: 'os' });
      return {
        runs: new LmdbPendingRuns(store),
        async reopen() {
          await store.close();
          store = openDataStore(dir, { sync: 'os' });
          return new LmdbPendingRuns(store);
        },
        async close() {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  ],
];

for (const [name, make] of implementations) pendingRunsContract(name, make);
