/**
 * `npm run data -- import FILE --redis URL`: writes a single node's backup (`npm run data --
 * export`) into a cluster's Redis through the Redis adapters, so the node's hubs and their state
 * move into cluster mode. The whole file is checked first (checkBackup): a bad one writes nothing.
 *
 * The file is written in units, always in the same order (`planOf`): each hub with its shadow,
 * each home's settings, each rule (with its cron cursor and pending run) and scene, each push job,
 * each token revocation. Nothing in Redis is overwritten: a unit is written where Redis holds
 * nothing of it, what Redis holds as the file does counts as there already, anything else is kept
 * and reported. The import's record in Redis (ImportRecord) counts the units gone through; a rerun
 * of the same file starts after them and never looks at them again (the live cluster may have
 * changed or deleted them since), and once the record says finished, a rerun writes nothing.
 * Nonces are skipped (they only matter within the handshake's skew window).
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import type { Redis } from 'ioredis';
import { checkBackup } from './data-backup-check.js';
import type { BackupRecord } from './data-backup-file.js';
import { ImportRecord } from './data-redis-import-record.js';
import { missingOf, sameData, type FileShadow } from './data-redis-import-shadow.js';
import { TierError } from './errors.js';
import type { Logger } from './log/logger.js';
import { decodeHubRecord } from './ports/hub-registry/hub-registry-lmdb.js';
import type { HubRecord } from './ports/hub-registry/hub-registry.js';
import { RedisHubRegistry } from './ports/hub-registry/hub-registry-redis.js';
import { closeRedis, connectRedis, RedisKeys, type RedisTlsFiles } from './ports/redis.js';
import { decodePushRecord } from './ports/push-queue/push-queue-lmdb.js';
import { BullMqPushQueue } from './ports/push-queue/push-queue-bullmq.js';
import type { PushNotification } from './ports/push-queue/push-queue.js';
import type { PendingRun } from './ports/pending-runs/pending-runs.js';
import { RedisPendingRuns } from './ports/pending-runs/pending-runs-redis.js';
import { decodeRuleRecord } from './ports/rule-store/rule-store-lmdb-records.js';
import { RedisRuleStore } from './ports/rule-store/rule-store-redis.js';
import { RedisRevocationStore } from './ports/revocations/revocations-redis.js';
import { revocationOfRecord, type RevocationRecord } from './ports/revocations/revocations-lmdb.js';
import { revocationKey, type TokenRevocation } from './ports/revocations/revocations.js';
import { decodeShadowRecords, NAMES_DB, namesOf } from './ports/shadow-store/shadow-store-lmdb.js';
import { RedisShadowStore } from './ports/shadow-store/shadow-store-redis.js';
import type { HomeSettings, Rule, Scene } from './rules/model.js';

/** The owner of imported pending runs: its claim is dropped when the import ends, so a live node takes them over. */
export const IMPORT_NODE_ID = 'import';

export interface RedisImportOptions {
  /** redis://host:port of the cluster */
  url: string;
  /** the cluster's key prefix (TIER_REDIS_PREFIX) */
  prefix: string;
  log: Logger;
  /** REDIS_TLS_* files for a `rediss://` URL */
  tls?: RedisTlsFiles;
  /** for tests: called before each write to Redis (numbered from 0); a throw stops the import there, as a kill would */
  beforeWrite?: (n: number) => void | Promise<void>;
}

export interface RedisImportReport {
  /** what this run wrote, per kind */
  imported: Record<string, number>;
  /** what this run found in Redis as the file holds it (an earlier import's), per kind */
  present: Record<string, number>;
  /** what is not imported (Redis holds something else there, or may have deleted it), one line each: earlier runs' too */
  skipped: string[];
  /** what is never moved (nonces, dead letters), and what earlier runs of the file went through, one line each */
  notes: string[];
}

/** The order of the units (`planOf`): a record of an import begun in another order is refused. */
const PLAN = 1;

/** The kinds of the report, in the order it lists them. */
const KINDS = ['hubs', 'devices', 'cursors', 'settings', 'rules', 'scenes', 'cron cursors', 'pending runs', 'push jobs', 'revocations'];

/** One unit of the import, as the file holds it. */
type Unit =
  | { kind: 'hubs'; hub: HubRecord; shadow: FileShadow | undefined }
  | { kind: 'settings'; homeId: string; settings: HomeSettings }
  | { kind: 'rules'; item: Rule; cursorAt: number | undefined; run: PendingRun | undefined }
  | { kind: 'scenes'; item: Scene }
  | { kind: 'push jobs'; notification: PushNotification }
  | { kind: 'revocations'; revocation: TokenRevocation };

/**
 * How a unit is taken. `new`: no run of this file has written any of it. `cut`: a run stopped (a
 * kill, a lost connection) while it may have been writing it. A hub's record, settings, a rule or
 * scene, a pending run or push job Redis lacks then may never have been written, or may have been
 * written and deleted in the cluster since, and Redis cannot tell which: it is reported, not
 * written. What Redis can tell is still written: the shadow under a hub record Redis holds as the
 * file does (see `Writer.shadow`), a revocation (never lifted, only expiring).
 */
type Mode = 'new' | 'cut';

/** Reads `file` and writes its records into the Redis at `options.url`; answers what it did. */
export async function importIntoRedis(file: string, options: RedisImportOptions): Promise<RedisImportReport> {
  const byDb = checkBackup(file, { keep: true }).records;
  const records = (db: string): BackupRecord[] => byDb.get(db) ?? [];
  const skipped: string[] = [];
  const notes: string[] = [];
  const units = planOf(records, skipped, notes);
  const keys = new RedisKeys(options.prefix);
  let writes = 0;
  const beforeWrite = async () => {
    await options.beforeWrite?.(writes++);
  };
  const control = await connectRedis(options.url, { name: `${options.prefix}import:control`, log: options.log, tls: options.tls });
  const writer = new Writer(control, keys, options, beforeWrite);
  try {
    const record = new ImportRecord(control, keys.single(`import:${digestOf(byDb)}`), beforeWrite);
    const state = await record.open(file === '-' ? 'stdin' : resolve(file), PLAN, units.length);
    for (const [, line] of [...state.skipped].sort(([a], [b]) => a - b)) skipped.push(`${line} [an earlier run of this file]`);
    if (state.finished !== null) {
      notes.unshift(`this file's import finished at ${new Date(state.finished).toISOString()} (record ${record.key}): nothing written again, so nothing the cluster changed since is undone`);
    } else {
      if (!state.made) notes.unshift(`what earlier runs of this file went through (record ${record.key}, the first run at ${new Date(state.started).toISOString()}): ${list(units.slice(0, state.done)) || 'nothing'}; not looked at again, so what the cluster changed since stays`);
      for (let i = state.done; i < units.length; i++) {
        // the unit an earlier run stopped in may be partly written: see Mode
        const line = await writer.write(units[i]!, i === state.done && !state.made ? 'cut' : 'new');
        if (line !== null) skipped.push(line);
        // after the unit's writes, never before (see ImportRecord)
        await record.advance(i + 1, line);
      }
      await record.finish();
    }
  } finally {
    await writer.close();
  }
  return { imported: writer.imported(), present: writer.present(), skipped, notes: [...notes, ...writer.notes] };
}

/** The units of the file in their one order; what can never be imported goes to `skipped`, what is not moved to `notes`. */
function planOf(records: (db: string) => BackupRecord[], skipped: string[], notes: string[]): Unit[] {
  const shadows = new Map<string, FileShadow>();
  for (const r of decodeShadowRecords(records('shadows'), namesOf(records(NAMES_DB)))) {
    let s = shadows.get(r.hubId);
    if (!s) shadows.set(r.hubId, (s = { devices: new Map(), cursor: null }));
    if (r.type === 'hub') s.cursor = r.cursor;
    else s.devices.set(r.deviceId, r.device);
  }
  const hubs: Unit[] = records('hubs').map(({ key, value }) => {
    const hub = decodeHubRecord(key, value);
    const shadow = shadows.get(hub.hubId);
    shadows.delete(hub.hubId);
    return { kind: 'hubs', hub, shadow };
  });
  if (shadows.size > 0) notes.push(`shadows of ${shadows.size} hubs the file has no record of (${[...shadows.keys()].slice(0, 5).join(', ')}${shadows.size > 5 ? ', …' : ''}): no node would read them`);

  const ruleRecords = records('rules').map(({ key, value }) => decodeRuleRecord(key, value));
  const cursors = new Map<string, number>();
  for (const r of ruleRecords) if (r.type === 'cursor' && r.at !== null) cursors.set(r.ruleId, r.at);
  const runs = new Map(records('delays').map(({ value }) => [(value as PendingRun).ruleId, value as PendingRun]));
  // settings first, before the items create the home: a home Redis knows keeps its settings
  const settings: Unit[] = ruleRecords.flatMap((r) => (r.type === 'home' && r.settings ? [{ kind: 'settings' as const, homeId: r.homeId, settings: r.settings }] : []));
  const items: Unit[] = ruleRecords.flatMap((r): Unit[] => {
    if (r.type === 'scene') return [{ kind: 'scenes', item: r.item }];
    if (r.type !== 'rule') return [];
    const unit: Unit = { kind: 'rules', item: r.item, cursorAt: cursors.get(r.item.id), run: runs.get(r.item.id) };
    cursors.delete(r.item.id);
    runs.delete(r.item.id);
    return [unit];
  });
  for (const ruleId of cursors.keys()) skipped.push(`cron cursor of rule ${ruleId}: its rule is not in the file`);
  for (const ruleId of runs.keys()) skipped.push(`pending run of rule ${ruleId}: its rule is not in the file`);

  // each waiting or delayed job's notification enqueued anew (a new job id, its attempts and
  // backoff from the start; the queue's dedup may fold one into a job Redis holds)
  const push = records('push').map(({ key, value }) => decodePushRecord(key, value));
  const jobs: Unit[] = push.flatMap((r) => (r.type === 'job' ? [{ kind: 'push jobs' as const, notification: r.notification }] : []));
  const failed = push.filter((r) => r.type === 'failed').length;
  if (failed > 0) notes.push(`push: ${failed} failed notifications (dead letters)`);
  // token revocations: left behind, a revoked token would work again in the cluster
  const revocations: Unit[] = records('revocations').map(({ value }) => ({ kind: 'revocations', revocation: revocationOfRecord(value as RevocationRecord) }));

  // a claim is two records, the nonce (a string key) and its expiry index entry
  const nonces = records('nonces').filter((r) => typeof r.key === 'string').length;
  if (nonces > 0) notes.push(`nonces: ${nonces} (they only matter within the handshake's skew window)`);
  const audit = records('audit').length;
  if (audit > 0) notes.push(`audit trail: ${audit} entries (the cluster keeps its own; the backup file keeps these)`);
  const stats = records('rule-stats').length;
  if (stats > 0) notes.push(`rule statistics: ${stats} rules' run counts (they start again from zero)`);
  return [...hubs, ...settings, ...items, ...jobs, ...revocations];
}

/** SHA-256 of the records (not of the bytes: two exports of a node that did not change are one import). */
function digestOf(byDb: Map<string, BackupRecord[]>): string {
  const hash = createHash('sha256');
  for (const [db, list] of byDb) for (const r of list) hash.update(`${JSON.stringify([db, r.key, r.value])}\n`);
  return hash.digest('hex');
}

/** Writes units through the Redis adapters (connected on first use), and counts what it wrote and found. */
class Writer {
  private readonly written = new Map<string, number>();
  private readonly found = new Map<string, number>();
  /** what the report notes of the units written */
  readonly notes: string[] = [];
  private readonly registry: RedisHubRegistry;
  private readonly rules: RedisRuleStore;
  private readonly revocations: RedisRevocationStore;
  private shadowStore: RedisShadowStore | null = null;
  private pendingRuns: RedisPendingRuns | null = null;
  private queue: BullMqPushQueue | null = null;
  private inForce: Set<string> | null = null;

  constructor(
    private readonly control: Redis,
    private readonly keys: RedisKeys,
    private readonly options: RedisImportOptions,
    private readonly beforeWrite: () => Promise<void>,
  ) {
    this.registry = new RedisHubRegistry(control, { keys });
    this.rules = new RedisRuleStore(control, { log: options.log, keys });
    this.revocations = new RedisRevocationStore(control, { keys });
  }

  imported(): Record<string, number> {
    return ordered(this.written);
  }

  present(): Record<string, number> {
    return ordered(this.found);
  }

  /** Writes what Redis lacks of `unit`, as `mode` allows; answers its NOT IMPORTED line, or null. */
  write(unit: Unit, mode: Mode): Promise<string | null> {
    switch (unit.kind) {
      case 'hubs':
        return this.hub(mode, unit.hub, unit.shadow);
      case 'settings':
        return this.settings(mode, unit.homeId, unit.settings);
      case 'rules':
        return this.rule(mode, unit.item, unit.cursorAt, unit.run);
      case 'scenes':
        return this.scene(mode, unit.item);
      case 'push jobs':
        return this.push(mode, unit.notification);
      case 'revocations':
        return this.revocation(unit.revocation);
    }
  }

  /** The record with its secret as it is; then the shadow: kinds and models, reported (with its versions) and cursor, desired. */
  private async hub(mode: Mode, hub: HubRecord, shadow: FileShadow | undefined): Promise<string | null> {
    if (mode === 'new' && (await this.create(hub))) this.tally(true, 'hubs');
    else {
      const have = await this.registry.get(hub.hubId);
      if (have === null) return `hub ${hub.hubId}: ${CUT}, and redis does not hold it: ${GONE} (not written, nor its shadow)`;
      if (!sameData(have, hub)) return `hub ${hub.hubId}: provisioned in redis with another record (kept as it is, its shadow not imported)`;
      this.tally(false, 'hubs');
    }
    return shadow === undefined ? null : this.shadow(hub.hubId, shadow);
  }

  /** False when the id exists already. */
  private async create(hub: HubRecord): Promise<boolean> {
    await this.beforeWrite();
    try {
      await this.registry.create(hub);
      return true;
    } catch (err) {
      if (err instanceof TierError && err.code === 'already_exists') return false;
      throw err;
    }
  }

  /**
   * Writes what Redis's shadow lacks of the file's, unless it holds anything else (a report, a
   * desired state, a device, a cursor of the cluster's): then the hub has lived in the cluster, and
   * a part missing may be one it removed, so nothing is written. Each write is one atomic step.
   */
  private async shadow(hubId: string, file: FileShadow): Promise<string | null> {
    this.shadowStore ??= await RedisShadowStore.connect(this.options.url, { name: `${this.options.prefix}import:shadows`, log: this.options.log, keys: this.keys });
    const store = this.shadowStore;
    const missing = missingOf(file, await store.load(hubId), await store.loadCursor(hubId));
    if (typeof missing === 'string') return `shadow of hub ${hubId}: redis holds a newer one (${missing}; kept as it is)`;
    const device = (id: string) => file.devices.get(id)!;
    if (missing.kinds.length > 0) {
      await this.beforeWrite();
      await store.writeDevices(hubId, missing.kinds.map((id) => ({ d: id, k: device(id).kind!, ...(device(id).model !== undefined ? { m: device(id).model } : {}) })), [], false);
    }
    if (missing.reported.length > 0 || missing.cursor) {
      await this.beforeWrite();
      for (const id of missing.reported) store.writeReported(hubId, id, device(id), 0);
      if (missing.cursor) store.writeCursor(hubId, file.cursor!, 0);
      // one HSET of the hub's hash
      await store.flush();
    }
    for (const id of missing.desired) {
      await this.beforeWrite();
      // the device has no desired side yet: one new change, version 1
      await store.setDesired(hubId, id, device(id).desired);
    }
    const wrote = new Set([...missing.kinds, ...missing.reported, ...missing.desired]);
    for (const id of file.devices.keys()) this.tally(wrote.has(id), 'devices');
    if (file.cursor !== null) this.tally(missing.cursor, 'cursors');
    return null;
  }

  private async settings(mode: Mode, homeId: string, settings: HomeSettings): Promise<string | null> {
    const known = (await this.rules.homeVersion(homeId)) > 0;
    if (!known && mode === 'new') {
      await this.beforeWrite();
      await this.rules.putSettings(homeId, settings);
      this.tally(true, 'settings');
      return null;
    }
    if (sameData(await this.rules.getSettings(homeId), settings)) {
      this.tally(false, 'settings');
      return null;
    }
    return known ? `settings of home ${homeId}: the home exists in redis with other settings (kept)` : `settings of home ${homeId}: ${CUT}, and redis does not hold them: ${GONE} (not written)`;
  }

  /** With its id, version and times; then its cron cursor (it only moves forward) and its pending run. */
  private async rule(mode: Mode, rule: Rule, cursorAt: number | undefined, run: PendingRun | undefined): Promise<string | null> {
    const also = cursorAt !== undefined && run ? 'its cron cursor and pending run' : cursorAt !== undefined ? 'its cron cursor' : run ? 'its pending run' : '';
    const got = await this.item(mode, 'rule', rule, also);
    if (typeof got === 'string') return got;
    if (cursorAt !== undefined) {
      await this.beforeWrite();
      // false: as late or later (the rule ran in the cluster, or an earlier import wrote it)
      this.tally(await this.rules.advanceCursor(rule.homeId, rule.id, cursorAt), 'cron cursors');
    }
    if (run === undefined) return null;
    if (!got.wrote && mode === 'cut') return `pending run of rule ${rule.id}: the run cut short may have saved it, and a node may have run it since (not saved again)`;
    if (!got.wrote) {
      this.notes.push(`pending run of rule ${rule.id}: not saved again (its rule was in redis as in the file: imported before, which saved the run)`);
      return null;
    }
    // saved as node IMPORT_NODE_ID, whose claim ends with the import (close drops it): the first
    // live node that claims orphans (at its start or its periodic check) resumes it
    this.pendingRuns ??= await RedisPendingRuns.connect(this.options.url, { name: `${this.options.prefix}import:delays`, nodeId: IMPORT_NODE_ID, log: this.options.log, keys: this.keys });
    await this.beforeWrite();
    await this.pendingRuns.save(run);
    this.tally(true, 'pending runs');
    return null;
  }

  private async scene(mode: Mode, scene: Scene): Promise<string | null> {
    const got = await this.item(mode, 'scene', scene, '');
    return typeof got === 'string' ? got : null;
  }

  /** Whether this run wrote it or found it in Redis as the file holds it; else its NOT IMPORTED line (`also`: what goes with it). */
  private async item(mode: Mode, kind: 'rule' | 'scene', item: Rule | Scene, also: string): Promise<{ wrote: boolean } | string> {
    if (mode === 'new') {
      await this.beforeWrite();
      if (await this.rules.importItem(kind, item)) {
        this.tally(true, `${kind}s`);
        return { wrote: true };
      }
    }
    const have = kind === 'rule' ? await this.rules.getRule(item.homeId, item.id) : await this.rules.getScene(item.homeId, item.id);
    const name = `${kind} ${item.id} of home ${item.homeId}`;
    if (have === null) return `${name}: ${CUT}, and redis does not hold it: ${GONE} (not written${also ? `, nor ${also}` : ''})`;
    if (!sameData(have, item)) return `${name}: the id exists in redis with another ${kind} (kept as it is${also ? `; ${also} not imported` : ''})`;
    this.tally(false, `${kind}s`);
    return { wrote: false };
  }

  /** Enqueued anew; a run cut short may have enqueued it, and a worker delivered it, which Redis cannot tell. */
  private async push(mode: Mode, notification: PushNotification): Promise<string | null> {
    if (mode === 'cut') return `push notification of home ${notification.homeId} (dedup key ${notification.dedupKey}): the run cut short may have queued it, and it may have been delivered since (not queued again)`;
    // what the backup held queued is queued again whatever the cluster's bound (TIER_PUSH_MAX_QUEUED):
    // refused, the import stopped there, before the revocations (review "diff25")
    this.queue ??= await BullMqPushQueue.connect(this.options.url, { name: `${this.options.prefix}import:push`, log: this.options.log, keys: this.keys, maxQueued: Number.MAX_SAFE_INTEGER });
    await this.beforeWrite();
    // a duplicate: its dedup key is queued in redis already, delivered once
    this.tally(!(await this.queue.enqueue(notification)).duplicate, 'push jobs');
    return null;
  }

  /** One still in force; written again after a cut too: a revocation is never lifted, only expires. */
  private async revocation(r: TokenRevocation): Promise<string | null> {
    const nowS = Math.floor(Date.now() / 1000);
    if (r.exp <= nowS) return null;
    this.inForce ??= new Set((await this.revocations.list(nowS)).map(revocationKey));
    const key = revocationKey(r);
    const there = this.inForce.has(key);
    if (!there) {
      await this.beforeWrite();
      await this.revocations.add(r);
      this.inForce.add(key);
    }
    this.tally(!there, 'revocations');
    return null;
  }

  /** Counts one of `kind` as written by this run, or as found in Redis as the file holds it. */
  private tally(wrote: boolean, kind: string): void {
    const counts = wrote ? this.written : this.found;
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }

  async close(): Promise<void> {
    await this.queue?.close();
    await this.pendingRuns?.close();
    await this.shadowStore?.close();
    // the registry, rule and revocation stores only borrow the control connection (no watch: no subscriber to close)
    await closeRedis(this.control);
  }
}

/** The NOT IMPORTED line of a unit cut short that Redis lacks: why Redis cannot tell whether it was written. */
const CUT = 'the run cut short may have written it';
const GONE = 'written and deleted in the cluster since, or never written';

/** Counts by kind in the report's order. */
function ordered(counts: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const kind of KINDS) if (counts.has(kind)) out[kind] = counts.get(kind)!;
  return out;
}

/** `hubs 2, rules 1`: the units by kind */
function list(units: Unit[]): string {
  const counts = new Map<string, number>();
  for (const unit of units) counts.set(unit.kind, (counts.get(unit.kind) ?? 0) + 1);
  return [...counts].map(([kind, n]) => `${kind} ${n}`).join(', ');
}
