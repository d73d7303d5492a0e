import { describe } from 'vitest';
import { MemoryShadowStore } from '../../src/cluster/shadow-store-memory.js';
import { shadowDeltaSpec, shadowStoreContract, type ShadowStoreFactory } from './shadow-store.contract.js';

/** Every ShadowStore implementation runs the same contract; a new backend is one more line here. */
const implementations: Array<[name: string, make: ShadowStoreFactory]> = [
  [
    'MemoryShadowStore',
    async () => {
      const store = new MemoryShadowStore();
      return { store, close: () => store.close() };
    },
  ],
];

for (const [name, make] of implementations) shadowStoreContract(name, make);

describe('shadow delta helpers', shadowDeltaSpec);
