import type { BackendObserver } from '../ports/ports.js';
import { sideUnusable } from '../ports/data-store-error.js';
import { backupPage } from '../admin/backup-route.js';
import { streamBackup } from '../data-backup.js';
import type { TimerWheel } from '../actors/timer-wheel.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import { openDataStore, startWriteError } from '../ports/lmdb.js';
import type { Ports } from '../ports/ports.js';
import { LmdbHubRegistry, LmdbNonceStore } from '../ports/hub-registry/hub-registry-lmdb.js';
import { LmdbShadowStore } from '../ports/shadow-store/shadow-store-lmdb.js';
import { LmdbPendingRuns } from '../ports/pending-runs/pending-runs-lmdb.js';
import { LmdbPushQueue } from '../ports/push-queue/push-queue-lmdb.js';
import { LmdbRuleStore } from '../ports/rule-store/rule-store-lmdb.js';
import { MemoryBus } from '../ports/bus/bus-memory.js';
import { MemoryDirectory } from '../ports/directory/directory-memory.js';
import { MemoryLease } from '../ports/lease/lease-memory.js';
import { LmdbEventHistory } from '../ports/history/history-lmdb.js';
import { auditRetention, historyRetention, homeLimits } from './history-retention.js';
import { LmdbAuditLog } from '../ports/audit/audit-lmdb.js';
import { LmdbRevocationStore } from '../ports/revocations/revocations-lmdb.js';
import { configuredPushSender, pushQueueOptions } from './push-sender.js';
import { steadyWallMs } from '../actors/clock.js';

/**
 * The embedded default: everything a node must remember in one LMDB store in DATA_DIR; what only
 * lives while the process does (bus, directory, lease of one node) stays in memory. A node that
 * cannot open the directory, or write it at start (a full disk), does not start (DataStoreError
 * says why and what to do).
 */
export async function diskPorts(config: Config, timers: TimerWheel, log: Logger, observe?: BackendObserver): Promise<Ports> {
  const data = openDataStore(config.dataDir, { sync: config.dataSync, owner: config.nodeId, watchDirMs: 1_000, reserveBytes: config.diskReserveMb * 1024 ** 2, warn: (message) => log.warn(message) });
  const opened: Array<{ close(): Promise<void> }> = [];
  try {
    // meaningless after the process ends: in memory (the directory too, below the shadows)
    const bus = new MemoryBus(timers, log);
    const lease = new MemoryLease();
    const registry = new LmdbHubRegistry(data);
    const nonces = new LmdbNonceStore(data);
    opened.push(nonces);
    const shadows = new LmdbShadowStore(data, { log: log.child({ port: 'shadows' }), batchWindowMs: config.diskBatchMs, ...(observe ? { batches: observe.store('shadows') } : {}) });
    opened.push(shadows);
    // a hub's epochs go on from the last its shadow's fence holds: a restart does not make its next session stale
    const directory = new MemoryDirectory(config.directoryTtlMs, steadyWallMs, (hubId) => shadows.lastEpoch(hubId));
    const rules = await LmdbRuleStore.open(data, { limits: homeLimits(config) });
    opened.push(rules);
    const pushLog = log.child({ port: 'push' });
    const pushSender = configuredPushSender(config, pushLog);
    const push = await LmdbPushQueue.open(data, { sender: pushSender.sender, ...pushQueueOptions(config), log: pushLog });
    opened.push(push);
    const history = config.historySize > 0 ? await LmdbEventHistory.open(data, historyRetention(config), observe ? { batches: observe.store('history') } : {}).catch((err: unknown) => Promise.reject(sideUnusable(data.dir, 'history', err))) : undefined;
    if (history) opened.push(history);
    const audit = new LmdbAuditLog(data, auditRetention(config), { log: log.child({ port: 'audit' }) });
    return {
      bus,
      directory,
      lease,
      registry,
      nonces,
      shadows,
      rules,
      push,
      pendingRuns: new LmdbPendingRuns(data),
      ...(history ? { history } : {}),
      revocations: new LmdbRevocationStore(data),
      audit,
      diagnose: { pushSender: pushSender.probe },
      // a consistent backup while the node runs (the files of a running store may be copied torn)
      adminPages: [backupPage((out) => streamBackup(data, out, 'the backup answer'))],
      // the store is this node's own: a failing one makes the node not ready (a shared backend would not)
      writesWaitingMs: () => data.pendingMs(),
      health: () => ({ local: shadows.healthy, backends: {}, detail: { store: { healthy: shadows.healthy } } }),
      async close() {
        await Promise.allSettled([bus.close(), directory.close(), lease.close()]);
        await Promise.allSettled([shadows.close(), registry.close(), nonces.close(), push.close(), rules.close(), history?.close(), audit.close()]);
        // the adapters' last writes are committed before the directory is released
        await data.close();
      },
    };
  } catch (err) {
    await Promise.allSettled(opened.map((p) => p.close()));
    await data.close({ keepUncleanMark: true }).catch(() => undefined);
    // a write at start that the disk refused (full): a data error saying so, not lmdb-js's stack
    throw (await startWriteError(config.dataDir, err)) ?? err;
  }
}
