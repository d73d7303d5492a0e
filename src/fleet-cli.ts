/**
 * `npm run fleet -- import FILE --out SECRETS [--url URL] [--admin-token TOKEN]`: provisions the hubs
 * of a CSV or JSON-lines file through a running node and writes their secrets once to SECRETS.
 * `npm run fleet -- reseal [--data-dir DIR | --redis URL [--prefix P]]`: seals every hub secret
 * anew with the current key, straight in the store (an entry: it opens the adapters itself).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { commandLinePath, parseCommandLine } from './config/command-line.js';
import { SECRET_KEY_FILE, secretBoxFor } from './compose/secret-key.js';
import { toolSettings } from './config/config.js';
import { importHubs, lineRanges } from './fleet-import.js';
import { resealAll, resealKeyRefusal, type ResealReport } from './fleet-reseal.js';
import { createLogger } from './log/logger.js';
import { LmdbHubRegistry } from './ports/hub-registry/hub-registry-lmdb.js';
import { RedisHubRegistry } from './ports/hub-registry/hub-registry-redis.js';
import { openDataStore, STORE_FILE } from './ports/lmdb.js';
import { connectRedis, RedisKeys, redisTlsOf } from './ports/redis.js';
import { RedisSecretRecord } from './ports/secret-record/secret-record-redis.js';

const USAGE = `usage: npm run fleet -- import FILE --out SECRETS [--url URL] [--admin-token TOKEN]
       npm run fleet -- reseal [--data-dir DIR | (--redis URL | --cluster) [--prefix P] [--force]]

import  provisions every hub of FILE through the node at URL, 1,000 per request, and
        writes each new hub's secret once to SECRETS ("hubId,secret" lines, mode 0600;
        SECRETS must not exist). FILE is CSV with a header (hubId,homeId[,model]) or
        JSON lines ({"hubId","homeId","model"?,"labels"?}). Each hub is provisioned or
        refused on its own: lines the node would refuse are reported and not sent, and a
        batch the node refuses whole is sent again in parts. Refusals are printed with
        their line numbers; if the node stops answering, the lines not attempted too.
        Exit 1 when a line was refused or the import stopped. Ctrl-C (or SIGTERM) sends
        no further batch and waits for the answer to the one in flight (a second Ctrl-C
        abandons it): SECRETS then holds every secret issued, as at the end; exit 130
        (SIGTERM 143).
--url          defaults to http://127.0.0.1:$PORT (8080)
--admin-token  defaults to $ADMIN_TOKEN
Settings ($PORT, $ADMIN_TOKEN, $DATA_DIR, TIER_SECRET_KEY, ...) are read as the node reads them:
the environment, else the JSON file named by $CONFIG_FILE.

reseal  seals every hub secret anew with TIER_SECRET_KEY (those sealed with a key of
        TIER_SECRET_KEYS_OLD, and those stored in clear by earlier versions); hubs notice
        nothing. The embedded default's store (--data-dir, default $DATA_DIR or ./data; its
        key file when TIER_SECRET_KEY is unset): stop the node first. A cluster's Redis
        (--redis, or --cluster for REDIS_URL's, the password kept off the command line;
        --prefix defaults to $TIER_REDIS_PREFIX, else tier:): nodes may run, given
        the old keys in TIER_SECRET_KEYS_OLD until it is done; refused (exit 1, nothing
        resealed) when TIER_SECRET_KEY is not the key the last node started seals with,
        unless --force. Exit 1 when a hub was
        skipped, and when none was found (a mistyped --data-dir, --redis or --prefix): a
        DATA_DIR without a store is refused, never made.`;

async function reseal(values: { 'data-dir'?: string | undefined; redis?: string | undefined; prefix?: string | undefined; force?: boolean | undefined }): Promise<number> {
  // as the node reads them: the environment over CONFIG_FILE
  const env = toolSettings(['secretKey', 'secretKeysOld', 'redisPrefix', 'dataDir', 'redisTlsCaFile', 'redisTlsCertFile', 'redisTlsKeyFile']);
  let report: ResealReport;
  if (values.redis !== undefined) {
    if (!env.secretKey) {
      process.stderr.write('reseal --redis needs TIER_SECRET_KEY (the cluster\'s key)\n');
      return 2;
    }
    const box = secretBoxFor({ ...env, dataDir: ':memory:' });
    const keys = new RedisKeys(values.prefix ?? env.redisPrefix);
    const client = await connectRedis(values.redis, { name: 'fleet-reseal', log: createLogger('warn'), ...redisTlsOf(env) });
    const registry = new RedisHubRegistry(client, { keys });
    try {
      const record = new RedisSecretRecord(client, { keys });
      const refusal = values.force ? null : resealKeyRefusal(await record.read(), box, record.where);
      if (refusal !== null) {
        process.stderr.write(`fleet error: ${refusal}\nnothing resealed\n`);
        return 1;
      }
      // records of versions before the registry's indexes are listed only once indexed
      process.stdout.write(`indexed ${await registry.reindex()} hub records\n`);
      report = await resealAll(registry, box);
    } finally {
      await registry.close();
    }
  } else {
    const dir = values['data-dir'] ?? env.dataDir;
    // a mistyped DATA_DIR would otherwise be made, with a new key file, and "nothing skipped" reported
    if (!existsSync(join(dir, STORE_FILE))) {
      process.stderr.write(`fleet error: ${resolve(dir)} holds no store (no ${STORE_FILE}): nothing resealed. Check DATA_DIR or --data-dir\n`);
      return 1;
    }
    // never a key made here: a node whose key is set elsewhere (another CONFIG_FILE) would find a stray one beside its store
    if (!env.secretKey && !existsSync(join(dir, SECRET_KEY_FILE))) {
      process.stderr.write(`fleet error: no key: TIER_SECRET_KEY is unset (in the environment and CONFIG_FILE) and ${resolve(dir)} holds no ${SECRET_KEY_FILE}. Give the node's key as TIER_SECRET_KEY, or the node's CONFIG_FILE\n`);
      return 1;
    }
    const box = secretBoxFor({ ...env, dataDir: dir });
    const store = openDataStore(dir, { owner: 'npm run fleet -- reseal' });
    try {
      report = await resealAll(new LmdbHubRegistry(store), box);
    } finally {
      await store.close({ keepUncleanMark: true });
    }
  }
  for (const line of report.skipped) process.stderr.write(`skipped ${line}\n`);
  process.stdout.write(`examined ${report.examined} hubs, resealed ${report.resealed}, skipped ${report.skipped.length}\n`);
  if (report.examined === 0) {
    // "nothing skipped" is the README's word to drop the old key: not said of a store that was not the fleet's
    const where = values.redis !== undefined ? `--redis and --prefix (${values.prefix ?? env.redisPrefix})` : '--data-dir';
    process.stderr.write(`fleet error: no hub found: check ${where}. Keep the old key until a reseal of the fleet's store reports nothing skipped\n`);
    return 1;
  }
  return report.skipped.length > 0 ? 1 : 0;
}

/**
 * Ctrl-C and SIGTERM during an import: the first stops it after the batch in flight is answered,
 * the second abandons that batch too; either way the import ends as it does at the end of the file
 * (its secrets in --out, the report printed). Answers the exit code of the signal received, if any.
 */
function stopOnSignals(out: string): { stop: AbortSignal; cancel: AbortSignal; done: () => number | null } {
  const stop = new AbortController();
  const cancel = new AbortController();
  let code: number | null = null;
  const on = (signal: NodeJS.Signals) => {
    if (!stop.signal.aborted) {
      code = signal === 'SIGINT' ? 130 : 143;
      process.stderr.write(`${signal}: stopping once the batch in flight is answered; the secrets issued so far go to ${resolve(out)} (${signal} again: abandon that batch)\n`);
      stop.abort(`interrupted (${signal})`);
      return;
    }
    process.stderr.write(`${signal} again: abandoning the batch in flight\n`);
    cancel.abort(`interrupted (${signal} twice)`);
    done();
  };
  const done = () => {
    process.off('SIGINT', on);
    process.off('SIGTERM', on);
    return code;
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  return { stop: stop.signal, cancel: cancel.signal, done };
}

async function main(): Promise<number> {
  const parsed = parseCommandLine({ out: { type: 'string' }, url: { type: 'string' }, 'admin-token': { type: 'string' }, 'data-dir': { type: 'string' }, redis: { type: 'string' }, cluster: { type: 'boolean' }, prefix: { type: 'string' }, force: { type: 'boolean' }, help: { type: 'boolean' } }, USAGE);
  if (parsed === null) return 2;
  const { positionals, values } = parsed;
  const [command, given] = positionals;
  const file = given === undefined ? undefined : commandLinePath(given);
  if (values.out !== undefined) values.out = commandLinePath(values.out);
  if (values['data-dir'] !== undefined) values['data-dir'] = commandLinePath(values['data-dir']);
  if (command === 'reseal' && positionals.length === 1 && !values.help) return reseal(values);
  if (values.help || command !== 'import' || file === undefined || positionals.length !== 2 || values.out === undefined) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  // only the settings no flag gives: a flag works whatever the environment holds
  const adminToken = values['admin-token'] ?? toolSettings(['adminToken']).adminToken;
  if (!adminToken) {
    process.stderr.write(`--admin-token or ADMIN_TOKEN is required\n${USAGE}\n`);
    return 2;
  }
  if (existsSync(values.out)) {
    process.stderr.write(`${resolve(values.out)} exists: secrets are written once, to a new file\n`);
    return 2;
  }
  const url = values.url ?? `http://127.0.0.1:${toolSettings(['port']).port}`;
  const signals = stopOnSignals(values.out);
  const report = await importHubs(file, { url, adminToken, out: values.out, stop: signals.stop, cancel: signals.cancel }).finally(signals.done);
  for (const f of report.failed) process.stderr.write(`line ${f.line}${f.hubId ? ` (${f.hubId})` : ''}: ${f.code}: ${f.message}\n`);
  if (report.stopped !== null) process.stderr.write(`stopped: ${report.stopped}\n`);
  if (report.unanswered.length > 0) {
    process.stderr.write(`lines ${lineRanges(report.unanswered)}: sent, but no answer was read: the node may have provisioned some; their secrets were not received, so rotate those that exist (GET /v1/admin/hubs/ID)\n`);
  }
  const notAttempted = report.notAttempted.length > 0 ? `, ${report.notAttempted.length} not attempted (lines ${lineRanges(report.notAttempted)})` : '';
  const unanswered = report.unanswered.length > 0 ? `, ${report.unanswered.length} unanswered` : '';
  const where = report.secrets === null ? 'no secret was issued, no file written' : `secrets in ${resolve(report.secrets)} (mode 0600): move them to the factory's flashing station and delete the file`;
  process.stdout.write(`provisioned ${report.created} hubs, ${report.failed.length} refused${notAttempted}${unanswered}; ${where}\n`);
  if (report.notAttempted.length > 0) {
    const out = report.secrets === null ? '' : ' with a new --out';
    const when = signals.done() === null ? ' once the node answers' : '';
    process.stdout.write(`to provision the lines not attempted, run again${out}${when}: hubs provisioned already are refused as already_exists\n`);
  }
  return signals.done() ?? (report.failed.length > 0 || report.stopped !== null ? 1 : 0);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`fleet error: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
