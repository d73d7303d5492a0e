import { MemoryDirectory } from '../../src/cluster/directory-memory.js';
import { directoryContract, type DirectoryFactory } from './directory.contract.js';

/** Every Directory implementation runs the same contract; a new backend is one more line here. */
const implementations: Array<[name: string, make: DirectoryFactory]> = [
  [
    'MemoryDirectory (fake clock)',
    async ({ ttlMs }) => {
      let now = 1_700_000_000_000;
      const directory = new MemoryDirectory(ttlMs, () => now);
      return {
        directory,
        advanceTime: (ms) => {
          now += ms;
        },
        close: () => directory.close(),
      };
    },
  ],
  // the same implementation on real time: exercises the suite's polling path a backend without an
  // injectable clock (Redis) takes
  [
    'MemoryDirectory (real clock)',
    async ({ ttlMs }) => {
      const directory = new MemoryDirectory(ttlMs);
      return { directory, close: () => directory.close() };
    },
  ],
];

for (const [name, make] of implementations) directoryContract(name, make);
