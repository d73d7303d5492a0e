/**
 * The one place that picks adapters: cluster mode (NATS_URL and REDIS_URL set) gets NATS and
 * Redis; the embedded default keeps its data on disk in DATA_DIR, or in memory with
 * DATA_DIR=:memory:. No other module knows which adapter runs.
 */
import type { TimerWheel } from '../actors/timer-wheel.js';
import { ConfigError, isClusterMode, type Config } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import type { BackendObserver } from '../ports/ports.js';
import type { Ports } from '../ports/ports.js';
import { diskSpace } from '../ports/disk-room.js';
import type { DataDisk } from '../admin/disk-metrics.js';
import type { StartHold } from './start-hold.js';
import { diskPorts } from './disk-ports.js';
import { memoryPorts } from './memory-ports.js';
import { checkSharedSecrets } from './shared-secrets-check.js';
import { BackendStartError } from './until-reachable.js';

/** DATA_DIR that keeps the embedded default in memory (tests, throwaway demos) */
export const MEMORY = ':memory:';

/** The embedded default's data directory on disk, for the disk metrics and the doctor; undefined in cluster mode or in memory. */
export function dataDiskOf(config: Config): DataDisk | undefined {
  if (isClusterMode(config) || config.dataDir === MEMORY) return undefined;
  const dir = config.dataDir;
  return { dir, reserve: config.diskReserveMb * 1024 * 1024, space: () => diskSpace(dir) };
}

/** `observe`: the node's metrics, told of backend calls and store batches; `hold`: see clusterPorts */
export async function portsFor(config: Config, timers: TimerWheel, log: Logger, observe?: BackendObserver, hold?: StartHold): Promise<Ports> {
  if (isClusterMode(config)) {
    // loaded for cluster mode alone: NATS, ioredis, BullMQ and bull-board were a third of an embedded node's start (0.6 of 1.9 s)
    const { clusterPorts } = await import('./cluster-ports.js');
    return checkedClusterPorts(await clusterPorts(config, log, observe, hold), config, log);
  }
  if (config.dataDir === MEMORY) return memoryPorts(config, timers, log);
  return diskPorts(config, timers, log, observe);
}

/**
 * A cluster node given other shared secrets than the rest refuses to start (ConfigError, exit 2)
 * instead of refusing their tokens and hubs; Redis failing the check is waited out as at connect.
 */
async function checkedClusterPorts(ports: Ports, config: Config, log: Logger): Promise<Ports> {
  const record = ports.secretRecord;
  if (!record) return ports;
  await checkSharedSecrets(record, config, log).catch(async (err: unknown) => {
    await ports.close?.();
    throw err instanceof ConfigError ? err : new BackendStartError('redis', err);
  });
  return ports;
}

export { diskPorts, memoryPorts };
