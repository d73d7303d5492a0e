/**
 * `npm run data -- import FILE --redis URL`: writes a single node's backup (`npm run data --
 * export`) into a cluster's Redis through the Redis adapters, so the node's hubs and their state
 * move into cluster mode. Nothing is overwritten: a hub id that Redis already holds is reported
 * and skipped. Nonces are skipped (they only matter within the handshake's skew window).
 */
import { readBackup } from './data-backup.js';
import { TierError } from './errors.js';
import type { Logger } from './log/logger.js';
import { decodeHubRecord } from './ports/hub-registry/hub-registry-lmdb.js';
import { RedisHubRegistry } from './ports/hub-registry/hub-registry-redis.js';
import { closeRedis, connectRedis, RedisKeys } from './ports/redis.js';
import { decodePushRecord } from './ports/push-queue/push-queue-lmdb.js';
import { BullMqPushQueue } from './ports/push-queue/push-queue-bullmq.js';
import type { PendingRun } from './ports/pending-runs/pending-runs.js';
import { RedisPendingRuns } from './ports/pending-runs/pending-runs-redis.js';
import { decodeRuleRecord } from './ports/rule-store/rule-store-lmdb.js';
import { RedisRuleStore } from './ports/rule-store/rule-store-redis.js';
import { decodeShadowRecords, NAMES_DB, namesOf } from './ports/shadow-store/shadow-store-lmdb.js';
import { RedisShadowStore } from './ports/shadow-store/shadow-store-redis.js';

/** The owner of imported pending runs: its claim is dropped when the import ends, so a live node takes them over. */
export const IMPORT_NODE_ID = 'import';

export interface RedisImportOptions {
  /** redis://host:port of the cluster */
  url: string;
  /** the cluster's key prefix (TIER_REDIS_PREFIX) */
  prefix: string;
  log: Logger;
}

export interface RedisImportReport {
  /** what was written, per kind */
  imported: Record<string, number>;
  /** what was not, one line each */
  skipped: string[];
}

/** Reads `file` and writes its records into the Redis at `options.url`; answers what it did. */
export async function importIntoRedis(file: string, options: RedisImportOptions): Promise<RedisImportReport> {
  const keys = new RedisKeys(options.prefix);
  const report: RedisImportReport = { imported: {}, skipped: [] };
  const count = (kind: string, n = 1) => (report.imported[kind] = (report.imported[kind] ?? 0) + n);
  const byDb = new Map<string, Array<{ key: unknown; value: unknown }>>();
  for await (const r of readBackup(file)) {
    let list = byDb.get(r.db);
    if (!list) byDb.set(r.db, (list = []));
    list.push({ key: r.key, value: r.value });
  }
  const records = (db: string) => byDb.get(db) ?? [];

  const control = await connectRedis(options.url, { name: `${options.prefix}import:control`, log: options.log });
  let shadows: RedisShadowStore | null = null;
  let pending: RedisPendingRuns | null = null;
  let queue: BullMqPushQueue | null = null;
  try {
    // 1. hubs: records and secrets as they are; an id Redis already holds is never overwritten
    const registry = new RedisHubRegistry(control, { keys });
    const skippedHubs = new Set<string>();
    for (const { key, value } of records('hubs')) {
      const hub = decodeHubRecord(key, value);
      const hubId = hub.hubId;
      try {
        await registry.create(hub);
        count('hubs');
      } catch (err) {
        if (!(err instanceof TierError && err.code === 'already_exists')) throw err;
        skippedHubs.add(hubId);
        report.skipped.push(`hub ${hubId}: already provisioned in redis (kept as it is, its shadow not imported)`);
      }
    }

    // 2. shadows: kinds and models, reported (with its versions), desired, cursor
    shadows = await RedisShadowStore.connect(options.url, { name: `${options.prefix}import:shadows`, log: options.log, keys });
    const hubCursors: Array<[string, { boot: string; seq: number }]> = [];
    for (const r of decodeShadowRecords(records('shadows'), namesOf(records(NAMES_DB)))) {
      if (skippedHubs.has(r.hubId)) continue;
      if (r.type === 'hub') {
        if (r.cursor) hubCursors.push([r.hubId, r.cursor]);
        continue;
      }
      const { hubId, deviceId, device } = r;
      if (device.kind !== undefined) await shadows.writeDevices(hubId, [{ d: deviceId, k: device.kind, ...(device.model !== undefined ? { m: device.model } : {}) }], [], false);
      if (device.reportedVersion > 0 || Object.keys(device.reported).length > 0) shadows.writeReported(hubId, deviceId, device, 0);
      if (Object.keys(device.desired).length > 0) await shadows.setDesired(hubId, deviceId, device.desired);
      count('devices');
    }
    for (const [hubId, cursor] of hubCursors) {
      shadows.writeCursor(hubId, cursor, 0);
      count('cursors');
    }
    await shadows.flush();

    // 3. rules and scenes with their ids, settings, cron cursors
    const rules = new RedisRuleStore(control, { log: options.log, keys });
    const cursors: Array<[string, number]> = [];
    const homeOf = new Map<string, string>();
    const ruleRecords = records('rules').map(({ key, value }) => decodeRuleRecord(key, value));
    // settings first, before the items create the home: a home Redis knows keeps its settings
    for (const r of ruleRecords) {
      if (r.type !== 'home' || !r.settings) continue;
      if ((await rules.homeVersion(r.homeId)) > 0) {
        report.skipped.push(`settings of home ${r.homeId}: the home exists in redis (its settings kept)`);
        continue;
      }
      await rules.putSettings(r.homeId, r.settings);
      count('settings');
    }
    for (const r of ruleRecords) {
      if (r.type === 'rule' || r.type === 'scene') {
        if (await rules.importItem(r.type, r.item)) {
          count(`${r.type}s`);
          if (r.type === 'rule') homeOf.set(r.item.id, r.item.homeId);
        } else report.skipped.push(`${r.type} ${r.item.id} of home ${r.item.homeId}: the id exists in redis (kept as it is)`);
      } else if (r.type === 'cursor') {
        if (r.at !== null) cursors.push([r.ruleId, r.at]);
      }
    }
    for (const [ruleId, at] of cursors) {
      const homeId = homeOf.get(ruleId);
      if (homeId === undefined) report.skipped.push(`cron cursor of rule ${ruleId}: its rule was not imported`);
      else if (await rules.advanceCursor(homeId, ruleId, at)) count('cron cursors');
      else report.skipped.push(`cron cursor of rule ${ruleId}: redis holds one as late or later`);
    }

    // 4. delays: saved as node IMPORT_NODE_ID, whose claim ends with the import (close drops it):
    // the first live node that claims orphans (at its start or its periodic check) resumes them
    const runs = records('delays');
    if (runs.length > 0) {
      pending = await RedisPendingRuns.connect(options.url, { name: `${options.prefix}import:delays`, nodeId: IMPORT_NODE_ID, log: options.log, keys });
      for (const { value } of runs) {
        const run = value as PendingRun;
        if (!homeOf.has(run.ruleId)) {
          report.skipped.push(`pending run of rule ${run.ruleId}: its rule was not imported`);
          continue;
        }
        await pending.save(run);
        count('pending runs');
      }
    }

    // 5. push jobs: each waiting or delayed job's notification enqueued anew (a new job id, its
    // attempts and backoff from the start; the queue's dedup may fold one into a job Redis holds);
    // the failed set is not moved
    const push = records('push').map(({ key, value }) => decodePushRecord(key, value));
    const jobs = push.flatMap((r) => (r.type === 'job' ? [r] : []));
    const failed = push.filter((r) => r.type === 'failed').length;
    if (jobs.length > 0) {
      queue = await BullMqPushQueue.connect(options.url, { name: `${options.prefix}import:push`, log: options.log, keys });
      for (const job of jobs) {
        const got = await queue.enqueue(job.notification);
        if (got.duplicate) report.skipped.push(`push job ${job.id}: its dedup key ${job.notification.dedupKey} is queued in redis already`);
        else count('push jobs');
      }
    }
    if (failed > 0) report.skipped.push(`push: ${failed} failed notifications (dead letters) not moved`);
  } finally {
    await queue?.close();
    await pending?.close();
    await shadows?.close();
    // the rule store only borrows the control connection here (no watch: no subscriber to close)
    await closeRedis(control);
  }
  // a claim is two records, the nonce (a string key) and its expiry index entry
  const nonces = records('nonces').filter((r) => typeof r.key === 'string').length;
  if (nonces > 0) report.skipped.push(`nonces: ${nonces} (they only matter within the handshake's skew window)`);
  return report;
}
