import { randomBytes, randomUUID } from 'node:crypto';
import { accessSync, constants, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseSecretKey } from '../auth/secret-box.js';
import { natsConnectTarget, redactUrl } from './backend-urls.js';
import { codeRelease } from './release.js';
import { closestName } from './closest-name.js';
import { parseProxy } from './proxy.js';

/**
 * The one typed configuration, layered defaults → JSON file (`CONFIG_FILE`) → environment. Over 400 lines:
 * one object by design (each setting's type, doc, variable, parser and default side by side), its
 * checks beside it. Bad values fail fast naming the key; unknown file keys and unknown `TIER_*`
 * variables are returned as warnings so typos do not pass silently.
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

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly code = 'config_invalid';
}

type Parser<T> = (raw: unknown, key: string) => T;

/** A decimal integer as written: `Number()` alone reads "0x1F90" as 8080 and "1e3" as 1000. */
const DECIMAL = /^[+-]?[0-9]+$/;
const int =
  (min: number, max: number): Parser<number> =>
  (raw, key) => {
    // a string or a number only: String([8080]) is "8080", so a CONFIG_FILE list passed as a port
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && DECIMAL.test(raw.trim()) ? Number(raw.trim()) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${key}: expected an integer in ${min}..${max}, got ${JSON.stringify(raw)}`);
    return n;
  };
/** 0 (off) or a period of at least `min` ms: at 1 ms the resident-size read took 4 % of an idle node's core (review "config") */
const offOrAtLeast =
  (min: number, max: number): Parser<number> =>
  (raw, key) => {
    const n = int(0, max)(raw, key);
    if (n !== 0 && n < min) throw new ConfigError(`${key}: expected 0 (off) or ${min}..${max}, got ${JSON.stringify(raw)}`);
    return n;
  };
/** OTEL_TRACES_SAMPLER_ARG as OpenTelemetry's SDKs read it: a decimal, with an exponent too, never hex */
const SAMPLER_RATIO = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
/** `0.25`, `1`, `.5`: decimal as written (`Number` also takes `0x0` and `5e-1`: `TIER_SHED_MEMORY=0x0` turned shedding off) */
const DECIMAL_FRACTION = /^(?:\d+(?:\.\d*)?|\.\d+)$/;
const fraction: Parser<number> = (raw, key) => {
  const n = typeof raw === 'number' ? raw : DECIMAL_FRACTION.test(String(raw).trim()) ? Number(String(raw).trim()) : NaN;
  if (!Number.isFinite(n) || n < 0 || n > 1 || String(raw).trim() === '') throw new ConfigError(`${key}: expected a number in 0..1, got ${JSON.stringify(raw)}`);
  return n;
};
const text: Parser<string> = (raw, key) => {
  if (typeof raw !== 'string' || raw.length === 0) throw new ConfigError(`${key}: expected a non-empty string`);
  return raw;
};
/**
 * NODE_ID: a pod name, a Nomad allocation's `web.api[0]`, an ECS task's ARN; only what breaks is
 * refused: a `{` or `}` would move its Redis keys' hash tag, whitespace or a control character its log lines.
 */
const nodeIdText: Parser<string> = (raw, key) => {
  const v = text(raw, key);
  if (v.length > 256 || /[{}\s\p{Cc}]/u.test(v)) throw new ConfigError(`${key}: ${JSON.stringify(v)} must be 1..256 characters without braces, whitespace or control characters`);
  return v;
};
/** HOST, ADMIN_HOST: an IP address (IPv6 with or without brackets) or a host name, trimmed; `' '` and `[x]` bound nowhere and read as a port in use. */
const listenHost: Parser<string> = (raw, key) => {
  const v = text(raw, key).trim();
  const host = v.startsWith('[') && v.endsWith(']') && isIP(v.slice(1, -1)) === 6 ? v.slice(1, -1) : v;
  // labels of letters, digits, `-` and `_` (compose service names), a trailing dot allowed
  if (isIP(host) === 0 && !/^(?=.{1,254}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/.test(host)) {
    throw new ConfigError(`${key}: ${JSON.stringify(raw)} is neither an IP address nor a host name`);
  }
  return host;
};
/**
 * Shortest secrets accepted (characters). JWT_SECRET is an HS256 key: RFC 7518 §3.2 asks for 256
 * bits. ADMIN_TOKEN is a bearer token compared whole: 24 random characters are past online guessing.
 * Generated ones are longer (32 and 43).
 */
export const SECRET_MIN_CHARS = { ADMIN_TOKEN: 24, JWT_SECRET: 32 } as const;
const MAKE_SECRET = '`openssl rand -base64 32`';

/**
 * Refuses what is a placeholder rather than a secret: the `change-me-…` values of deploy/k8s (so a
 * copied manifest cannot run as shipped) and one character repeated. The value is never echoed.
 */
function refusePlaceholder(s: string, key: string, make: string): void {
  if (/change-?me/i.test(s)) throw new ConfigError(`${key}: still a placeholder (it contains "change-me"); set a random value of your own, e.g. ${make}`);
  // a value of one or two characters is refused for its length (the next check), not as repeated
  if (s.length > 2 && /^(.)\1*$/.test(s.trim())) throw new ConfigError(`${key}: one character repeated is not a secret; set a random value, e.g. ${make}`);
}

const secret =
  (minChars: number): Parser<string> =>
  (raw, key) => {
    const s = text(raw, key);
    refusePlaceholder(s, key, MAKE_SECRET);
    if (s.length < minChars) throw new ConfigError(`${key}: must be at least ${minChars} characters, got ${s.length}; make one with ${MAKE_SECRET}`);
    // the API tells the admin token from a user JWT by its shape, and limits guesses of it by that
    if (minChars === SECRET_MIN_CHARS.ADMIN_TOKEN && /^[\w-]+\.[\w-]+\.[\w-]*$/.test(s)) {
      throw new ConfigError(`${key}: shaped like a JWT (three parts joined by dots), which the API takes for a user token; make one with ${MAKE_SECRET}`);
    }
    return s;
  };
/** Secrets comma-separated (or a JSON list in CONFIG_FILE), each checked as `secret(minChars)` checks one: a rotation's other values. */
const secretList =
  (minChars: number): Parser<readonly string[]> =>
  (raw, key) =>
    listed(raw, key).map((s, i) => secret(minChars)(s, `${key}[${i}]`));
/** The items of a comma-separated value (or a JSON list in CONFIG_FILE), trimmed, empty ones left out. */
const listed = (raw: unknown, key: string): unknown[] =>
  (Array.isArray(raw) ? raw : text(raw, key).split(',')).map((s: unknown) => (typeof s === 'string' ? s.trim() : s)).filter((s: unknown) => s !== '');
/** A file the node reads (a certificate, a credentials file): refused at start when it cannot be read, not at the first connect. */
const readableFile: Parser<string> = (raw, key) => {
  const path = text(raw, key);
  try {
    accessSync(path, constants.R_OK);
  } catch (err) {
    throw new ConfigError(`${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return path;
};
/** Proxies comma-separated (or a JSON list in CONFIG_FILE): addresses and CIDR blocks. */
const proxyList: Parser<readonly string[]> = (raw, key) =>
  listed(raw, key).map((p, i) => {
    try {
      parseProxy(text(p, `${key}[${i}]`));
    } catch (err) {
      throw new ConfigError(`${key}[${i}]: ${(err as Error).message}`);
    }
    return p as string;
  });
/** Host names comma-separated (or a JSON list in CONFIG_FILE), `*` for any. */
const hostNames: Parser<readonly string[]> = (raw, key) =>
  (Array.isArray(raw) ? raw : text(raw, key).split(',')).map((n: unknown, i: number) => {
    const name = text(typeof n === 'string' ? n.trim() : n, `${key}[${i}]`);
    if (name !== '*' && !/^[A-Za-z0-9.-]+$/.test(name)) throw new ConfigError(`${key}[${i}]: "${name}" is not a host name (letters, digits, dots and hyphens, no port)`);
    return name;
  });
const secretKey: Parser<string> = (raw, key) => {
  const s = text(raw, key);
  refusePlaceholder(s, key, '`openssl rand -hex 32`');
  try {
    parseSecretKey(s, key);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  return s;
};
const secretKeyList: Parser<string> = (raw, key) => {
  const s = text(raw, key);
  s.split(',').forEach((k, i) => secretKey(k, `${key}[${i}]`));
  return s;
};
const SHARED_SECRETS = ['JWT_SECRET', 'ADMIN_TOKEN', 'TIER_SECRET_KEY'];
const secretNames: Parser<readonly string[]> = (raw, key) => {
  const names = text(raw, key).split(',').map((n) => n.trim()).filter(Boolean);
  const bad = names.filter((n) => !SHARED_SECRETS.includes(n));
  if (bad.length > 0) throw new ConfigError(`${key}: ${bad.join(', ')} is not a shared secret (expected some of ${SHARED_SECRETS.join(', ')})`);
  return names;
};
const bool: Parser<boolean> = (raw, key) => {
  if (typeof raw === 'boolean') return raw;
  const s = String(raw).toLowerCase();
  if (['1', 'true', 'yes'].includes(s)) return true;
  if (['0', 'false', 'no', ''].includes(s)) return false;
  throw new ConfigError(`${key}: expected 1/0/true/false, got ${JSON.stringify(raw)}`);
};
const oneOf =
  <T extends string>(values: readonly T[]): Parser<T> =>
  (raw, key) => {
    if (typeof raw !== 'string' || !(values as readonly string[]).includes(raw)) throw new ConfigError(`${key}: expected one of ${values.join(', ')}, got ${JSON.stringify(raw)}`);
    return raw as T;
  };
/**
 * A URL of one of `schemes` (`list`: several, comma-separated). Errors show it through `redactUrl`:
 * a backend URL carries its password, and the message lands in logs.
 */
const url =
  (schemes: string[], list = false): Parser<string> =>
  (raw, key) => {
    const s = text(raw, key);
    const parts = list ? s.split(',').map((p) => p.trim()).filter((p) => p.length > 0) : [s];
    if (parts.length === 0) throw new ConfigError(`${key}: expected a non-empty string`);
    for (const part of parts) {
      let parsed: URL;
      try {
        parsed = new URL(part);
      } catch {
        throw new ConfigError(`${key}: not a URL: ${redactUrl(part)}`);
      }
      // shown as logs show it: a collector's or hook's token may sit in its path or query (review diff9)
      if (!schemes.includes(parsed.protocol)) throw new ConfigError(`${key}: expected a ${schemes.join(' or ')} URL, got ${shownUrl(parsed)}`);
      try {
        decodeURIComponent(parsed.username + parsed.password);
      } catch {
        // the client would throw it later, with a stack and without the setting's name
        throw new ConfigError(`${key}: its user, password or token holds a % that starts no percent-escape: write % as %25`);
      }
    }
    if (list) {
      try {
        natsConnectTarget(s);
      } catch (err) {
        throw new ConfigError((err as Error).message);
      }
    }
    return s;
  };

/** TIER_PUSH_WEBHOOK_URL taken apart: what is fetched, the authorization its userinfo gives, and how it is shown. */
export interface WebhookTarget {
  /** the URL POSTed to: without userinfo (fetch refuses a URL with credentials) or fragment */
  url: string;
  /** `Basic <base64 of user:password>` when the URL has a userinfo */
  authorization?: string;
  /** for logs, errors and `/debug/diagnose`: the password (or a lone user) and every query value as `***` */
  shown: string;
}

/**
 * Takes the webhook URL apart. Credentials in it become an `Authorization: Basic` header rather
 * than a refusal: a receiver behind a gateway that asks for Basic auth is common, and a userinfo
 * is how REDIS_URL and NATS_URL carry theirs (and curl reads it the same way); the signature still
 * proves the sender. The query stays in the URL fetched (a receiver keyed by `?api_key=`) but is
 * never shown. Throws a TypeError on a URL that does not parse, or (showing it masked) on
 * credentials Basic cannot carry: not valid percent-encoding, a colon in the user name. Here, so
 * the start refuses what the sender (ports/push-queue/push-webhook.ts) could not send.
 */
export function webhookTarget(raw: string): WebhookTarget {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new TypeError('not a URL');
  }
  const shown = shownUrl(u);
  let authorization: string | undefined;
  if (u.username !== '' || u.password !== '') {
    let user: string, password: string;
    try {
      [user, password] = [decodeURIComponent(u.username), decodeURIComponent(u.password)];
    } catch {
      throw new TypeError(`its credentials are not valid percent-encoding: ${shown}`);
    }
    // RFC 7617: the user-id of Basic cannot hold a colon
    if (user.includes(':')) throw new TypeError(`its user name holds a colon (%3A), which Basic authorization cannot carry: ${shown}`);
    authorization = `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
  }
  u.username = '';
  u.password = '';
  u.hash = '';
  return { url: u.href, ...(authorization !== undefined ? { authorization } : {}), shown };
}

/**
 * A URL as logs and errors show it: the password (a lone user name: the userinfo), each path
 * segment of 16 characters or more (Slack- and Teams-style hooks carry their secret there; a route
 * name is shorter) and the query's values as `***`: `https://hooks.example.com/services/T0/B0/***`.
 */
export function shownUrl(u: URL): string {
  const userinfo = u.password !== '' ? `${u.username}:***@` : u.username !== '' ? '***@' : '';
  const path = u.pathname.split('/').map((s) => (s.length >= 16 ? '***' : s)).join('/');
  return `${u.protocol}//${userinfo}${u.host}${path}${maskedQuery(u.search)}`;
}

/** `shownUrl` of a URL given as text; one that does not parse is not shown at all. */
export function shownUrlText(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  try {
    return shownUrl(new URL(raw));
  } catch {
    return '(not a URL)';
  }
}

/** A URL's `?…` with each value (or a parameter without one, whole) as `***`: `?api_key=***&***`. */
function maskedQuery(search: string): string {
  if (search === '') return '';
  return `?${search.slice(1).split('&').map((p) => (p.includes('=') ? `${p.slice(0, p.indexOf('='))}=***` : '***')).join('&')}`;
}

/**
 * TIER_PUSH_WEBHOOK_URL: an http(s) URL whose credentials, if any, can be sent as a Basic
 * authorization (`webhookTarget`). Errors show it masked: its password and query values are secrets.
 */
const webhookUrl: Parser<string> = (raw, key) => {
  const s = text(raw, key);
  let target: WebhookTarget;
  try {
    target = webhookTarget(s);
  } catch (err) {
    throw new ConfigError(`${key}: ${(err as Error).message}`);
  }
  if (!/^https?:\/\//.test(target.url)) throw new ConfigError(`${key}: expected a https: or http: URL, got ${target.shown}`);
  return s;
};

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
  if (isClusterMode(config) && config.secretKey === undefined) {
    throw new ConfigError('TIER_SECRET_KEY: cluster mode needs it, the same on every node (hub secrets are sealed with it in Redis); make one with `openssl rand -hex 32`');
  }
  if (config.port !== 0 && config.port === config.adminPort && hostsOverlap(config.host, config.adminHost)) {
    throw new ConfigError(
      `PORT and ADMIN_PORT: both ${config.port} on HOST ${config.host} and ADMIN_HOST ${config.adminHost}, which overlap; the admin port (metrics, readiness, the admin API) needs a port of its own`,
    );
  }
  if ((config.natsTlsCertFile === undefined) !== (config.natsTlsKeyFile === undefined)) throw new ConfigError('NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE: a client certificate goes with its key (set both, or neither)');
  if (config.idleMs <= config.heartbeatMs) throw new ConfigError(`TIER_IDLE_MS (${config.idleMs}) must exceed TIER_HEARTBEAT_MS (${config.heartbeatMs})`);
  if (config.commandTimeoutMs > config.commandTimeoutMaxMs) throw new ConfigError('TIER_COMMAND_TIMEOUT_MS must not exceed TIER_COMMAND_TIMEOUT_MAX_MS');
  // OpenTelemetry's own variables, as tracing.ts reads them (only with an endpoint): `0x0` sampled
  // nothing and a garbage endpoint was taken without a word (review "config"). The argument is a
  // ratio only for the ratio samplers (another sampler's, jaeger_remote's, is not ours to refuse)
  for (const key of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']) if (env[key]) url(['http:', 'https:'])(env[key], key);
  const sampler = env.OTEL_TRACES_SAMPLER?.trim() ?? '';
  const ratioArg = ['', 'traceidratio', 'parentbased_traceidratio'].includes(sampler) ? env.OTEL_TRACES_SAMPLER_ARG?.trim() : undefined;
  if ((env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) && ratioArg && !(SAMPLER_RATIO.test(ratioArg) && Number(ratioArg) <= 1)) {
    throw new ConfigError(`OTEL_TRACES_SAMPLER_ARG: expected a ratio in 0..1 (a decimal, 1e-2 too), got ${JSON.stringify(env.OTEL_TRACES_SAMPLER_ARG)}`);
  }
  // a set of one attribute at its largest value must fit a frame to the hub: else a desired value is
  // stored, answered 200 and never delivered (review "config"); 3 UTF-8 bytes a character, ids and framing
  const oneValue = 3 * config.hubMaxValueBytes + 320;
  if (config.maxFrameBytes < oneValue) throw new ConfigError(`TIER_MAX_FRAME_BYTES (${config.maxFrameBytes}) cannot carry one attribute of TIER_HUB_MAX_VALUE_BYTES (${config.hubMaxValueBytes} characters): it needs ${oneValue}; raise it or lower TIER_HUB_MAX_VALUE_BYTES`);
  // an unsigned request would let anyone who reaches the receiver send notifications to a home's people
  if (config.pushWebhookUrl !== undefined && config.pushWebhookSecret === undefined) {
    throw new ConfigError(`TIER_PUSH_WEBHOOK_SECRET: needed with TIER_PUSH_WEBHOOK_URL, the same on every node, so the receiver can check each request; make one with ${MAKE_SECRET}`);
  }
  return { config, warnings, generated };
}

/**
 * Whether two listeners' hosts can take the same port's connections: the same address, or either
 * one every address. Names other than `localhost` are not resolved: two names are taken to overlap.
 */
function hostsOverlap(a: string, b: string): boolean {
  const any = (h: string) => h === '0.0.0.0' || h === '::' || h === '[::]' || h === '';
  // `localhost`, `127.0.0.1` and `::ffff:127.0.0.1` are one address (the start failed on the port instead)
  const plain = (h: string) => {
    const bare = h.replace(/^\[(.*)\]$/, '$1').toLowerCase().replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
    return bare === 'localhost' ? '127.0.0.1' : bare;
  };
  const literal = (h: string) => isIP(h) !== 0;
  const [x, y] = [plain(a), plain(b)];
  return x === y || any(x) || any(y) || !(literal(x) && literal(y));
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

export function readConfigFile(path: string | undefined): Record<string, unknown> {
  if (path === undefined || path === '') return {};
  let parsed: unknown;
  let text: string;
  try {
    // a byte-order mark (Windows editors) is no reason to refuse the file
    text = readFileSync(path, 'utf8').replace(/^\uFEFF/, '');
  } catch (err) {
    throw new ConfigError(`CONFIG_FILE: cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`CONFIG_FILE: ${path} is not valid JSON${whereInvalid(text, err)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`CONFIG_FILE: ${path} must hold a JSON object`);
  return parsed as Record<string, unknown>;
}

/**
 * Where JSON.parse stopped, as a line and column when its message says (V8 quotes the text around
 * other errors: a secret written unquoted or in single quotes showed its first characters; review
 * "logs"), never the text itself.
 */
function whereInvalid(text: string, err: unknown): string {
  const at = /at position (\d+)/.exec(err instanceof Error ? err.message : '');
  if (at === null) return ' (a value unquoted or in single quotes, or a trailing comma?)';
  const before = text.slice(0, Number(at[1]));
  const line = before.split('\n').length;
  return ` at line ${line}, column ${before.length - before.lastIndexOf('\n')}`;
}

/** Cluster mode is on when both backends are configured. */
export function isClusterMode(config: Config): boolean {
  return config.natsUrl !== undefined && config.redisUrl !== undefined;
}
