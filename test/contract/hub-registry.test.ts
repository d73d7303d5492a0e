import { MemoryHubRegistry, MemoryNonceStore } from '../../src/cluster/hub-registry-memory.js';
import {
  hubRegistryContract,
  nonceStoreContract,
  type HubRegistryFactory,
  type NonceStoreFactory,
} from './hub-registry.contract.js';

/** Every implementation runs the same contract; a new backend is one more line in each list. */
const registries: Array<[name: string, make: HubRegistryFactory]> = [
  [
    'MemoryHubRegistry',
    async () => {
      const registry = new MemoryHubRegistry();
      return { registry, close: () => registry.close() };
    },
  ],
];

const nonceStores: Array<[name: string, make: NonceStoreFactory]> = [
  [
    'MemoryNonceStore (fake clock)',
    async () => {
      let now = 1_700_000_000_000;
      const nonces = new MemoryNonceStore(() => now);
      return {
        nonces,
        advanceTime: (ms) => {
          now += ms;
        },
        close: () => nonces.close(),
      };
    },
  ],
  // the same implementation on real time: exercises the suite's polling path a backend without an
  // injectable clock (Redis) takes
  [
    'MemoryNonceStore (real clock)',
    async () => {
      const nonces = new MemoryNonceStore();
      return { nonces, close: () => nonces.close() };
    },
  ],
];

for (const [name, make] of registries) hubRegistryContract(name, make);
for (const [name, make] of nonceStores) nonceStoreContract(name, make);
