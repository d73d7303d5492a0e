import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { MemoryBus } from '../../src/cluster/bus-memory.js';
import { createLogger } from '../../src/log/logger.js';
import { busContract, type BusFactory } from './bus.contract.js';

/** Every Bus implementation runs the same contract; a new backend is one more line here. */
const implementations: Array<[name: string, make: BusFactory]> = [
  [
    'MemoryBus',
    async () => {
      const timers = new TimerWheel();
      const bus = new MemoryBus(timers, createLogger('silent'));
      return {
        bus,
        close: async () => {
          await bus.close();
          timers.close();
        },
      };
    },
  ],
];

for (const [name, make] of implementations) busContract(name, make);
