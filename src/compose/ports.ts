/**
 * The one place that picks adapters: cluster mode (NATS_URL and REDIS_URL set) gets NATS and
 * Redis; the embedded default keeps its data on disk in DATA_DIR, or in memory with
 * DATA_DIR=:memory:. No other module knows which adapter runs.
 */
import type { TimerWheel } from '../actors/timer-wheel.js';
import { isClusterMode, type Config } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import type { BackendObserver } from '../ports/ports.js';
import type { Ports } from '../ports/ports.js';
import { clusterPorts, type StartHold } from './cluster-ports.js';
import { diskPorts } from './disk-ports.js';
import { memoryPorts } from './memory-ports.js';

/** DATA_DIR that keeps the embedded default in memory (tests, throwaway demos) */
export const MEMORY = ':memory:';

/** `observe`: the node's metrics, told of backend calls and store batches; `hold`: see clusterPorts */
export function portsFor(config: Config, timers: TimerWheel, log: Logger, observe?: BackendObserver, hold?: StartHold): Promise<Ports> {
  if (isClusterMode(config)) return clusterPorts(config, log, observe, hold);
  if (config.dataDir === MEMORY) return Promise.resolve(memoryPorts(config, timers, log));
  return diskPorts(config, timers, log, observe);
}

export { clusterPorts, diskPorts, memoryPorts };
