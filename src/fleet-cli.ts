/**
 * `npm run fleet -- import FILE --out SECRETS [--url URL] [--admin-token TOKEN]`: provisions the hubs
 * of a CSV or JSON-lines file through a running node and writes their secrets once to SECRETS.
 * `npm run fleet -- reseal [--data-dir DIR | --redis URL [--prefix P]]`: seals every hub secret
 * anew with the current key, straight in the store (an entry: it opens the adapters itself).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { secretBoxFor } from './compose/secret-key.js';
import { importHubs, lineRanges } from './fleet-import.js';
import { resealAll, type ResealReport } from './fleet-reseal.js';
import { createLogger } from './log/logger.js';
import { LmdbHubRegistry } from './ports/hub-registry/hub-registry-lmdb.js';
import { RedisHubRegistry } from './ports/hub-registry/hub-registry-redis.js';
import { openDataStore } from './ports/lmdb.js';
import { RedisKeys } from './ports/redis.js';

const USAGE = `usage: npm run fleet -- import FILE --out SECRETS [--url URL] [--admin-token TOKEN]
       npm run fleet -- reseal [--data-dir DIR | --redis URL [--prefix P]]

import  provisions every hub of FILE through the node at URL, 1,000 per request, and
        writes each new hub's secret once to SECRETS ("hubId,secret" lines, mode 0600;
        SECRETS must not exist). FILE is CSV with a header (hubId,homeId[,model]) or
        JSON lines ({"hubId","homeId","model"?,"labels"?}). Each hub is provisioned or
        refused on its own: lines the node would refuse are reported and not sent, and a
        batch the node refuses whole is sent again in parts. Refusals are printed with
        their line numbers; if the node stops answering, the lines not attempted too.
        Exit 1 when a line was refused or the import stopped.
--url          defaults to http://127.0.0.1:$PORT (8080)
--admin-token  defaults to $ADMIN_TOKEN

reseal  seals every hub secret anew with TIER_SECRET_KEY (those sealed with a key of
        TIER_SECRET_KEYS_OLD, and those stored in clear by earlier versions); hubs notice
        nothing. The embedded default's store (--data-dir, default $DATA_DIR or ./data; its
        key file when TIER_SECRET_KEY is unset): stop the node first. A cluster's Redis
        (--redis, --prefix defaults to $TIER_REDIS_PREFIX, else tier:): nodes may run, given
        the old keys in TIER_SECRET_KEYS_OLD until it is done.`;

async function reseal(values: { 'data-dir'?: string | undefined; redis?: string | undefined; prefix?: string | undefined }): Promise<number> {
  const env = process.env;
  let report: ResealReport;
  if (values.redis !== undefined) {
    if (!env.TIER_SECRET_KEY) {
      process.stderr.write('reseal --redis needs TIER_SECRET_KEY (the cluster\'s key)\n');
      return 2;
    }
    const box = secretBoxFor({ secretKey: env.TIER_SECRET_KEY, secretKeysOld: env.TIER_SECRET_KEYS_OLD, dataDir: ':memory:' });
    const registry = await RedisHubRegistry.connect(values.redis, { name: 'fleet-reseal', log: createLogger('warn'), keys: new RedisKeys(values.prefix ?? env.TIER_REDIS_PREFIX ?? 'tier:') });
    try {
      // records of versions before the registry's indexes are listed only once indexed
      process.stdout.write(`indexed ${await registry.reindex()} hub records\n`);
      report = await resealAll(registry, box);
    } finally {
      await registry.close();
    }
  } else {
    const dir = values['data-dir'] ?? env.DATA_DIR ?? './data';
    const box = secretBoxFor({ secretKey: env.TIER_SECRET_KEY, secretKeysOld: env.TIER_SECRET_KEYS_OLD, dataDir: dir });
    const store = openDataStore(dir, { owner: 'npm run fleet -- reseal' });
    try {
      report = await resealAll(new LmdbHubRegistry(store), box);
    } finally {
      await store.close();
    }
  }
  for (const line of report.skipped) process.stderr.write(`skipped ${line}\n`);
  process.stdout.write(`examined ${report.examined} hubs, resealed ${report.resealed}, skipped ${report.skipped.length}\n`);
  return report.skipped.length > 0 ? 1 : 0;
}

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { out: { type: 'string' }, url: { type: 'string' }, 'admin-token': { type: 'string' }, 'data-dir': { type: 'string' }, redis: { type: 'string' }, prefix: { type: 'string' }, help: { type: 'boolean' } },
  });
  const [command, file] = positionals;
  if (command === 'reseal' && positionals.length === 1 && !values.help) return reseal(values);
  if (values.help || command !== 'import' || file === undefined || positionals.length !== 2 || values.out === undefined) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const adminToken = values['admin-token'] ?? process.env.ADMIN_TOKEN;
  if (!adminToken) {
    process.stderr.write(`--admin-token or ADMIN_TOKEN is required\n${USAGE}\n`);
    return 2;
  }
  if (existsSync(values.out)) {
    process.stderr.write(`${resolve(values.out)} exists: secrets are written once, to a new file\n`);
    return 2;
  }
  const url = values.url ?? `http://127.0.0.1:${process.env.PORT ?? '8080'}`;
  const report = await importHubs(file, { url, adminToken, out: values.out });
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
    process.stdout.write(`to provision the lines not attempted, run again${out} once the node answers: hubs provisioned already are refused as already_exists\n`);
  }
  return report.failed.length > 0 || report.stopped !== null ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`fleet error: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
