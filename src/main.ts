import { clusterPorts } from './cluster/cluster-ports.js';
import { isClusterMode } from './config/config.js';
import { closeOnSignals, loadConfigOrExit, runMain } from './config/process.js';
import { createLogger } from './log/logger.js';
import { startServer } from './server.js';

/** `npm start`: one connection node on the embedded default unless NATS_URL and REDIS_URL are set. */
async function main(): Promise<void> {
  const { config, warnings, generated } = loadConfigOrExit();
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
      `admin: http://${config.adminHost}:${server.adminPort}/healthz /readyz /metrics${cluster ? ' /queues (push queue dashboard, admin token)' : ''}`,
      `connect simulated hubs:  npm run sim -- --url ws://${host}:${server.port} --hubs 10 --devices 8 --admin-token ${config.adminToken}`,
      '',
    ].join('\n'),
  );

  closeOnSignals(log, 'draining', () => server.close());
}

runMain(main);
