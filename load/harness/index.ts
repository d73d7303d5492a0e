/**
 * The process harness of tests, benchmarks and load runs: nats-server, redis-server and server
 * nodes on free ports of 127.0.0.1, found on PATH (or named by NATS_SERVER_BIN / REDIS_SERVER_BIN),
 * killed when the calling process ends. What other code may import; the rest is internal.
 */
export { uniquePrefix, type Backend } from './backend.js';
export { findOnPath, findServer, isExecutable, SBIN_DIRS, SERVERS, type Lookup, type ServerName } from './binaries.js';
export { freePort, freePorts } from './free-port.js';
export { collect, MEASURED_NODE_FLAGS, type GcReading } from './measured.js';
export { ensureServers, installCommand, MissingServerError, requireServer, type EnsureOptions } from './missing-servers.js';
export { startNats, type NatsOptions } from './nats-server.js';
export { defaultEntry, freshDataDir, startNode, type NodeOptions, type NodeProc } from './node.js';
export { ExitedError, start, type Proc, type ProcOptions } from './proc.js';
export { cpuMs, cpuSplitMs, rssBytes, threadCpuMs } from './proc-stats.js';
export { startRedis, type RedisOptions } from './redis-server.js';
export { ROOT } from './root.js';
