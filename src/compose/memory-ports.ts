import type { TimerWheel } from '../actors/timer-wheel.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import { MemoryBus } from '../ports/bus/bus-memory.js';
import { MemoryDirectory } from '../ports/directory/directory-memory.js';
import { MemoryHubRegistry, MemoryNonceStore } from '../ports/hub-registry/hub-registry-memory.js';
import { MemoryLease } from '../ports/lease/lease-memory.js';
import { MemoryEventHistory } from '../ports/history/history-memory.js';
import { auditRetention, historyRetention, homeLimits } from './history-retention.js';
import { MemoryAuditLog } from '../ports/audit/audit-memory.js';
import type { Ports } from '../ports/ports.js';
import { MemoryPushQueue } from '../ports/push-queue/push-queue-memory.js';
import { MemoryRuleStore } from '../ports/rule-store/rule-store-memory.js';
import { MemoryShadowStore } from '../ports/shadow-store/shadow-store-memory.js';
import { MemoryRevocationStore } from '../ports/revocations/revocations-memory.js';
import { configuredPushSender, pushQueueOptions } from './push-sender.js';

/** The ports of the embedded default: every one in this process's memory. */
export function memoryPorts(config: Config, timers: TimerWheel, log: Logger): Ports {
  const push = configuredPushSender(config, log);
  return {
    bus: new MemoryBus(timers, log),
    directory: new MemoryDirectory(config.directoryTtlMs),
    shadows: new MemoryShadowStore(),
    registry: new MemoryHubRegistry(),
    nonces: new MemoryNonceStore(),
    rules: new MemoryRuleStore({ limits: homeLimits(config) }),
    lease: new MemoryLease(),
    push: new MemoryPushQueue({ sender: push.sender, ...pushQueueOptions(config) }),
    ...(config.historySize > 0 ? { history: new MemoryEventHistory(historyRetention(config)) } : {}),
    revocations: new MemoryRevocationStore(),
    audit: new MemoryAuditLog(auditRetention(config)),
    diagnose: { pushSender: push.probe },
  };
}
