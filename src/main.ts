import { clusterPorts } from './cluster/cluster-ports.js';
import { ConfigError, isClusterMode, loadConfig } from './config/config.js';
import { createLogger } from './log/logger.js';
import { startServer } from './server.js';

/** `npm start`: one connection node on the embedded default unless NATS_URL and REDIS_URL are set. */
async function main(): Promise<void> {
  let loaded;
  try {
    loaded = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const { config, warnings, generated } = loaded;
  const log = createLogger(config.logLevel, { node: config.nodeId });
  for (const w of warnings) log.warn(w);
  for (const key of generated) {
    const env = key === 'adminToken' ? 'ADMIN_TOKEN' : 'JWT_SECRET';
    log.warn(`${env} not set: generated one for this run only (${env}=${config[key]}); set it to keep it across restarts`);
  }

  const cluster = isClusterMode(config);
  const server = await startServer(config, log, cluster ? () => clusterPorts(config, log) : undefined);
  const host = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
  log.info({ port: server.port, adminPort: server.adminPort, mode: cluster ? 'cluster' : 'embedded' }, 'node ready');
  process.stdout.write(
    [
      '',
      `hubtier node ${config.nodeId} listening: hubs ws://${host}:${server.port}/hub/v1, apps ws://${host}:${server.port}/app/v1, API http://${host}:${server.port}/v1`,
      `admin: http://${config.adminHost}:${server.adminPort}/healthz /readyz /metrics`,
      `connect simulated hubs:  npm run sim -- --url ws://${host}:${server.port} --hubs 10 --devices 8 --admin-token ${config.adminToken}`,
      '',
    ].join('\n'),
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'draining');
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`fatal: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
