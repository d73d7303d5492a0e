/**
 * The check of a whole backup before anything is written (`npm run data -- import`, also with
 * `--redis`): every record decoded with the decoders the stores read it with, every id checked as
 * the API checks it, attribute values as the hub protocol's codec checks them, every sub-database
 * one the store knows: what passes, a node reads. The first fault is a BackupError naming the
 * file's line, so a bad backup writes nothing.
 */
import { isValidId } from '../proto/subjects.js';
import { isSealed } from './auth/secret-box.js';
import { BackupError, BackupSource, readBackup, type BackupRecord } from './data-backup-file.js';
import { attrs } from './protocol/codec.js';
import { decodeHubRecord } from './ports/hub-registry/hub-registry-lmdb.js';
import { decodePushRecord } from './ports/push-queue/push-queue-lmdb.js';
import { validatePushNotification, type PushNotification } from './ports/push-queue/push-queue.js';
import { decodeRuleRecord } from './ports/rule-store/rule-store-lmdb-records.js';
import { decodeShadowRecords, NAMES_DB, namesOf } from './ports/shadow-store/shadow-store-lmdb.js';
import { validateRuleSpec, validateSceneSpec, validateSettings } from './rules/validate.js';

/** A record's fault, thrown by a check: the caller adds the file and line. */
class Fault extends Error {}

const fault = (what: string): never => {
  throw new Fault(what);
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isTuple = (k: unknown, ...types: Array<'string' | 'number'>): k is unknown[] => Array.isArray(k) && k.length === types.length && types.every((t, i) => typeof k[i] === t);

function id(what: string, v: unknown): string {
  if (!isValidId(v)) fault(`${what} ${JSON.stringify(v)} is not a valid id (1-64 of A-Z a-z 0-9 _ -, not a reserved name)`);
  return v as string;
}

/**
 * Rule and scene bodies as the API validates them; the node's policy limits (cron spacing, command
 * timeout) and the expression checks newer than the backup may be (typed `time`, bool conditions,
 * `between` literals) are not re-applied.
 */
const LOOSE = { minCronIntervalMs: 0, maxCommandTimeoutMs: Number.MAX_SAFE_INTEGER, strictExpressions: false };

function specOf(item: Record<string, unknown>, fields: readonly string[]): Record<string, unknown> {
  const spec: Record<string, unknown> = {};
  for (const f of fields) if (item[f] !== undefined) spec[f] = item[f];
  return spec;
}

/**
 * The highest layout of shadow records (sub-database `layouts`, key `shadows`) this version reads:
 * NUMBERED_HUBS_LAYOUT of shadow-store-lmdb-migrate.ts, which refuses to open a store marked
 * higher (test/unit/data-backup.test.ts holds the two together).
 */
export const SHADOWS_LAYOUT = 4;

function checkRule(key: unknown, value: unknown): void {
  const r = decodeRuleRecord(key, value);
  if (r.type === 'home') {
    id('home', r.homeId);
    if (!isObject(value) || typeof value.v !== 'number') fault('a home record must be {"v": version, "settings"?}');
    if (r.settings) validateSettings(r.settings);
  } else if (r.type === 'rule' || r.type === 'scene') {
    const item = r.item as unknown as Record<string, unknown>;
    if (!isObject(item)) fault(`a ${r.type} must be a JSON object`);
    const k = key as unknown[];
    if (item.homeId !== k[1] || item.id !== k[2]) fault(`the ${r.type}'s homeId and id must be its key's`);
    id('home', item.homeId);
    id(r.type, item.id);
    for (const f of ['version', 'createdAt', 'updatedAt']) if (typeof item[f] !== 'number') fault(`the ${r.type}'s ${f} must be a number`);
    if (r.type === 'rule') validateRuleSpec(specOf(item, ['name', 'description', 'enabled', 'triggers', 'devices', 'conditions', 'actions', 'cooldownMs', 'limit']), LOOSE);
    else validateSceneSpec(specOf(item, ['name', 'description', 'enabled', 'commands']), LOOSE);
  } else if (r.type === 'cron') {
    if (!isTuple(key, 'string', 'string', 'string') || value !== 1) fault('a cron record must be ["cron", homeId, ruleId] → 1');
    id('home', r.homeId);
    id('rule', r.ruleId);
  } else {
    id('rule', r.ruleId);
    if (!(typeof value === 'number' || (isObject(value) && typeof value.deletedAt === 'number'))) fault('a cron cursor must be a number or {"deletedAt"}');
    // the time the rule's schedule was run up to: one past the import's day would hold the rule back until then
    if (typeof value === 'number' && !(Number.isSafeInteger(value) && value <= Date.now() + DAY_MS)) fault(`a cron cursor must be a time (ms) no later than now: ${value} would keep the rule from firing until then`);
  }
}

/**
 * As the LMDB push queue reads them: dedup entries and counters at start (`load`), jobs and dead
 * letters as it delivers and lists them, their notification as `enqueue` validated it.
 */
function checkPush(key: unknown, value: unknown): void {
  const kind: unknown = Array.isArray(key) ? key[0] : undefined;
  if ((kind === 'job' || kind === 'failed') && !isObject(value)) fault(`a push ${kind} record must be an object`);
  const r = decodePushRecord(key, value);
  const fields = (what: string, type: 'string' | 'number', ...names: string[]) => {
    for (const f of names) if (typeof (value as Record<string, unknown>)[f] !== type) fault(`a push ${what}'s ${f} must be a ${type}`);
  };
  switch (r.type) {
    case 'job':
      if (!isTuple(key, 'string', 'string')) fault('a push job\'s key must be ["job", id]');
      fields('job', 'number', 'attempt', 'dueAt', 'enqueuedAt');
      return checkNotification(r.notification);
    case 'failed':
      if (!isTuple(key, 'string', 'number', 'string')) fault('a dead letter\'s key must be ["failed", failedAt, id]');
      fields('dead letter', 'string', 'id', 'error');
      fields('dead letter', 'number', 'attempts', 'failedAt');
      return checkNotification(r.failure.notification);
    default:
      if (!isTuple(key, 'string', 'string')) fault(`a push ${r.type} record's key must be ["${r.type}", name]`);
      if (r.type === 'dedup' && !(isObject(value) && typeof value.id === 'string' && typeof value.at === 'number')) fault('a push dedup entry must be {"id", "at"}');
      if (r.type === 'count' && !(Number.isSafeInteger(value) && (value as number) >= 0)) fault('a push counter must be a whole number, 0 or more');
  }
}

function checkNotification(n: unknown): void {
  if (!isObject(n)) fault('a push notification must be a JSON object');
  try {
    validatePushNotification(n as unknown as PushNotification);
  } catch (err) {
    fault(`push notification ${(err as Error).message}`);
  }
}

function checkDelay(key: unknown, value: unknown): void {
  if (!isObject(value)) fault('a pending run must be an object');
  const run = value as Record<string, unknown>;
  for (const f of ['runId', 'ruleId', 'dedupBase']) if (typeof run[f] !== 'string') fault(`a pending run's ${f} must be a string`);
  for (const f of ['ruleVersion', 'dueAt', 'offset']) if (typeof run[f] !== 'number') fault(`a pending run's ${f} must be a number`);
  if (!Array.isArray(run.actions)) fault("a pending run's actions must be an array");
  id('home', run.homeId);
  id('rule', run.ruleId);
  if (key !== run.ruleId) fault("a pending run's key must be its ruleId");
}

const DAY_MS = 86_400_000;

/** Each sub-database the store knows and the check of one of its records (shadows are checked together, at the end). */
const CHECKS = new Map<string, (key: unknown, value: unknown) => void>([
  ['hubs', (key, value) => {
    const hub = decodeHubRecord(key, value);
    id('hub', hub.hubId);
    id('home', hub.homeId);
    // a secret in clear (versions before sealing) is read as such; one in the sealed form's prefix but not the form opens for no key
    for (const secret of [hub.secret, hub.previousSecret?.secret]) if (secret?.startsWith('s1.') && !isSealed(secret)) fault(`hub ${JSON.stringify(hub.hubId)}: a secret that is not a sealed value (s1.<key id>.<sealed>): damaged or edited`);
  }],
  ['hub-homes', (key, value) => {
    if (!isTuple(key, 'string', 'string') || value !== null) fault('a home index entry must be [homeId, hubId] → null');
  }],
  ['nonces', (key, value) => {
    // an index entry's value: [run, monotonic expiry] of the store that claimed it (null before it was kept)
    const mark = value === null || (Array.isArray(value) && value.length === 2 && Number.isInteger(value[0]) && typeof value[1] === 'number');
    if (!((typeof key === 'string' && typeof value === 'number') || (isTuple(key, 'number', 'string') && mark))) fault('a nonce must be key → expiry or [expiry, key] → [run, monotonic expiry] or null');
  }],
  ['audit', (key, value) => {
    if (!isTuple(key, 'number', 'string') || !isObject(value) || value.at !== key[0] || value.id !== key[1] || typeof value.action !== 'string') fault('an audit entry must be [at, id] → {id, at, action, ...}');
  }],
  ['audit-home', (key, value) => {
    if (!isTuple(key, 'string', 'number', 'string') || value !== 1) fault('an audit home index entry must be [homeId, at, id] → 1');
  }],
  ['audit-bucket', (key, value) => {
    if (!isTuple(key, 'string', 'number', 'string') || value !== 1) fault('an audit bucket index entry must be [bucket, at, id] → 1');
  }],
  ['revocations', (key, value) => {
    const ok = (v: unknown, t: string) => v === null || typeof v === t;
    // four elements before homes could be revoked (2026-12-05), five since
    const shaped = Array.isArray(value) && (value.length === 4 || (value.length === 5 && ok(value[4], 'string')));
    if (typeof key !== 'string' || !shaped || !ok(value[0], 'string') || !ok(value[1], 'string') || !ok(value[2], 'number') || typeof value[3] !== 'number') fault('a revocation must be key → [jti, sub, before, exp, home]');
    // its end, when the tokens it refuses have expired: one never reached would be kept, and counted against the limit, for ever
    if (!Number.isSafeInteger((value as unknown[])[3])) fault(`a revocation's exp must be a time in seconds, not ${String((value as unknown[])[3])}`);
  }],
  ['push', checkPush],
  ['rules', checkRule],
  ['rule-stats', (key, value) => {
    if (!isTuple(key, 'string', 'string') || !isObject(value)) return fault('rule statistics must be [homeId, ruleId] → {...}');
    id('home', key[0]);
    id('rule', key[1]);
  }],
  ['layouts', (key, value) => {
    if (typeof key !== 'string' || !Number.isInteger(value) || (value as number) < 0) fault('a layout marker must be name → integer');
    if (key === 'shadows' && (value as number) > SHADOWS_LAYOUT) fault(`shadow records of layout ${String(value)}; this version reads layouts up to ${SHADOWS_LAYOUT}: a newer version wrote them, import with that version`);
  }],
  ['delays', checkDelay],
  ['shadows', () => {}],
  [NAMES_DB, () => {}],
]);

/** The sub-databases a backup may hold: the ones the LMDB adapters open. */
export const KNOWN_DBS: ReadonlySet<string> = new Set(CHECKS.keys());

/** The history's, in the main store before it had its own file (history.mdb): read by nothing now, so not imported. */
export const isLegacyHistory = (db: string): boolean => /^history(-range|-epoch)?$/.test(db);

export interface CheckedBackup {
  /** records per sub-database to import (legacy history records not counted) */
  counts: Record<string, number>;
  /** legacy history records, left out */
  ignored: number;
  /** every record, by sub-database, when asked to `keep` them */
  records: Map<string, BackupRecord[]>;
}

/**
 * Reads the whole backup (a path, `-` for stdin, or a source opened once) and checks it; a
 * BackupError `FILE:LINE: ...` at the first fault. With `keep`, answers its records too (the
 * Redis import writes from them, and the import from a pipe, which cannot be read twice).
 */
export function checkBackup(from: string | BackupSource, options: { keep?: boolean } = {}): CheckedBackup {
  const source = typeof from === 'string' ? BackupSource.open(from) : from;
  try {
    return check(source, options.keep === true);
  } finally {
    if (typeof from === 'string') source.close();
  }
}

function check(source: BackupSource, keep: boolean): CheckedBackup {
  const file = source.name;
  const counts: Record<string, number> = {};
  let ignored = 0;
  const records = new Map<string, BackupRecord[]>();
  // what is checked against other records once all are read
  const hubs = new Map<string, BackupRecord>();
  const homeOf = (hubId: string) => (hubs.get(hubId)?.value as [string] | undefined)?.[0];
  const homeIndex: BackupRecord[] = [];
  const shadows: BackupRecord[] = [];
  const names: BackupRecord[] = [];
  const at = (r: BackupRecord, what: string) => new BackupError(`${file}:${r.line}: ${r.db} record: ${what}`);
  for (const r of readBackup(source)) {
    const check = CHECKS.get(r.db);
    if (check === undefined && isLegacyHistory(r.db)) {
      ignored++;
      continue;
    }
    if (check === undefined) throw new BackupError(`${file}:${r.line}: unknown sub-database ${JSON.stringify(r.db)} (known: ${[...KNOWN_DBS].join(', ')})`);
    try {
      check(r.key, r.value);
    } catch (err) {
      throw at(r, (err as Error).message);
    }
    counts[r.db] = (counts[r.db] ?? 0) + 1;
    if (r.db === 'hubs') hubs.set(r.key as string, r);
    else if (r.db === 'hub-homes') homeIndex.push(r);
    else if (r.db === 'shadows') shadows.push(r);
    else if (r.db === NAMES_DB) names.push(r);
    if (keep) {
      let list = records.get(r.db);
      if (!list) records.set(r.db, (list = []));
      list.push(r);
    }
  }
  const indexed = new Set<string>();
  for (const r of homeIndex) {
    const [homeId, hubId] = r.key as [string, string];
    if (homeOf(hubId) !== homeId) throw at(r, `no hub ${JSON.stringify(hubId)} of home ${JSON.stringify(homeId)} in the backup`);
    if (indexed.has(hubId)) throw at(r, `a second index entry of hub ${JSON.stringify(hubId)}`);
    indexed.add(hubId);
  }
  // an index the registry does not rebuild (it does when it holds none: a backup of the first layout); a hub missing from it is missing from its home's list
  if (homeIndex.length > 0) {
    for (const [hubId, r] of hubs) if (!indexed.has(hubId)) throw at(r, `no home index entry (hub-homes ${JSON.stringify([homeOf(hubId), hubId])}): its home would not list it`);
  }
  checkShadows(shadows, names, at);
  return { counts, ignored, records };
}

/** The shadow records, decoded in file order as the Redis import and the store read them. */
function checkShadows(shadows: BackupRecord[], names: BackupRecord[], at: (r: BackupRecord, what: string) => BackupError): void {
  let current: BackupRecord | undefined;
  // lazily, so that `current` is the record the decoder was reading when it threw
  const tracked = function* (list: BackupRecord[]) {
    for (const r of list) yield (current = r);
  };
  let lists: ReturnType<typeof namesOf>;
  try {
    lists = namesOf(tracked(names));
  } catch (err) {
    throw at(current!, (err as Error).message);
  }
  current = undefined;
  try {
    for (const s of decodeShadowRecords(tracked(shadows), lists)) {
      id('hub', s.hubId);
      if (s.type !== 'device') continue;
      id('device', s.deviceId);
      // scalars under attribute names, as the codec takes them from a hub (its size limits are the node's policy, not re-applied)
      attrs(s.device.reported, `device ${s.deviceId} reported`, false);
      attrs(s.device.desired, `device ${s.deviceId} desired`, false);
    }
  } catch (err) {
    if (current === undefined) throw err;
    throw at(current, (err as Error).message);
  }
}
