/**
 * The public surface: what code outside this package (an embedding service, a custom port
 * implementation, tooling) may import. Everything else under src/ is internal and may change.
 */
export { startServer, type RunningServer } from './compose/server.js';
export { portsFor, memoryPorts } from './compose/ports.js';
export { clusterPorts } from './compose/cluster-ports.js';
export type { Ports, AdminPage } from './ports/ports.js';
export { loadConfig, isClusterMode, ConfigError, type Config, type LoadedConfig } from './config/config.js';
export { createLogger, type Logger } from './log/logger.js';
export { TierError, ProtocolError, AuthError, CommandError } from './errors.js';
export { sendCommand, type CommandSpec } from './actors/commands.js';

// the ports, for second implementations (each has a contract suite in test/contract/)
export type { Bus, BusMessage, BusHandler, BusSubscription, SubscribeOptions } from './ports/bus/bus.js';
export { NoRespondersError, RequestTimeoutError } from './ports/bus/bus.js';
export type { Directory, HubLocation } from './ports/directory/directory.js';
export type { ShadowStore, DeviceShadow, HubShadow, SeqCursor } from './ports/shadow-store/shadow-store.js';
export type { HubRegistry, HubRecord, NonceStore } from './ports/hub-registry/hub-registry.js';
export type { RuleStore } from './ports/rule-store/rule-store.js';
export type { Lease } from './ports/lease/lease.js';
export type { PushQueue, PushNotification } from './ports/push-queue/push-queue.js';

// the wire protocol
export * from '../proto/frames.js';
export { ErrorCodes, CloseCode, isErrorCode, type ErrorCode } from '../proto/errors.js';
export { subjects, shardOf, SHARDS, ID_PATTERN, isValidId } from '../proto/subjects.js';
export type { AppRequest, AppReply, HubEvent, AppEventMessage } from '../proto/app.js';
export { encode, encodeApp, encodeValue, decodeHubFrame, decodeServerFrame } from './protocol/codec.js';
export { signHub, hubCredentials, hubAuthHeaderMap, HUB_AUTH_HEADERS, type HubCredentials } from './auth/hub-signature.js';

// for load/ and bench/
export { decodeValue } from './protocol/codec.js';
export { TimerWheel, type TimerTarget, type TimerHandle } from './actors/timer-wheel.js';
