/**
 * The checks of settings read together, after each was parsed alone (parsers.ts): pairs that go
 * together, bounds one setting sets another, what cluster mode needs.
 */
import { isIP } from 'node:net';
import type { Config } from './config.js';
import { ConfigError, MAKE_SECRET, SAMPLER_RATIO, url } from './parsers.js';

export function checkTogether(config: Config, env: NodeJS.ProcessEnv, cluster: boolean): void {
  if (cluster && config.secretKey === undefined) {
    throw new ConfigError('TIER_SECRET_KEY: cluster mode needs it, the same on every node (hub secrets are sealed with it in Redis); make one with `openssl rand -hex 32`');
  }
  if (config.port !== 0 && config.port === config.adminPort && hostsOverlap(config.host, config.adminHost)) {
    throw new ConfigError(
      `PORT and ADMIN_PORT: both ${config.port} on HOST ${config.host} and ADMIN_HOST ${config.adminHost}, which overlap; the admin port (metrics, readiness, the admin API) needs a port of its own`,
    );
  }
  if ((config.redisTlsCertFile === undefined) !== (config.redisTlsKeyFile === undefined)) throw new ConfigError('REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE: a client certificate goes with its key (set both, or neither)');
  const redisTls = [['REDIS_TLS_CA_FILE', config.redisTlsCaFile], ['REDIS_TLS_CERT_FILE', config.redisTlsCertFile]].find(([, file]) => file !== undefined);
  // given with redis:// the files would be ignored and the password sent in plaintext
  if (redisTls !== undefined && !/^rediss:/i.test(config.redisUrl ?? '')) throw new ConfigError(`${redisTls[0]}: TLS files need REDIS_URL to be rediss://`);
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
