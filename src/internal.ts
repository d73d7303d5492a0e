/**
 * Internal parts that benchmarks and tools outside src/ measure on their own (the rules engine
 * without a node, the app request validator). Not the public surface (`src/index.ts`):
 * these may change with any release. Exported as `hubtier/internal`.
 */
export { TimerWheel } from './actors/timer-wheel.js';
export { ShadowPacker } from './actors/shadow-packer.js';
export { AttrShapes } from './actors/attr-shapes.js';
export { cached, packDevices, unpackDevices, type CachedAttrs } from './actors/cold-devices.js';
export { tableSet, type DeviceTable } from './actors/device-table.js';
export { createLogger } from './log/logger.js';
export { attrs, decodeValue, encodeBus, params } from './protocol/codec.js';
export { validateAppRequest } from './protocol/app-codec.js';
export { ProtocolError } from './errors.js';
export { Authenticator } from './auth/authenticator.js';
export { RevocationList } from './auth/revocations.js';
export { MemoryBus } from './ports/bus/bus-memory.js';
export { MemoryPushQueue } from './ports/push-queue/push-queue-memory.js';
export { MemoryRuleStore } from './ports/rule-store/rule-store-memory.js';
export { RulesEngine } from './rules/engine.js';
export { RulePool } from './rules/pool.js';
export { noRuleMetrics, summarize, type DropReason, type RuleMetricsSink } from './rules/metrics.js';
export { deviceKey, type DeviceRef } from './rules/model.js';
export { validateRuleSpec } from './rules/validate.js';
export { openDataStore, type DataSync } from './ports/lmdb.js';
export { emptyDevice, type ShadowStore } from './ports/shadow-store/shadow-store.js';
export { MemoryShadowStore } from './ports/shadow-store/shadow-store-memory.js';
export { LmdbShadowStore } from './ports/shadow-store/shadow-store-lmdb.js';
export { RedisShadowStore } from './ports/shadow-store/shadow-store-redis.js';
export { connectRedis, RedisKeys } from './ports/redis.js';
export { RedisEventHistory } from './ports/history/history-redis.js';
export { LmdbEventHistory } from './ports/history/history-lmdb.js';
export { MemoryEventHistory } from './ports/history/history-memory.js';
export type { EventHistory, HistoryRetention } from './ports/history/history.js';
export { HubSession, type HubLink } from './actors/hub-session.js';
export { HubErrorLog } from './actors/hub-error-log.js';
export { SessionIndex } from './actors/session-index.js';
export { EventPublisher } from './actors/event-publisher.js';
export { diskPorts } from './compose/disk-ports.js';
export { loadConfig } from './config/config.js';
export { decodeHubFrame, decodeServerFrame, encode } from './protocol/codec.js';
export { CgroupMemory, parseKeyed } from './transport/cgroup-memory.js';
