import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { Redis, type RedisOptions } from 'ioredis';
import { TierError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { CallObserver } from './ports.js';
import { redactUrl } from '../config/backend-urls.js';
import { ConfigError, type Config } from '../config/config.js';
import { redisTlsHint } from './tls-failure.js';
import { backoff } from '../actors/clock.js';

/** @default 'tier:': every key starts with it, so one Redis can serve several deployments or tests. */
export const DEFAULT_REDIS_PREFIX = 'tier:';

/** REDIS_TLS_* files: the CA to trust (instead of Node's bundled ones) and a client certificate with its key (mutual TLS). */
export interface RedisTlsFiles {
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
}

/** The REDIS_TLS_* files, as every Redis client of a node or tool takes them. */
export function redisTlsOf(config: Pick<Config, 'redisTlsCaFile' | 'redisTlsCertFile' | 'redisTlsKeyFile'>): { tls: RedisTlsFiles } {
  return { tls: { caFile: config.redisTlsCaFile, certFile: config.redisTlsCertFile, keyFile: config.redisTlsKeyFile } };
}

export interface RedisClientOptions {
  /** connection name shown by `CLIENT LIST`, e.g. `tier:node-1:shadows` */
  name: string;
  log: Logger;
  /**
   * What a command does while the connection is down.
   * - `'fail'` (the ports): it fails at once, and a command in flight when the connection drops
   *   fails at once too (its outcome unknown). The caller decides: a hub handshake is refused as
   *   temporary, the shadow store keeps its batch and retries it. No second, hidden queue in the
   *   client that grows without bound and replays stale writes minutes later.
   * - `'wait'`: commands wait for the next connection however long it takes (ioredis' offline
   *   queue, `maxRetriesPerRequest: null`): only for blocking consumers such as BullMQ workers.
   * @default 'fail'
   */
  offline?: 'fail' | 'wait';
  /** @default 2_000 (ms): a command without an answer fails after this (`'fail'` only) */
  commandTimeoutMs?: number;
  /** @default 5_000 (ms): how long the first connection may take before start-up fails */
  connectTimeoutMs?: number;
  /** @default 2_000 (ms): the cap of the exponential reconnect backoff */
  maxBackoffMs?: number;
  /** told of every call: a command alone, or a whole pipeline or MULTI (not each command in it) */
  observe?: CallObserver;
  /** files for a `rediss://` URL; read again at each connect, so a rotated certificate is used at the next reconnect */
  tls?: RedisTlsFiles | undefined;
  /** the connection serves BullMQ, which reads INFO: a user that may not, or a server without it, is refused at connect */
  needsInfo?: boolean;
}

/**
 * Connects to the Redis at `url` (`redis://[:password@]host:port[/db]`, `rediss://` for TLS) and
 * resolves once it is ready: a node does not start without its Redis. After that the client
 * reconnects forever with capped, jittered exponential backoff, logging one warning per outage
 * and one line when it is back.
 */
export async function connectRedis(url: string, options: RedisClientOptions): Promise<Redis> {
  const { name, log } = options;
  const offline = options.offline ?? 'fail';
  const maxBackoffMs = options.maxBackoffMs ?? 2_000;
  const where = redactUrl(url);
  const settings: RedisOptions = {
    lazyConnect: true,
    connectionName: name,
    connectTimeout: options.connectTimeoutMs ?? 5_000,
    enableReadyCheck: true,
    keepAlive: 10_000,
    // ioredis sends CLIENT SETINFO at each connect, which a Redis before 7.2 refuses: two errors a
    // connection on a healthy node (review "alerts"); connectionName names it already
    disableClientInfo: true,
    retryStrategy: (attempt) => backoff(attempt, maxBackoffMs),
    ...(offline === 'fail'
      ? {
          // fail fast while disconnected (see `offline`); in-flight commands are failed on the
          // first disconnect (0 retries) instead of being resent after the reconnect
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          autoResendUnfulfilledCommands: false,
          commandTimeout: options.commandTimeoutMs ?? 2_000,
        }
      : { enableOfflineQueue: true, maxRetriesPerRequest: null }),
  };
  const tls = tlsSettings(url, options.tls, log);
  if (tls !== undefined) settings.tls = tls;
  const client = new Redis(url, settings);
  if (options.observe) observeCalls(client, options.observe);
  // before the first ready the rejection below tells it (and the start-up wait logs it): no line per attempt
  let down = true;
  // ioredis rejects the first connect with "Connection is closed." alone: the error before it says why
  let lastError: Error | undefined;
  client.on('error', (err: Error) => {
    lastError = err;
    // every failed reconnect attempt emits one; the first of an outage is enough
    if (!down) log.warn({ err: err.message, redis: where, client: name }, 'redis connection failed; reconnecting');
    down = true;
  });
  client.on('close', () => {
    if (!down && client.status !== 'end') log.warn({ redis: where, client: name }, 'redis connection lost; reconnecting');
    if (client.status !== 'end') down = true;
  });
  let connected = false;
  client.on('ready', () => {
    if (connected && down) log.info({ redis: where, client: name }, 'redis connection back');
    connected = true;
    down = false;
  });
  try {
    await client.connect();
  } catch (err) {
    client.disconnect();
    throw new TierError('unavailable', `redis at ${where} is unreachable: ${connectFailure(lastError ?? (err as Error), url, options.tls?.certFile !== undefined)}`, { cause: lastError ?? err });
  }
  // BullMQ reads INFO and, refused it, spins a core without a word (a user made `-@dangerous` held
  // the node unready and deaf to SIGTERM): a user without it is a configuration to fix, said at start
  const refused = options.needsInfo ? await client.info('server').then(() => null, (err: Error) => (/NOPERM|unknown command/i.test(err.message) ? err : null)) : null;
  if (refused) {
    client.disconnect();
    throw new ConfigError(`REDIS_URL: this Redis does not let its user run INFO, which the push queue (BullMQ) needs (${refused.message}); allow it (ACL SETUSER <user> +info), or do not rename INFO away`);
  }
  return client;
}

/**
 * Times the client's calls. A pipeline's commands reach `sendCommand` one by one (with a stream, or
 * a pipeline index): they are skipped there and the pipeline's `exec` is timed once instead.
 * NOSCRIPT is not counted as an error: LuaScript answers it by loading the script.
 */
function observeCalls(client: Redis, observe: CallObserver): void {
  type Command = { pipelineIndex?: number; promise: Promise<unknown> };
  const finish = (started: number, p: Promise<unknown>) =>
    p.then(
      () => observe.done((performance.now() - started) / 1000, true),
      (err: unknown) => observe.done((performance.now() - started) / 1000, err instanceof Error && err.message.startsWith('NOSCRIPT')),
    );
  const target = client as unknown as { sendCommand(command: Command, stream?: unknown): unknown; pipeline(...a: unknown[]): { exec(...a: unknown[]): Promise<unknown> }; multi(...a: unknown[]): unknown };
  const sendCommand = target.sendCommand.bind(client);
  target.sendCommand = (command: Command, stream?: unknown) => {
    const started = performance.now();
    const result = sendCommand(command, stream);
    if (stream === undefined && command.pipelineIndex === undefined) void finish(started, command.promise);
    return result;
  };
  const timedExec = (batch: { exec(...a: unknown[]): Promise<unknown> }) => {
    const exec = batch.exec.bind(batch);
    batch.exec = (...a: unknown[]) => {
      const started = performance.now();
      const p = exec(...a);
      void finish(started, p);
      return p;
    };
    return batch;
  };
  const pipeline = target.pipeline.bind(client);
  target.pipeline = (...a: unknown[]) => timedExec(pipeline(...a));
  const multi = target.multi.bind(client);
  target.multi = (...a: unknown[]) => {
    const m = multi(...a);
    // multi({ pipeline: false }) answers a promise, not a batch
    return m !== null && typeof m === 'object' && 'exec' in m ? timedExec(m as { exec(...a: unknown[]): Promise<unknown> }) : m;
  };
}

/**
 * Ends a client: QUIT when connected (pending replies first), else drops the socket. A QUIT not
 * answered within `quitWithinMs` drops the socket too, failing what is still pending: a drain must
 * end. That bound is short only while Redis is known not to answer (`redisAnswering(false)`, from
 * the node's PING: a 'wait' client has no command timeout and waited for good); a Redis that
 * answers gets its pending replies in (a 1 s bound dropped a busy node's last history appends in a
 * rolling restart: events acknowledged to hubs never reached apps). 0 drops it at once (the caller
 * just saw a call to this connection time out).
 */
export async function closeRedis(client: Redis, quitWithinMs = quitBound): Promise<void> {
  if (client.status === 'end') return;
  if (client.status === 'ready' && quitWithinMs > 0) {
    let timer: NodeJS.Timeout | undefined;
    const quit = client.quit().then(
      () => true,
      // the connection went away meanwhile
      () => false,
    );
    const quitted = await Promise.race([quit, new Promise<false>((r) => (timer = setTimeout(() => r(false), quitWithinMs)))]);
    clearTimeout(timer);
    if (quitted) return;
  }
  client.disconnect();
}

/** How long a QUIT may wait for its answer before the socket is dropped, while Redis does not answer (ms). */
export const QUIT_WITHIN_MS = 1_000;
/** The same while Redis answers: its pending replies come first, within the time a drain has. */
export const QUIT_ANSWERING_MS = 10_000;
let quitBound = QUIT_ANSWERING_MS;

/** What the node's PING last saw (src/ports/redis-ping.ts): sets how long closeRedis waits for a QUIT. */
export function redisAnswering(answering: boolean): void {
  quitBound = answering ? QUIT_ANSWERING_MS : QUIT_WITHIN_MS;
}


/**
 * Key names. Keys of one hub carry the hash tag `{h:<hubId>}` so they hash to one Redis Cluster
 * slot: a Lua script or MULTI may touch several of them. Keys of different hubs, and a node's
 * liveness key (`{n:<nodeId>}`), live in other slots: nothing may touch those together atomically.
 */
export class RedisKeys {
  constructor(readonly prefix: string = DEFAULT_REDIS_PREFIX) {
    if (/[{}]/.test(prefix)) throw new TypeError(`redis key prefix "${prefix}" must not contain { or }: it would become the hash tag`);
  }

  /** `<prefix>{h:<hubId>}:<what>` */
  hub(hubId: string, what: string): string {
    return `${this.prefix}${hashTag('h', hubId)}:${what}`;
  }

  /** `<prefix>{n:<nodeId>}:<what>` */
  node(nodeId: string, what: string): string {
    return `${this.prefix}${hashTag('n', nodeId)}:${what}`;
  }

  /** `<prefix>{home:<homeId>}:<what>` */
  home(homeId: string, what: string): string {
    return `${this.prefix}${hashTag('home', homeId)}:${what}`;
  }

  /** `<prefix><what>`: a key that is only ever used alone (any slot will do) */
  single(what: string): string {
    return `${this.prefix}${what}`;
  }
}

/** `{<kind>:<id>}`; ids with braces are refused, they would change which part is the tag. */
export function hashTag(kind: string, id: string): string {
  if (id.length === 0 || /[{}]/.test(id)) throw new TypeError(`id "${id}" cannot be used in a redis key`);
  return `{${kind}:${id}}`;
}

/**
 * A Lua script run by EVALSHA, falling back to EVAL when Redis does not know it (first use, or
 * after a restart emptied the script cache). Scripts must declare every key they touch in KEYS.
 */
export class LuaScript {
  readonly sha: string;

  constructor(readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  async run(client: Redis, keys: string[], args: Array<string | number | Buffer>): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return client.eval(this.lua, keys.length, ...keys, ...args);
    }
  }

  /** As `run`, with bulk strings answered as Buffers (binary values stay intact). */
  async runBuffer(client: Redis, keys: string[], args: Array<string | number | Buffer>): Promise<unknown> {
    try {
      return await client.callBuffer('EVALSHA', this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return client.callBuffer('EVAL', this.lua, keys.length, ...keys, ...args);
    }
  }
}

/**
 * Why a first connection failed, so credentials read apart from the network: WRONGPASS and NOAUTH
 * (the password of REDIS_URL wrong or missing), ENOTFOUND, ECONNREFUSED, as Redis or the OS said it.
 */
function connectFailure(err: Error, url: string, clientCert: boolean): string {
  return /^(WRONGPASS|NOAUTH)\b/.test(err.message) ? `${err.message} (check the password in REDIS_URL)` : `${err.message}${redisTlsHint(err, url, clientCert)}`;
}

/**
 * ioredis' TLS options from REDIS_TLS_* files, undefined when none is given. A file given with a
 * `redis://` URL is refused: it would be ignored, and the connection sent in plaintext.
 * ioredis copies `tls` into each new socket's options, so its fields are getters: the first read of
 * a copy reads the three files again, and a rotated certificate, key or CA is used from the next
 * reconnect on, without a restart. The set read is used only if TLS takes it whole (a certificate
 * and its key that match, whole PEMs): half-way through a rotation (the key replaced, not yet its
 * certificate; a file half written or gone) the last good set is kept, with a warn line. Such a set
 * made `tls.connect` throw, and ioredis then ended the client for good (review diff15).
 */
export function tlsSettings(url: string, files: RedisTlsFiles | undefined, log: Logger): RedisOptions['tls'] {
  if (files === undefined || (files.caFile === undefined && files.certFile === undefined && files.keyFile === undefined)) return undefined;
  if (!/^rediss:/i.test(url)) throw new ConfigError(`REDIS_TLS_*: TLS files need a rediss:// URL, got ${redactUrl(url)}`);
  const paths = { ca: files.caFile, cert: files.certFile, key: files.keyFile };
  const read = (): Partial<Record<'ca' | 'cert' | 'key', Buffer>> => {
    const set: Partial<Record<'ca' | 'cert' | 'key', Buffer>> = {};
    for (const field of ['ca', 'cert', 'key'] as const) if (paths[field] !== undefined) set[field] = readFileSync(paths[field]);
    // throws what tls.connect would: a key that does not match its certificate, a broken PEM
    createSecureContext(set);
    return set;
  };
  // at start a set that cannot be read or used fails the start
  let last = read();
  // read once per copy: Object.assign reads the getters in one synchronous run
  let fresh = false;
  const current = (): typeof last => {
    if (fresh) return last;
    fresh = true;
    queueMicrotask(() => (fresh = false));
    try {
      last = read();
    } catch (err) {
      log.warn({ err: (err as Error).message, files: Object.values(paths).filter(Boolean) }, 'redis TLS files unusable at reconnect (half-way through a rotation?); the last usable set is used');
    }
    return last;
  };
  const tls = {};
  for (const field of ['ca', 'cert', 'key'] as const) {
    if (paths[field] !== undefined) Object.defineProperty(tls, field, { enumerable: true, get: () => current()[field] });
  }
  return tls;
}
