import { randomBytes, randomUUID } from 'node:crypto';
import { checkTogether } from './config-checks.js';
import { readConfigFile } from './config-file.js';
import { codeRelease } from './release.js';
import { closestName } from './closest-name.js';
import { ConfigError, MAKE_SECRET, SECRET_MIN_CHARS, bool, fraction, hostNames, int, listenHost, nodeIdText, offOrAtLeast, oneOf, proxyList, readableFile, secret, secretKey, secretKeyList, secretList, secretNames, text, url, webhookUrl, type Parser } from './parsers.js';

export { ConfigError } from './parsers.js';

/**
 * The one typed configuration, layered defaults → JSON file (`CONFIG_FILE`) → environment. Over 400 lines:
 * one object by design (each setting's type, doc, variable, parser and default side by side); the
 * parsers are in parsers.ts, the checks of settings together in config-checks.ts. Bad values fail
 * fast naming the key; unknown file keys and unknown `TIER_*` variables are returned as warnings so
 * typos do not pass silently.
 */
export interface Config {
  /** @default 8080: hubs (/hub/v1), apps (/app/v1) and the HTTP API */
  port: number;
  /** @default '0.0.0.0' */
  host: string;
  /** @default 9090: /healthz, /readyz, /metrics */
  adminPort: number;
  /** @default '127.0.0.1' */
  adminHost: string;
  /** @default []: more names the admin port answers to, besides IP addresses, localhost and ADMIN_HOST (`*`: any) */
  adminAllowedHosts: readonly string[];
  /** @default 10: wrong admin tokens one address may send in 10 s before it is refused unchecked; 0: any */
  adminTokenGuesses: number;
  /** bearer token of the administrator, at least 24 characters; embedded default: generated (into SECRETS_FILE) when not set; cluster mode: required */
  adminToken: string;
  /** HS256 key of user JWTs, at least 32 characters; embedded default: generated (into SECRETS_FILE) when not set; cluster mode: required */
  jwtSecret: string;
  /** @default []: more HS256 keys that verify user JWTs but never sign one (a rotation: the next key before it signs, the previous one after) */
  jwtSecretsAccepted: readonly string[];
  /** @default []: more admin tokens accepted (a rotation); never shown or generated */
  adminTokensAccepted: readonly string[];
  /** generated when not set */
  nodeId: string;
  /** @default the package version and a hash of the running code (src/config/release.ts): what diagnose compares across nodes */
  release: string;
  /** NATS server(s), comma-separated; `user:pass@` or `token@` in them is handed to the client as credentials */
  natsUrl: string | undefined;
  /** @default 5_000 (ms): NATS pings this often; a server that misses two is left (reconnect) */
  natsPingMs: number;
  /** NATS_CREDS_FILE: a `.creds` file (JWT and nkey seed) instead of credentials in NATS_URL */
  natsCredsFile: string | undefined;
  /** NATS_TLS_CA_FILE, NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE: the CA to trust, a client certificate and its key (mTLS); any of them requires TLS */
  natsTlsCaFile: string | undefined;
  natsTlsCertFile: string | undefined;
  natsTlsKeyFile: string | undefined;
  /** `redis[s]://[user:pass@]host:port[/db]` */
  redisUrl: string | undefined;
  /** REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE: the CA to trust, a client certificate and its key (mTLS); any of them requires `rediss://` */
  redisTlsCaFile: string | undefined;
  redisTlsCertFile: string | undefined;
  redisTlsKeyFile: string | undefined;
  /** @default 5_000 (ms): Redis is pinged this often; a PING unanswered for 2 s reports it down until it answers */
  redisPingMs: number;
  /** @default 'info' */
  logLevel: string;
  /** @default 100: HTTP access lines per route and second; past it one summary line per second (0: server errors only) */
  accessLogRate: number;
  /** @default []: proxies (addresses, CIDR blocks) whose X-Forwarded-For names the caller of an API request or app upgrade */
  trustedProxies: readonly string[];
  /** @default 1 (when OTEL_EXPORTER_OTLP_ENDPOINT is set): share of new traces sampled, 0..1; OTEL_TRACES_SAMPLER_ARG overrides it */
  traceRatio: number;
  /** fail at start-up when only the slow uWS shim is available */
  uwsRequireNative: boolean;
  /** @default 30_000 (ms): heartbeat interval told to hubs */
  heartbeatMs: number;
  /** @default 75_000 (ms): a hub silent this long is closed with heartbeat_timeout */
  idleMs: number;
  /** @default 10_000 (ms): time allowed between the upgrade and the hello frame */
  helloTimeoutMs: number;
  /** @default 300 (s): allowed difference between a hub's handshake timestamp and the server clock */
  authSkewS: number;
  /** @default 16_384 (bytes): largest hub frame */
  maxFrameBytes: number;
  /** @default 65_536 (bytes): largest HTTP body */
  maxBodyBytes: number;
  /** @default 64 MiB: bytes of large HTTP answers (64 KiB and up) the node holds for clients that have not read them; past it such answers are refused 503 busy */
  httpPendingBytes: number;
  /** @default 5_000 (ms): command timeout when the caller gives none */
  commandTimeoutMs: number;
  /** @default 60_000 (ms): largest command timeout a caller may ask for */
  commandTimeoutMaxMs: number;
  /** @default 30_000 (ms): how long a rule's command waits for its hub to connect (0: fails at once, `hub_offline`) */
  ruleHubWaitMs: number;
  /** @default 250 (ms): worker time one home's rules may use per second; past it its events are dropped, `home_cpu` (0: no bound) */
  ruleHomeCpuMs: number;
  /** @default 500: device commands (a scene's each), desired changes and notifications one home's rules may start per second; past it refused, `result="refused"` (0: no bound) */
  ruleHomeActionsPerSec: number;
  /** @default 60: notifications one home's rules may send per minute; past it refused, `result="refused"` (0: no bound) */
  ruleHomeNotifyPerMin: number;
  /** @default 128: messages an actor may have queued before the overflow policy applies */
  mailboxSize: number;
  /** where the embedded default keeps its data (LMDB); ':memory:' keeps it in memory only */
  dataDir: string;
  /** 'commit': every commit fsynced (survives power loss); 'os': left to the OS (survives a crash) */
  dataSync: 'commit' | 'os';
  /** supervision: this many failed messages of one actor within `actorFailureWindowMs` stop it */
  actorMaxFailures: number;
  actorFailureWindowMs: number;
  /** @default 50 (frames/s) sustained per hub */
  hubRatePerSec: number;
  /** @default 200 (frames): burst per hub */
  hubRateBurst: number;
  /** @default 1_048_576 (bytes): app socket backpressure beyond which the app is closed */
  appMaxBackpressure: number;
  /** @default 50 (requests/s) sustained per app socket */
  appRequestsPerSec: number;
  /** @default 200 (requests): burst per app socket, and the refusals it is allowed before it is closed 4004 */
  appRequestsBurst: number;
  /** @default 100: events kept per home for apps to recover from; 0: no history, events carry no position */
  historySize: number;
  /** @default 3_600 (s): events older than this are not recovered (the app reloads instead) */
  historyMaxAgeS: number;
  /** @default 100_000: entries of the services' Redis stream `<prefix>events` (cluster mode); 0: none */
  eventStreamMaxLen: number;
  /** @default 86_400 (s): entries of the services' Redis stream older than this are trimmed (cluster mode) */
  eventStreamMaxAgeS: number;
  /** @default 90 (days): audit entries older than this are removed */
  auditMaxAgeDays: number;
  /** @default 1_000_000: audit entries kept in all (the node's store, or the cluster's Redis); past it the oldest of the home and actor with the most go first */
  auditMaxEntries: number;
  /** @default 15_000 (ms): a node's directory entries vanish this long after its last refresh */
  directoryTtlMs: number;
  /** @default 120_000 (ms): cluster mode: how long a starting node retries NATS and Redis before it exits 1; 0: fails at once */
  backendStartWaitMs: number;
  /** @default 'tier:': prefix of every Redis key (one Redis may serve several deployments) */
  redisPrefix: string;
  /** @default 50 (ms): shadow writes are batched this long; a crash loses at most this window */
  shadowBatchMs: number;
  /** @default 0 (ms): embedded default: a batch of shadow writes waits this long to share one commit (acks later by as much) */
  diskBatchMs: number;
  /** embedded default: MB of room the store's files must keep on DATA_DIR's disk; below it the node stops (0: never) */
  diskReserveMb: number;
  /** @default 5_000 (ms): a hub session's cache of its devices not used this long (to twice this) is packed into one string; 0: never */
  shadowPackMs: number;
  /** @default 10_000 (ms): how often the node looks whether its resident size grew enough to call glibc's malloc_trim; 0: never */
  mallocTrimMs: number;
  /** @default true: V8 uses helper threads within a collection's pause; false: the main thread alone (nodes packed several to a core) */
  parallelGc: boolean;
  /** @default 19_000: hub sockets a node holds at most (the open-file limit here is 20,000) */
  maxHubSessions: number;
  /** @default 10: handshakes one hub may make a minute on a node (a burst of as many, refilled evenly); 0: any */
  hubHellosPerMin: number;
  /**
   * App sockets a node holds at most; unset: what the open-file limit leaves beside the hub
   * sessions and 500 of the node's own files (at least 64; 10,000 where the limit cannot be read)
   */
  maxAppSockets: number | undefined;
  /** @default 32: app sockets one user token (`sub`) may hold on a node */
  maxAppSocketsPerUser: number;
  /** @default 1_000: hub handshakes authenticated at once */
  maxPendingUpgrades: number;
  /** @default 5_000 (per s): new hub connections a node takes, sustained */
  hubConnectRatePerSec: number;
  /**
   * @default 0 (never; ms): hub handshakes are refused busy while the event loop runs later than
   * this. Off by default: where nodes share cores, a late loop is waiting for a core, and the
   * refused hubs came back to the same cores (BENCHMARKS.md, half a million hubs)
   */
  maxLoopLagMs: number;
  /**
   * @default 0.85: hub handshakes are refused busy while the memory the kernel cannot reclaim
   * (anonymous, kernel) stands above this fraction of the node's cgroup limit (a pod's); 0: never.
   * Without a limit nothing is refused
   */
  shedMemoryFraction: number;
  /** @default 512: devices one hub's shadow may hold; more are refused with limit_exceeded */
  hubMaxDevices: number;
  /** @default 200 each: rules and scenes one home may hold; a create past it is refused with limit_exceeded */
  homeMaxRules: number;
  homeMaxScenes: number;
  /** @default 64: reported attributes per device */
  hubMaxAttrsPerDevice: number;
  /** @default 1_024 (characters): a string attribute value (at most the protocol's 1,024) */
  hubMaxValueBytes: number;
  /** @default 131_072 (bytes): one hub's reported shadow (keys and values; numbers count 8) */
  hubMaxShadowBytes: number;
  /** @default 131_072 (bytes): one hub's desired state (device ids, keys and values; numbers count 8) */
  hubMaxDesiredBytes: number;
  /** @default 32: commands to one hub waiting for its answer; more are answered busy (503) */
  hubMaxCommandsInFlight: number;
  /**
   * AES-256 key (64 hex digits or base64) that seals hub secrets at rest. Required in cluster mode
   * (every node the same); unset in the embedded default: kept in DATA_DIR/secret.key, outside the store.
   */
  secretKey: string | undefined;
  /** older keys, comma-separated, still accepted for opening sealed secrets (key rotation) */
  secretKeysOld: string | undefined;
  /** @default []: shared secrets this node brings a new value of (a rotation): it records them instead of refusing to start */
  secretsChanged: readonly string[];
  /** @default true: user JWTs without `exp` are refused */
  jwtRequireExp: boolean;
  /** when set, user JWTs must carry this `aud` (alone or in a list): tokens minted for another service are refused */
  jwtAudience: string | undefined;
  /** when set, user JWTs must carry this `iss` */
  jwtIssuer: string | undefined;
  /** @default 604_800 (s): how long a rotated-out hub secret keeps working when the request names no grace */
  secretGraceS: number;
  /** when set, push notifications are POSTed there (the platform's notification service); unset: logged */
  pushWebhookUrl: string | undefined;
  /** signs each webhook request (HMAC-SHA256); needed with pushWebhookUrl */
  pushWebhookSecret: string | undefined;
  /** @default 10_000 (ms): a webhook request without an answer by then is a failed attempt (retried) */
  pushWebhookTimeoutMs: number;
  /** @default 8: notifications with the sender at once, per node (and per push worker) */
  pushConcurrency: number;
  /** @default 10: delivery attempts per notification, the first included */
  pushAttempts: number;
  /** @default 60_000 (ms): the cap of the retries' doubling backoff (from 1 s) */
  pushMaxBackoffMs: number;
  /** @default 604_800 (s, a week): dead letters (a notification's attempts used up) kept this long, then removed with their words */
  pushKeepFailedS: number;
  /** notifications queued at most (every node's, in cluster mode); past it refused `unavailable` */
  pushMaxQueued: number;
  /**
   * Share the port with other processes (SO_REUSEPORT). @default false in the embedded default (a
   * second node on the port would hold separate state and get every other request), true in cluster mode.
   */
  reusePort: boolean;
}

export interface LoadedConfig {
  config: Config;
  warnings: string[];
  /** secrets that were generated because the environment gave none */
  generated: Array<'adminToken' | 'jwtSecret'>;
}

interface Field<K extends keyof Config> {
  env: string;
  parse: Parser<NonNullable<Config[K]>>;
  default?: Config[K];
}

/** Every setting: its environment variable, parser and default. File keys are the Config names. */
const FIELDS: { [K in keyof Config]: Field<K> } = {
  port: { env: 'PORT', parse: int(0, 65535), default: 8080 },
  host: { env: 'HOST', parse: listenHost, default: '0.0.0.0' },
  adminPort: { env: 'ADMIN_PORT', parse: int(0, 65535), default: 9090 },
  adminHost: { env: 'ADMIN_HOST', parse: listenHost, default: '127.0.0.1' },
  adminAllowedHosts: { env: 'ADMIN_ALLOWED_HOSTS', parse: hostNames, default: [] },
  adminTokenGuesses: { env: 'TIER_ADMIN_TOKEN_GUESSES', parse: int(0, 1_000_000), default: 10 },
  adminToken: { env: 'ADMIN_TOKEN', parse: secret(SECRET_MIN_CHARS.ADMIN_TOKEN) },
  jwtSecret: { env: 'JWT_SECRET', parse: secret(SECRET_MIN_CHARS.JWT_SECRET) },
  jwtSecretsAccepted: { env: 'JWT_SECRETS_ACCEPTED', parse: secretList(SECRET_MIN_CHARS.JWT_SECRET), default: [] },
  adminTokensAccepted: { env: 'ADMIN_TOKENS_ACCEPTED', parse: secretList(SECRET_MIN_CHARS.ADMIN_TOKEN), default: [] },
  nodeId: { env: 'NODE_ID', parse: nodeIdText },
  release: { env: 'TIER_RELEASE', parse: text },
  natsUrl: { env: 'NATS_URL', parse: url(['nats:', 'tls:'], true) },
  natsPingMs: { env: 'TIER_NATS_PING_MS', parse: int(100, 600_000), default: 5_000 },
  natsCredsFile: { env: 'NATS_CREDS_FILE', parse: readableFile },
  natsTlsCaFile: { env: 'NATS_TLS_CA_FILE', parse: readableFile },
  natsTlsCertFile: { env: 'NATS_TLS_CERT_FILE', parse: readableFile },
  natsTlsKeyFile: { env: 'NATS_TLS_KEY_FILE', parse: readableFile },
  redisUrl: { env: 'REDIS_URL', parse: url(['redis:', 'rediss:']) },
  redisTlsCaFile: { env: 'REDIS_TLS_CA_FILE', parse: readableFile },
  redisTlsCertFile: { env: 'REDIS_TLS_CERT_FILE', parse: readableFile },
  redisTlsKeyFile: { env: 'REDIS_TLS_KEY_FILE', parse: readableFile },
  redisPingMs: { env: 'TIER_REDIS_PING_MS', parse: int(100, 600_000), default: 5_000 },
  logLevel: { env: 'LOG_LEVEL', parse: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), default: 'info' },
  accessLogRate: { env: 'TIER_ACCESS_LOG_RATE', parse: int(0, 1_000_000), default: 100 },
  trustedProxies: { env: 'TIER_TRUSTED_PROXIES', parse: proxyList, default: [] },
  traceRatio: { env: 'TIER_TRACE_RATIO', parse: fraction, default: 1 },
  uwsRequireNative: { env: 'UWS_REQUIRE_NATIVE', parse: bool, default: false },
  heartbeatMs: { env: 'TIER_HEARTBEAT_MS', parse: int(1_000, 600_000), default: 30_000 },
  idleMs: { env: 'TIER_IDLE_MS', parse: int(2_000, 1_800_000), default: 75_000 },
  helloTimeoutMs: { env: 'TIER_HELLO_TIMEOUT_MS', parse: int(100, 120_000), default: 10_000 },
  authSkewS: { env: 'TIER_AUTH_SKEW_S', parse: int(1, 86_400), default: 300 },
  maxFrameBytes: { env: 'TIER_MAX_FRAME_BYTES', parse: int(512, 16 * 1024 * 1024), default: 16 * 1024 },
  maxBodyBytes: { env: 'TIER_MAX_BODY_BYTES', parse: int(512, 16 * 1024 * 1024), default: 64 * 1024 },
  httpPendingBytes: { env: 'TIER_HTTP_PENDING_BYTES', parse: int(1024 * 1024, 4 * 1024 * 1024 * 1024), default: 64 * 1024 * 1024 },
  commandTimeoutMs: { env: 'TIER_COMMAND_TIMEOUT_MS', parse: int(10, 600_000), default: 5_000 },
  commandTimeoutMaxMs: { env: 'TIER_COMMAND_TIMEOUT_MAX_MS', parse: int(10, 600_000), default: 60_000 },
  ruleHubWaitMs: { env: 'TIER_RULE_HUB_WAIT_MS', parse: int(0, 600_000), default: 30_000 },
  ruleHomeCpuMs: { env: 'TIER_RULE_HOME_CPU_MS', parse: int(0, 60_000), default: 250 },
  ruleHomeActionsPerSec: { env: 'TIER_RULE_HOME_ACTIONS_PER_SEC', parse: int(0, 1_000_000), default: 500 },
  ruleHomeNotifyPerMin: { env: 'TIER_RULE_HOME_NOTIFY_PER_MIN', parse: int(0, 1_000_000), default: 60 },
  dataDir: { env: 'DATA_DIR', parse: text, default: './data' },
  dataSync: { env: 'DATA_SYNC', parse: oneOf(['commit', 'os'] as const), default: 'commit' },
  mailboxSize: { env: 'TIER_MAILBOX_SIZE', parse: int(4, 1_000_000), default: 128 },
  actorMaxFailures: { env: 'TIER_ACTOR_MAX_FAILURES', parse: int(1, 1_000_000), default: 10 },
  actorFailureWindowMs: { env: 'TIER_ACTOR_FAILURE_WINDOW_MS', parse: int(1_000, 86_400_000), default: 60_000 },
  hubRatePerSec: { env: 'TIER_HUB_RATE_PER_SEC', parse: int(1, 1_000_000), default: 50 },
  // at least 4: a hub sends its device list, a report and a heartbeat at once after its welcome, and
  // the burst is also the refusals tolerated before 4004 (at 1 every hub was closed 8 ms after its hello)
  hubRateBurst: { env: 'TIER_HUB_RATE_BURST', parse: int(4, 1_000_000), default: 200 },
  appMaxBackpressure: { env: 'TIER_APP_MAX_BACKPRESSURE', parse: int(1024, 1 << 30), default: 1 << 20 },
  appRequestsPerSec: { env: 'TIER_APP_REQUESTS_PER_SEC', parse: int(1, 1_000_000), default: 50 },
  // at least 70: an app back after a reconnect subscribes to its homes (64 at most) and pings at once
  appRequestsBurst: { env: 'TIER_APP_REQUESTS_BURST', parse: int(70, 1_000_000), default: 200 },
  historySize: { env: 'TIER_HISTORY_SIZE', parse: int(0, 1_000_000), default: 100 },
  historyMaxAgeS: { env: 'TIER_HISTORY_MAX_AGE_S', parse: int(1, 30 * 86_400), default: 3_600 },
  eventStreamMaxLen: { env: 'TIER_EVENT_STREAM_MAXLEN', parse: int(0, 100_000_000), default: 100_000 },
  eventStreamMaxAgeS: { env: 'TIER_EVENT_STREAM_MAX_AGE_S', parse: int(1, 30 * 86_400), default: 86_400 },
  auditMaxAgeDays: { env: 'TIER_AUDIT_MAX_AGE_DAYS', parse: int(1, 3_650), default: 90 },
  auditMaxEntries: { env: 'TIER_AUDIT_MAX_ENTRIES', parse: int(1_000, 100_000_000), default: 1_000_000 },
  directoryTtlMs: { env: 'TIER_DIRECTORY_TTL_MS', parse: int(1_000, 600_000), default: 15_000 },
  backendStartWaitMs: { env: 'TIER_BACKEND_START_WAIT_MS', parse: int(0, 3_600_000), default: 120_000 },
  redisPrefix: { env: 'TIER_REDIS_PREFIX', parse: text, default: 'tier:' },
  shadowBatchMs: { env: 'TIER_SHADOW_BATCH_MS', parse: int(0, 10_000), default: 50 },
  diskBatchMs: { env: 'TIER_DISK_BATCH_MS', parse: int(0, 1_000), default: 0 },
  diskReserveMb: { env: 'TIER_DISK_RESERVE_MB', parse: int(0, 1_000_000), default: 64 },
  shadowPackMs: { env: 'TIER_SHADOW_PACK_MS', parse: offOrAtLeast(100, 3_600_000), default: 5_000 },
  mallocTrimMs: { env: 'TIER_MALLOC_TRIM_MS', parse: offOrAtLeast(100, 3_600_000), default: 10_000 },
  parallelGc: { env: 'TIER_PARALLEL_GC', parse: bool, default: true },
  maxHubSessions: { env: 'TIER_MAX_HUB_SESSIONS', parse: int(1, 10_000_000), default: 19_000 },
  hubHellosPerMin: { env: 'TIER_HUB_HELLOS_PER_MIN', parse: int(0, 60_000), default: 10 },
  maxAppSockets: { env: 'TIER_MAX_APP_SOCKETS', parse: int(1, 10_000_000) },
  maxAppSocketsPerUser: { env: 'TIER_MAX_APP_SOCKETS_PER_USER', parse: int(1, 1_000_000), default: 32 },
  maxPendingUpgrades: { env: 'TIER_MAX_PENDING_UPGRADES', parse: int(1, 1_000_000), default: 1_000 },
  hubConnectRatePerSec: { env: 'TIER_HUB_CONNECT_RATE', parse: int(1, 1_000_000), default: 5_000 },
  maxLoopLagMs: { env: 'TIER_SHED_LOOP_LAG_MS', parse: int(0, 600_000), default: 0 },
  shedMemoryFraction: { env: 'TIER_SHED_MEMORY', parse: fraction, default: 0.85 },
  hubMaxDevices: { env: 'TIER_HUB_MAX_DEVICES', parse: int(1, 100_000), default: 512 },
  homeMaxRules: { env: 'TIER_MAX_RULES_PER_HOME', parse: int(1, 100_000), default: 200 },
  homeMaxScenes: { env: 'TIER_MAX_SCENES_PER_HOME', parse: int(1, 100_000), default: 200 },
  hubMaxAttrsPerDevice: { env: 'TIER_HUB_MAX_ATTRS', parse: int(1, 64), default: 64 },
  hubMaxValueBytes: { env: 'TIER_HUB_MAX_VALUE_BYTES', parse: int(1, 1024), default: 1024 },
  hubMaxShadowBytes: { env: 'TIER_HUB_MAX_SHADOW_BYTES', parse: int(1024, 64 * 1024 * 1024), default: 128 * 1024 },
  hubMaxDesiredBytes: { env: 'TIER_HUB_MAX_DESIRED_BYTES', parse: int(1024, 64 * 1024 * 1024), default: 128 * 1024 },
  hubMaxCommandsInFlight: { env: 'TIER_HUB_MAX_COMMANDS', parse: int(1, 100_000), default: 32 },
  reusePort: { env: 'TIER_REUSE_PORT', parse: bool },
  secretKey: { env: 'TIER_SECRET_KEY', parse: secretKey },
  secretKeysOld: { env: 'TIER_SECRET_KEYS_OLD', parse: secretKeyList },
  secretsChanged: { env: 'TIER_SECRETS_CHANGED', parse: secretNames, default: [] },
  jwtRequireExp: { env: 'TIER_JWT_REQUIRE_EXP', parse: bool, default: true },
  jwtAudience: { env: 'TIER_JWT_AUDIENCE', parse: text },
  jwtIssuer: { env: 'TIER_JWT_ISSUER', parse: text },
  secretGraceS: { env: 'TIER_SECRET_GRACE_S', parse: int(0, 90 * 86_400), default: 7 * 86_400 },
  pushWebhookUrl: { env: 'TIER_PUSH_WEBHOOK_URL', parse: webhookUrl },
  pushWebhookSecret: { env: 'TIER_PUSH_WEBHOOK_SECRET', parse: secret(32) },
  pushWebhookTimeoutMs: { env: 'TIER_PUSH_WEBHOOK_TIMEOUT_MS', parse: int(100, 120_000), default: 10_000 },
  pushConcurrency: { env: 'TIER_PUSH_CONCURRENCY', parse: int(1, 256), default: 8 },
  pushAttempts: { env: 'TIER_PUSH_ATTEMPTS', parse: int(1, 1_000), default: 10 },
  pushMaxBackoffMs: { env: 'TIER_PUSH_MAX_BACKOFF_MS', parse: int(1_000, 3_600_000), default: 60_000 },
  pushKeepFailedS: { env: 'TIER_PUSH_KEEP_FAILED_S', parse: int(60, 31_536_000), default: 604_800 },
  pushMaxQueued: { env: 'TIER_PUSH_MAX_QUEUED', parse: int(100, 100_000_000), default: 100_000 },
};

const ENV_PREFIX = 'TIER_';
/** The secrets README.md's examples use (its quick start and its three nodes on one machine). */
const README_DEMO_VALUES: ReadonlySet<string> = new Set(['demo-admin-token-0123456789', 'demo-jwt-secret-0123456789abcdef']);

export function loadConfig(env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const warnings: string[] = [];
  const file = readConfigFile(env.CONFIG_FILE);
  for (const key of Object.keys(file)) {
    if (Object.hasOwn(FIELDS, key)) continue;
    const meant = closestName(key, Object.keys(FIELDS));
    warnings.push(`CONFIG_FILE: unknown key "${key}" ignored (${meant ? `did you mean "${meant}"?` : `known: ${Object.keys(FIELDS).join(', ')}`})`);
  }
  const known = new Set(Object.values(FIELDS).map((f) => f.env));
  for (const name of Object.keys(env)) {
    if (!name.startsWith(ENV_PREFIX) || known.has(name)) continue;
    const meant = closestName(name, known);
    warnings.push(`environment: unknown variable ${name} ignored${meant ? ` (did you mean ${meant}?)` : ''}`);
  }

  const out: Record<string, unknown> = {};
  for (const key of Object.keys(FIELDS) as Array<keyof Config>) out[key] = readField(key, env, file);

  const cluster = out.natsUrl !== undefined && out.redisUrl !== undefined;
  // each node would generate its own: tokens minted on one node would be refused by the others
  for (const [key, env] of [['adminToken', 'ADMIN_TOKEN'], ['jwtSecret', 'JWT_SECRET']] as const) {
    if (cluster && out[key] === undefined) throw new ConfigError(`${env}: cluster mode needs it set (not empty), the same on every node; make one with ${MAKE_SECRET}`);
  }
  // long enough to pass the checks, and printed in the README for anyone to read
  for (const [key, env] of [['adminToken', 'ADMIN_TOKEN'], ['jwtSecret', 'JWT_SECRET']] as const) {
    if (typeof out[key] === 'string' && README_DEMO_VALUES.has(out[key])) warnings.push(`${env}: the README's demo value, which anyone can read: for a demo only; make one with ${MAKE_SECRET}`);
  }
  const generated: LoadedConfig['generated'] = [];
  if (out.adminToken === undefined) {
    out.adminToken = randomBytes(24).toString('base64url');
    generated.push('adminToken');
  }
  if (out.jwtSecret === undefined) {
    out.jwtSecret = randomBytes(32).toString('base64url');
    generated.push('jwtSecret');
  }
  out.nodeId ??= `node-${randomUUID().slice(0, 8)}`;
  out.release ??= codeRelease();
  const config = out as unknown as Config;
  if ((config.natsUrl === undefined) !== (config.redisUrl === undefined)) {
    throw new ConfigError('NATS_URL and REDIS_URL: cluster mode needs both (set both, or neither for the embedded default)');
  }
  config.reusePort ??= isClusterMode(config);
  checkTogether(config, env, isClusterMode(config));
  return { config, warnings, generated };
}

/** One setting: the environment's value if set and not empty, else CONFIG_FILE's, else the default; parsed and checked. */
function readField<K extends keyof Config>(key: K, env: NodeJS.ProcessEnv, file: Record<string, unknown>): Config[K] {
  const field = FIELDS[key] as Field<K>;
  const fromEnv = env[field.env];
  const raw = fromEnv !== undefined && fromEnv !== '' ? fromEnv : file[key];
  return raw === undefined ? (field.default as Config[K]) : field.parse(raw, fromEnv !== undefined && fromEnv !== '' ? field.env : `CONFIG_FILE.${key}`);
}

/**
 * The few settings a command-line tool needs, read as the node reads them (environment over
 * CONFIG_FILE over the default), without the node's checks of the whole (a tool needs no JWT secret).
 */
export function toolSettings<K extends keyof Config>(keys: readonly K[], env: NodeJS.ProcessEnv = process.env): Pick<Config, K> {
  const file = readConfigFile(env.CONFIG_FILE);
  const out = {} as Pick<Config, K>;
  for (const key of keys) out[key] = readField(key, env, file);
  return out;
}

/** Cluster mode is on when both backends are configured. */
export function isClusterMode(config: Config): boolean {
  return config.natsUrl !== undefined && config.redisUrl !== undefined;
}
