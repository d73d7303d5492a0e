import { afterAll, beforeAll } from 'vitest';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { MemoryBus } from '../../src/ports/bus/bus-memory.js';
import { NatsBus } from '../../src/ports/bus/bus-nats.js';
import { createLogger } from '../../src/log/logger.js';
import { startNats, type Backend } from '../../load/harness/index.js';
import { busContract, type BusFactory } from './bus.contract.js';

/** One nats-server for this file; the suite keeps tests apart with a unique subject prefix each. */
let nats: Backend;
beforeAll(async () => {
  nats = await startNats();
});
afterAll(async () => {
  await nats?.stop();
});

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
  [
    'NatsBus',
    async () => {
      const bus = await NatsBus.connect(nats.url, { name: 'contract', log: createLogger('silent') });
      return { bus, close: () => bus.close() };
    },
  ],
];

for (const [name, make] of implementations) busContract(name, make);
