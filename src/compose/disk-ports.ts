import type { TimerWheel } from '../actors/timer-wheel.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import { openDataStore } from '../ports/lmdb.js';
import type { Ports } from '../ports/ports.js';
import { LmdbPendingRuns } from '../ports/pending-runs/pending-runs-lmdb.js';
import { loggingPushSender } from '../ports/push-queue/push-queue-memory.js';
import { LmdbPushQueue } from '../ports/push-queue/push-queue-lmdb.js';
import { LmdbRuleStore } from '../ports/rule-store/rule-store-lmdb.js';
import { memoryPorts } from './memory-ports.js';

/**
 * The embedded default: everything a node must remember in one LMDB store in DATA_DIR; what only
 * lives while the process does (bus, directory, lease of one node) stays in memory. A node that
 * cannot open the directory does not start (DataStoreError says why and what to do).
 */
export async function diskPorts(config: Config, timers: TimerWheel, log: Logger): Promise<Ports> {
  const data = openDataStore(config.dataDir, { sync: config.dataSync, owner: `node ${config.nodeId}` });
  const opened: Array<{ close(): Promise<void> }> = [];
  try {
    const base = memoryPorts(config, timers, log);
    const rules = await LmdbRuleStore.open(data);
    opened.push(rules);
    const pushLog = log.child({ port: 'push' });
    const push = await LmdbPushQueue.open(data, { sender: loggingPushSender(pushLog), log: pushLog });
    opened.push(push);
    return {
      ...base,
      rules,
      push,
      pendingRuns: new LmdbPendingRuns(data),
      async close() {
        await Promise.allSettled([base.bus.close(), base.directory.close(), base.shadows.close(), base.registry.close(), base.nonces.close(), base.lease.close()]);
        await Promise.allSettled([push.close(), rules.close()]);
        // the adapters' last writes are committed before the directory is released
        await data.close();
      },
    };
  } catch (err) {
    await Promise.allSettled(opened.map((p) => p.close()));
    await data.close();
    throw err;
  }
}
