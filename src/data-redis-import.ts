/**
 * `npm run data -- import FILE --redis URL`: writes a single node's backup (`npm run data --
 * export`) into a cluster's Redis through the Redis adapters, so the node's hubs and their state
 * move into cluster mode. The whole file is checked first (checkBackup): a bad one writes nothing.
 * Nothing in Redis is overwritten: what Redis holds as the file holds it (an earlier run's) counts
 * as imported, so a rerun after a run cut short finishes it; what Redis holds otherwise is kept and
 * reported as not imported. Nonces are skipped (they only matter within the handshake's skew window).
 */
import { checkBackup } from './data-backup-check.js';
import type { BackupRecord } from './data-backup-file.js';
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
import { RedisRevocationStore } from './ports/revocations/revocations-redis.js';
import { revocationOfRecord, type RevocationRecord } from './ports/revocations/revocations-lmdb.js';
import { revocationKey } from './ports/revocations/revocations.js';
import { decodeShadowRecords, NAMES_DB, namesOf, type ShadowRecord } from './ports/shadow-store/shadow-store-lmdb.js';
import { RedisShadowStore } from './ports/shadow-store/shadow-store-redis.js';
import type { DeviceShadow, HubShadow } from './ports/shadow-store/shadow-store.js';

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
  /** what Redis held already as the file holds it (an earlier run's), per kind */
  present: Record<string, number>;
  /** what was not imported because Redis holds something else there, one line each: the import did not finish */
  skipped: string[];
  /** what is never moved (nonces, dead letters), one line each */
  notes: string[];
}

/** Reads `file` and writes its records into the Redis at `options.url`; answers what it did. */
export async function importIntoRedis(file: string, options: RedisImportOptions): Promise<RedisImportReport> {
  const keys = new RedisKeys(options.prefix);
  const report: RedisImportReport = { imported: {}, present: {}, skipped: [], notes: [] };
  const count = (kind: string, n = 1) => (report.imported[kind] = (report.imported[kind] ?? 0) + n);
  const present = (kind: string) => (report.present[kind] = (report.present[kind] ?? 0) + 1);
  const byDb = checkBackup(file, { keep: true }).records;
  const records = (db: string): BackupRecord[] => byDb.get(db) ?? [];

  const control = await connectRedis(options.url, { name: `${options.prefix}import:control`, log: options.log });
  let shadows: RedisShadowStore | null = null;
  let pending: RedisPendingRuns | null = null;
  let queue: BullMqPushQueue | null = null;
  try {
    // 1. hubs: records and secrets as they are; an id Redis holds otherwise is never overwritten
    const registry = new RedisHubRegistry(control, { keys });
    const skippedHubs = new Set<string>();
    const existing = new Set<string>();
    for (const { key, value } of records('hubs')) {
      const hub = decodeHubRecord(key, value);
      try {
        await registry.create(hub);
        count('hubs');
      } catch (err) {
        if (!(err instanceof TierError && err.code === 'already_exists')) throw err;
        if (sameData(await registry.get(hub.hubId), hub)) {
          existing.add(hub.hubId);
          present('hubs');
          continue;
        }
        skippedHubs.add(hub.hubId);
        report.skipped.push(`hub ${hub.hubId}: provisioned in redis with another record (kept as it is, its shadow not imported)`);
      }
    }

    // 2. shadows: kinds and models, reported (with its versions), desired, cursor; of a hub an
    // earlier run created, what Redis holds as the file does is left and the rest written, unless
    // Redis's shadow has moved on from the file's
    shadows = await RedisShadowStore.connect(options.url, { name: `${options.prefix}import:shadows`, log: options.log, keys });
    const byHub = new Map<string, ShadowRecord[]>();
    for (const r of decodeShadowRecords(records('shadows'), namesOf(records(NAMES_DB)))) {
      if (skippedHubs.has(r.hubId)) continue;
      let list = byHub.get(r.hubId);
      if (!list) byHub.set(r.hubId, (list = []));
      list.push(r);
    }
    const hubCursors: Array<[string, { boot: string; seq: number }]> = [];
    for (const [hubId, list] of byHub) {
      const have = existing.has(hubId) ? await shadows.load(hubId) : null;
      if (have !== null) {
        const moved = await movedOn(shadows, hubId, list, have);
        if (moved !== null) {
          report.skipped.push(`shadow of hub ${hubId}: redis holds a newer one (${moved}; kept as it is)`);
          continue;
        }
      }
      for (const r of list) {
        if (r.type === 'hub') {
          if (r.cursor) hubCursors.push([r.hubId, r.cursor]);
          continue;
        }
        const { deviceId, device } = r;
        const old = have?.[deviceId];
        if (old !== undefined && sameDevice(old, device)) {
          present('devices');
          continue;
        }
        if (device.kind !== undefined && (old?.kind !== device.kind || old.model !== device.model)) await shadows.writeDevices(hubId, [{ d: deviceId, k: device.kind, ...(device.model !== undefined ? { m: device.model } : {}) }], [], false);
        if ((device.reportedVersion > 0 || Object.keys(device.reported).length > 0) && !(old?.reportedVersion === device.reportedVersion && sameData(old.reported, device.reported))) shadows.writeReported(hubId, deviceId, device, 0);
        if (Object.keys(device.desired).length > 0 && !sameData(old?.desired, device.desired)) await shadows.setDesired(hubId, deviceId, device.desired);
        count('devices');
      }
    }
    for (const [hubId, cursor] of hubCursors) {
      if (existing.has(hubId) && sameData(await shadows.loadCursor(hubId), cursor)) {
        present('cursors');
        continue;
      }
      shadows.writeCursor(hubId, cursor, 0);
      count('cursors');
    }
    await shadows.flush();

    // 3. rules and scenes with their ids, settings, cron cursors
    const rules = new RedisRuleStore(control, { log: options.log, keys });
    const cursors: Array<[string, number]> = [];
    const homeOf = new Map<string, string>();
    // rules an earlier run imported: their pending runs are not saved again (a live node may have run them since)
    const earlier = new Set<string>();
    const ruleRecords = records('rules').map(({ key, value }) => decodeRuleRecord(key, value));
    // settings first, before the items create the home: a home Redis knows keeps its settings
    for (const r of ruleRecords) {
      if (r.type !== 'home' || !r.settings) continue;
      if ((await rules.homeVersion(r.homeId)) > 0) {
        if (sameData(await rules.getSettings(r.homeId), r.settings)) present('settings');
        else report.skipped.push(`settings of home ${r.homeId}: the home exists in redis with other settings (kept)`);
        continue;
      }
      await rules.putSettings(r.homeId, r.settings);
      count('settings');
    }
    for (const r of ruleRecords) {
      if (r.type === 'rule' || r.type === 'scene') {
        const { homeId, id } = r.item;
        if (await rules.importItem(r.type, r.item)) count(`${r.type}s`);
        else if (sameData(await (r.type === 'rule' ? rules.getRule(homeId, id) : rules.getScene(homeId, id)), r.item)) {
          present(`${r.type}s`);
          earlier.add(id);
        } else {
          report.skipped.push(`${r.type} ${id} of home ${homeId}: the id exists in redis with another ${r.type} (kept as it is)`);
          continue;
        }
        if (r.type === 'rule') homeOf.set(id, homeId);
      } else if (r.type === 'cursor') {
        if (r.at !== null) cursors.push([r.ruleId, r.at]);
      }
    }
    for (const [ruleId, at] of cursors) {
      const homeId = homeOf.get(ruleId);
      if (homeId === undefined) report.skipped.push(`cron cursor of rule ${ruleId}: its rule was not imported`);
      else if (await rules.advanceCursor(homeId, ruleId, at)) count('cron cursors');
      else present('cron cursors'); // as late or later: the rule ran in the cluster, or an earlier run wrote it
    }

    // 4. delays: saved as node IMPORT_NODE_ID, whose claim ends with the import (close drops it):
    // the first live node that claims orphans (at its start or its periodic check) resumes them
    const runs = records('delays');
    if (runs.length > 0) {
      pending = await RedisPendingRuns.connect(options.url, { name: `${options.prefix}import:delays`, nodeId: IMPORT_NODE_ID, log: options.log, keys });
      for (const { value } of runs) {
        const run = value as PendingRun;
        if (earlier.has(run.ruleId)) {
          report.notes.push(`pending run of rule ${run.ruleId}: not saved again (its rule was in redis as in the file: imported by an earlier run, which saved the run)`);
          continue;
        }
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
        if (got.duplicate) present('push jobs'); // its dedup key is queued in redis already: delivered once
        else count('push jobs');
      }
    }
    if (failed > 0) report.notes.push(`push: ${failed} failed notifications (dead letters)`);

    // 6. token revocations still in force: left behind, a revoked token would work again in the cluster
    const revocations = new RedisRevocationStore(control, { keys });
    const nowS = Math.floor(Date.now() / 1000);
    const inRedis = new Set((await revocations.list(nowS)).map(revocationKey));
    for (const { value } of records('revocations')) {
      const r = revocationOfRecord(value as RevocationRecord);
      if (r.exp <= nowS) continue;
      if (inRedis.has(revocationKey(r))) present('revocations');
      else {
        await revocations.add(r);
        count('revocations');
      }
    }
  } finally {
    await queue?.close();
    await pending?.close();
    await shadows?.close();
    // the rule store only borrows the control connection here (no watch: no subscriber to close)
    await closeRedis(control);
  }
  // a claim is two records, the nonce (a string key) and its expiry index entry
  const nonces = records('nonces').filter((r) => typeof r.key === 'string').length;
  if (nonces > 0) report.notes.push(`nonces: ${nonces} (they only matter within the handshake's skew window)`);
  const audit = records('audit').length;
  if (audit > 0) report.notes.push(`audit trail: ${audit} entries (the cluster keeps its own; the backup file keeps these)`);
  const stats = records('rule-stats').length;
  if (stats > 0) report.notes.push(`rule statistics: ${stats} rules' run counts (they start again from zero)`);
  return report;
}

/** Why Redis's shadow of `hubId` is newer than the file's (`list`), or null: its cursor differs, or a device has a later report or is not in the file. */
async function movedOn(shadows: RedisShadowStore, hubId: string, list: ShadowRecord[], have: HubShadow): Promise<string | null> {
  const cursor = await shadows.loadCursor(hubId);
  const entry = list.find((r) => r.type === 'hub');
  if (cursor !== null && !sameData(cursor, entry?.cursor ?? null)) return `cursor ${cursor.boot}:${cursor.seq}`;
  const inFile = new Map(list.flatMap((r) => (r.type === 'device' ? [[r.deviceId, r.device.reportedVersion] as const] : [])));
  for (const [deviceId, device] of Object.entries(have)) {
    const version = inFile.get(deviceId);
    if (version === undefined) return `device ${deviceId} not in the file`;
    if (device.reportedVersion > version) return `device ${deviceId} at version ${device.reportedVersion}`;
  }
  return null;
}

/** A device Redis holds as the file does (an earlier run wrote it). */
function sameDevice(a: DeviceShadow, b: DeviceShadow): boolean {
  return a.kind === b.kind && a.model === b.model && a.reportedVersion === b.reportedVersion && sameData(a.reported, b.reported) && sameData(a.desired, b.desired);
}

/**
 * The same data, read back from Redis or from the file: prototypes ignored (the adapters build
 * null-prototype maps from hostile ids), a property set to undefined the same as one absent.
 */
function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false;
  const defined = (o: object) => Object.entries(o).filter(([, v]) => v !== undefined);
  const x = defined(a);
  const y = new Map(defined(b));
  return x.length === y.size && x.every(([k, v]) => y.has(k) && sameData(v, y.get(k)));
}
