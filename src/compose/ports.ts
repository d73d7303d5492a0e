/**
 * The one place that picks adapters: cluster mode (NATS_URL and REDIS_URL set) gets NATS and
 * Redis, anything else the embedded default. No other module knows which adapter runs.
 */
import type { TimerWheel } from '../actors/timer-wheel.js';
import { isClusterMode, type Config } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import type { Ports } from '../ports/ports.js';
import { clusterPorts } from './cluster-ports.js';
import { memoryPorts } from './memory-ports.js';

export function portsFor(config: Config, timers: TimerWheel, log: Logger): Promise<Ports> {
  return isClusterMode(config) ? clusterPorts(config, log) : Promise.resolve(memoryPorts(config, timers, log));
}

export { clusterPorts, memoryPorts };
