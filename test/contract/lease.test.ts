import { MemoryLease } from '../../src/rules/lease-memory.js';
import { leaseContract, type LeaseFactory } from './lease.contract.js';

/** Every Lease implementation runs the same contract; a new backend is one more line here. */
const implementations: Array<[name: string, make: LeaseFactory]> = [
  [
    'MemoryLease (fake clock)',
    async () => {
      let now = 1_700_000_000_000;
      const lease = new MemoryLease({ now: () => now });
      return {
        lease,
        advanceTime: (ms) => {
          now += ms;
        },
        close: () => lease.close(),
      };
    },
  ],
  [
    'MemoryLease (real clock)',
    async () => {
      const lease = new MemoryLease();
      return { lease, close: () => lease.close() };
    },
  ],
];

for (const [name, make] of implementations) leaseContract(name, make);
