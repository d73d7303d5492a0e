import { MemoryPushQueue } from '../../src/events/push-queue-memory.js';
import { pushQueueContract, type PushQueueFactory } from './push-queue.contract.js';

/** Every PushQueue implementation runs the same contract; a new backend is one more line here. */
const implementations: Array<[name: string, make: PushQueueFactory]> = [
  [
    'MemoryPushQueue',
    async (options) => {
      const queue = new MemoryPushQueue(options);
      return { queue, close: () => queue.close() };
    },
  ],
];

for (const [name, make] of implementations) pushQueueContract(name, make);
