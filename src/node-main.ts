import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { ConfigError, isClusterMode, type Config, type LoadedConfig } from './config/config.js';
import { closeOnSignals, keepDebuggerShut, loadConfigOrExit, runMain } from './config/process.js';
import { createLogger, endLog, type Logger } from './log/logger.js';
import { startOrExit } from './compose/until-reachable.js';
import { adoptSavedSecrets, forgetSuperseded, saveSecrets, secretsFilePath, type SavedSecrets } from './config/saved-secrets.js';
import { startServer } from './compose/server.js';
import { applyParallelGc } from './compose/parallel-gc.js';
import { DataStoreError } from './ports/lmdb.js';
import { UwsLoadError } from './transport/uws.js';

/** `npm start`: one connection node on the embedded default unless NATS_URL and REDIS_URL are set. */
async function main(): Promise<void> {
  const secretsFile = secretsFilePath(process.env);
  // before the configuration is read: what an earlier start generated is used again, not replaced
  const saved = adoptSavedSecrets(process.env, secretsFile);
  const { config, warnings, generated } = loadConfigOrExit();
  const log = createLogger(config.logLevel, { node: config.nodeId });
  keepDebuggerShut(log);
  for (const w of warnings) log.warn(w);
  if (saved.adopted.length > 0) log.warn({ file: secretsFile }, `${saved.adopted.join(' and ')} not set: read from the file an earlier start wrote (remove it for new ones)`);
  if (saved.refused !== null) log.warn({ file: secretsFile }, `secrets file not read: ${saved.refused}`);
  if (saved.superseded.length > 0) {
    const names = saved.superseded.join(' and ');
    const unwritten = forgetSuperseded(saved, process.env);
    if (unwritten === undefined) log.warn({ file: secretsFile }, `${names} set: the value an earlier start generated is taken out of the file (it would come back at a start without the variable)`);
    else log.warn({ file: secretsFile, err: unwritten }, `${names} set, but the file still holds the value an earlier start generated (it could not be written): a start without the variable would take that one again; remove the file`);
  }
  if (generated.length > 0) reportGeneratedSecrets(config, generated, saved, log);
  if (applyParallelGc(config.parallelGc)) log.info('V8 collects in its pauses on the main thread alone (TIER_PARALLEL_GC=false)');

  const cluster = isClusterMode(config);
  log.info({ release: config.release, mode: cluster ? 'cluster' : 'embedded' }, 'starting');
  // a stop signal during the start (a cluster node may wait minutes for its backends) ends it cleanly;
  // one before this point (the modules loading, about a second) ends the process at once (exit 143),
  // with nothing open yet
  const { value: server, stopped } = await startOrExit(log, (signal) => startServer(config, log, undefined, { signal })).catch((err: unknown) => {
    // the data directory's problems are the operator's to fix: the message says how, no stack
    if (err instanceof DataStoreError) {
      process.stderr.write(`data error: ${err.message}\n`);
      process.exit(1);
    }
    // a configuration the cluster's record contradicts (src/compose/shared-secrets-check.ts): exit 2 as any bad configuration
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration error: ${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof UwsLoadError) {
      process.stderr.write(`uWebSockets.js error: ${err.message}\n`);
      process.exit(1);
    }
    // anything else (Redis lost in a step of the start after the wait for it): one JSON line, not a
    // bare stack on stderr, so the pod's log says why it restarts
    log.fatal({ err }, 'start failed; the process exits (a supervisor starts it again)');
    return endLog(log).then(() => process.exit(1));
  });
  if (stopped) {
    // the signal came after the wait, while the rest started: drain what did start
    closeOnSignals(log, 'draining', () => server.close());
    process.emit('SIGTERM');
    return;
  }
  // the address to reach it by, as a URL writes it: an IPv6 one in brackets (`::` and `0.0.0.0`: any, so this machine's)
  const inUrl = (h: string) => (h === '0.0.0.0' ? '127.0.0.1' : h === '::' ? '[::1]' : isIP(h) === 6 ? `[${h}]` : h);
  const host = inUrl(config.host);
  const data = cluster ? 'NATS and Redis (cluster mode)' : config.dataDir === ':memory:' ? 'in memory only (DATA_DIR=:memory:): a restart forgets everything' : `${resolve(config.dataDir)} (DATA_SYNC=${config.dataSync})`;
  // one JSON line (stdout goes to log stores): where it listens, where its data is, how to try it;
  // printed at any LOG_LEVEL, as the plain banner it replaces was (tools wait for it)
  log.child({}, { level: 'info' }).info(
    {
      port: server.port,
      adminPort: server.adminPort,
      mode: cluster ? 'cluster' : 'embedded',
      data,
      hubs: `ws://${host}:${server.port}/hub/v1`,
      apps: `ws://${host}:${server.port}/app/v1`,
      api: `http://${host}:${server.port}/v1`,
      docs: `http://${host}:${server.port}/docs`,
      admin: `http://${inUrl(config.adminHost)}:${server.adminPort}`,
      // never the token itself: this line lands in every log store
      try: `npm run sim -- --url ws://${host}:${server.port} --hubs 10 --devices 8 --admin-token "$ADMIN_TOKEN"`,
    },
    'node ready',
  );

  closeOnSignals(log, 'draining', () => server.close());
}

/**
 * Generated secrets are never printed (stdout goes to log stores): they are written to a file only
 * this user can read, and the log says where, so the operator reads them once.
 */
function reportGeneratedSecrets(config: Config, generated: LoadedConfig['generated'], saved: SavedSecrets, log: Logger): void {
  const names = generated.map((key) => (key === 'adminToken' ? 'ADMIN_TOKEN' : 'JWT_SECRET'));
  const path = saved.path;
  // the generated ones and those read back from the file: never a value the environment gave
  const kept = (name: 'ADMIN_TOKEN' | 'JWT_SECRET', key: 'adminToken' | 'jwtSecret') => (generated.includes(key) || saved.adopted.includes(name) ? config[key] : undefined);
  try {
    saveSecrets(saved, { ADMIN_TOKEN: kept('ADMIN_TOKEN', 'adminToken'), JWT_SECRET: kept('JWT_SECRET', 'jwtSecret') });
    log.warn({ file: path }, `${names.join(' and ')} not set: generated and kept in ${path} (mode 0600) for the next starts; read them with \`cat ${path}\`, or set them`);
  } catch (err) {
    log.warn({ err, file: path }, `${names.join(' and ')} not set: generated for this run only and not saved; set them to know them`);
  }
}

runMain(main);
