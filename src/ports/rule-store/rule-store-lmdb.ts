import type { Database } from 'lmdb';
import type { DataStore } from '../lmdb.js';
import { TierError } from '../../errors.js';
import type { HomeRecord } from './rule-store-lmdb-records.js';
import { DEFAULT_SETTINGS, type HomeSettings, type Rule, type RuleSpec, type Scene, type SceneSpec } from '../../rules/model.js';
import { DEFAULT_HOME_LIMITS, created, homeFull, newId, noRunStats, scheduledOf, toggled, updated, withDelta, type HomeItemLimits, type RuleRunDelta, type RuleRunStats, type RuleStore, type RuleStoreChange, type ScheduledRule } from './rule-store.js';

export interface LmdbRuleStoreOptions {
  /** the clock of `createdAt`/`updatedAt`, of the version floor and of tombstones (ms); @default Date.now */
  now?: () => number;
  /** @default DEFAULT_HOME_LIMITS */
  limits?: HomeItemLimits;
}

/** how long a deleted rule's cursor refuses a late `advanceCursor` (as the Redis store) */
const TOMBSTONE_MS = 86_400_000;
/** cursors a delete looks at for expired tombstones: more than the one it leaves, so they cannot pile up */
const SWEEP_PER_DELETE = 8;

type Kind = 'rule' | 'scene';
type Key = Array<string | number>;
/** a cron cursor (ms), or the tombstone a deleted rule leaves */
type Cursor = number | { deletedAt: number };

/**
 * Rules, scenes and settings in the node's LMDB store (the embedded default), sub-database
 * 'rules', keys (tuples, ordered):
 *
 * - `['home', H]` → `{ v, settings }`: the home version and its settings (JSON);
 * - `['rule', H, id]`, `['scene', H, id]` → the item as JSON: msgpackr renames a `__proto__` key
 *   while decoding, JSON.parse keeps it as an own property, and specs may hold any key;
 * - `['cron', H, id]` → 1 for each rule with a cron trigger (what `listScheduled` reads);
 * - `['cursor', id]` → the cron cursor, or `{ deletedAt }` for a deleted rule;
 * - sub-database 'rule-stats': `[H, id]` → the rule's run statistics, added to in one
 *   transaction per batch, not waited on to be durable: counts of the last moments before a crash
 *   may be lost (they are observations, not state).
 *
 * Every write is one LMDB transaction with the home version's bump: it is committed (fsynced
 * with DATA_SYNC=commit) when its promise resolves, so a restart keeps it; a write still pending
 * at a crash is kept whole or not at all. Versions are max(previous + 1, clock in ms): never
 * reused, also across restarts and after a restore from an older backup (while the clock is right).
 *
 * Deleting a rule leaves a tombstone on its cursor for a day, so a scheduler tick racing the
 * delete cannot bring the cursor back (`advanceCursor` answers false, as the Redis store);
 * tombstones older than that are swept when the store opens, and while it runs by every delete,
 * which looks at the next few cursors in turn: a home's users creating and deleting rules in a
 * loop leave a day of tombstones plus those of one pass over every cursor, not one per delete for
 * the process's life.
 *
 * `watch` (one process only: the store belongs to one node): listeners are called after the
 * commit, once per change, in commit order; a listener that throws is skipped.
 */
export class LmdbRuleStore implements RuleStore {
  private readonly db: Database<unknown, Key>;
  #stats: Database<unknown, Key> | null = null;
  private readonly now: () => number;
  private readonly limits: HomeItemLimits;
  private readonly listeners = new Set<(change: RuleStoreChange) => void>();
  private closed = false;
  /** where the next delete's sweep goes on from: the cursor it stopped at */
  private sweepFrom: Key = ['cursor'];

  /** The store stays the caller's: `close()` stops this adapter, not the DataStore. */
  private constructor(
    private readonly data: DataStore,
    options: LmdbRuleStoreOptions = {},
  ) {
    this.db = data.db<unknown>('rules') as Database<unknown, Key>;
    this.now = options.now ?? Date.now;
    this.limits = options.limits ?? DEFAULT_HOME_LIMITS;
  }

  /** Opens the adapter and sweeps expired tombstones (resolves once that is committed). */
  static async open(data: DataStore, options: LmdbRuleStoreOptions = {}): Promise<LmdbRuleStore> {
    const store = new LmdbRuleStore(data, options);
    await store.sweepTombstones();
    return store;
  }

  async homeVersion(homeId: string): Promise<number> {
    return this.home(homeId)?.v ?? 0;
  }

  listRules(homeId: string): Promise<Rule[]> {
    return Promise.resolve(this.list<Rule>('rule', homeId));
  }

  getRule(homeId: string, ruleId: string): Promise<Rule | null> {
    return Promise.resolve(this.item<Rule>('rule', homeId, ruleId));
  }

  createRule(homeId: string, spec: RuleSpec): Promise<Rule> {
    return this.create<Rule>('rule', homeId, spec);
  }

  updateRule(homeId: string, ruleId: string, spec: RuleSpec): Promise<Rule | null> {
    return this.update<Rule>('rule', homeId, ruleId, spec);
  }

  setRuleEnabled(homeId: string, ruleId: string, enabled: boolean): Promise<Rule | null> {
    return this.setEnabled<Rule>('rule', homeId, ruleId, enabled);
  }

  deleteRule(homeId: string, ruleId: string): Promise<boolean> {
    return this.remove('rule', homeId, ruleId);
  }

  listScenes(homeId: string): Promise<Scene[]> {
    return Promise.resolve(this.list<Scene>('scene', homeId));
  }

  getScene(homeId: string, sceneId: string): Promise<Scene | null> {
    return Promise.resolve(this.item<Scene>('scene', homeId, sceneId));
  }

  createScene(homeId: string, spec: SceneSpec): Promise<Scene> {
    return this.create<Scene>('scene', homeId, spec);
  }

  updateScene(homeId: string, sceneId: string, spec: SceneSpec): Promise<Scene | null> {
    return this.update<Scene>('scene', homeId, sceneId, spec);
  }

  setSceneEnabled(homeId: string, sceneId: string, enabled: boolean): Promise<Scene | null> {
    return this.setEnabled<Scene>('scene', homeId, sceneId, enabled);
  }

  deleteScene(homeId: string, sceneId: string): Promise<boolean> {
    return this.remove('scene', homeId, sceneId);
  }

  async getSettings(homeId: string): Promise<HomeSettings> {
    const raw = this.home(homeId)?.settings;
    return raw ? (JSON.parse(raw) as HomeSettings) : { ...DEFAULT_SETTINGS };
  }

  async putSettings(homeId: string, settings: HomeSettings): Promise<HomeSettings> {
    const json = JSON.stringify(settings);
    await this.write(homeId, (home) => {
      home.settings = json;
      return true;
    });
    return JSON.parse(json) as HomeSettings;
  }

  async listScheduled(): Promise<ScheduledRule[]> {
    const out: ScheduledRule[] = [];
    // one synchronous pass: lmdb-js reads from one snapshot within an event-loop turn
    for (const { key } of this.range(['cron'])) {
      const [, homeId, ruleId] = key as [string, string, string];
      const rule = this.item<Rule>('rule', homeId, ruleId);
      const raw = this.home(homeId)?.settings;
      const s = rule && scheduledOf(rule, raw ? (JSON.parse(raw) as HomeSettings).timeZone : DEFAULT_SETTINGS.timeZone);
      if (s) out.push(s);
    }
    return out;
  }

  /** one node, one clock: the scheduler goes by the node's own */
  async sharedTime(): Promise<null> {
    return null;
  }

  async getCursor(ruleId: string): Promise<number | null> {
    const c = this.db.get(['cursor', ruleId]) as Cursor | undefined;
    return typeof c === 'number' ? c : null;
  }

  async advanceCursor(_homeId: string, ruleId: string, at: number): Promise<boolean> {
    if (!Number.isSafeInteger(at)) return Promise.reject(new RangeError(`cursor instant must be an integer of ms, got ${at}`));
    if (this.closed) return Promise.reject(closedError());
    // LMDB runs one write transaction at a time: racing calls see each other's result
    return this.data.written(
      this.data.root.transaction(() => {
        const cur = this.db.get(['cursor', ruleId]) as Cursor | undefined;
        if (typeof cur === 'number' && cur >= at) return false;
        if (typeof cur === 'object' && this.now() - cur.deletedAt < TOMBSTONE_MS) return false;
        void this.db.put(['cursor', ruleId], at);
        return true;
      }),
    );
  }

  async addRunStats(deltas: readonly RuleRunDelta[]): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    if (deltas.length === 0) return;
    // one transaction for the batch, after the rules' own writes: a deleted rule gets nothing back
    await this.data.root.transaction(() => {
      for (const d of deltas) {
        if (this.db.get(['rule', d.homeId, d.ruleId]) === undefined) continue;
        const stored = (this.stats.get([d.homeId, d.ruleId]) as RuleRunStats | undefined) ?? noRunStats();
        void this.stats.put([d.homeId, d.ruleId], withDelta(stored, d));
      }
    });
  }

  async getRunStats(homeId: string, ruleIds: readonly string[]): Promise<Map<string, RuleRunStats>> {
    return new Map(ruleIds.map((id) => [id, { ...((this.stats.get([homeId, id]) as RuleRunStats | undefined) ?? noRunStats()) }]));
  }

  /**
   * `[homeId, ruleId]` → RuleRunStats: a sub-database of its own (backups and the Redis import read
   * 'rules' record by record), opened at first use so a store that never ran a rule has none.
   */
  private get stats(): Database<unknown, Key> {
    return (this.#stats ??= this.data.db<unknown>('rule-stats') as Database<unknown, Key>);
  }

  watch(listener: (change: RuleStoreChange) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Stops taking writes and waits for those issued; the DataStore stays open (its owner closes it). */
  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    await this.data.flushed();
  }

  // ---- items ------------------------------------------------------------------------------------

  private home(homeId: string): HomeRecord | undefined {
    return this.db.get(['home', homeId]) as HomeRecord | undefined;
  }

  private item<T extends Rule | Scene>(kind: Kind, homeId: string, id: string): T | null {
    const raw = this.db.get([kind, homeId, id]) as string | undefined;
    return raw === undefined ? null : (JSON.parse(raw) as T);
  }

  private list<T extends Rule | Scene>(kind: Kind, homeId: string): T[] {
    const all = [...this.range([kind, homeId])].map(({ value }) => JSON.parse(value as string) as T);
    // keys are random ids: oldest first, as created (the Redis store's order)
    return all.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  private async create<T extends Rule | Scene>(kind: Kind, homeId: string, spec: RuleSpec | SceneSpec): Promise<T> {
    let item!: T;
    const max = kind === 'rule' ? this.limits.rules : this.limits.scenes;
    let full = false;
    await this.write(homeId, () => {
      // counted in the write's transaction: racing creates see each other's items
      full = this.holdsAtLeast([kind, homeId], max);
      if (full) return false;
      let id = newId(kind === 'rule' ? 'r' : 's');
      // 72 random bits: a taken id never happens in practice, but must never be overwritten
      while (this.db.get([kind, homeId, id]) !== undefined) id = newId(kind === 'rule' ? 'r' : 's');
      item = created<T>(fresh(spec) as T, id, homeId, this.now());
      this.putItem(kind, item);
      return true;
    });
    if (full) throw homeFull(kind, homeId, max);
    return item;
  }

  private async update<T extends Rule | Scene>(kind: Kind, homeId: string, id: string, spec: RuleSpec | SceneSpec): Promise<T | null> {
    let item: T | null = null;
    await this.write(homeId, () => {
      const old = this.item<T>(kind, homeId, id);
      if (!old) return false;
      item = updated<T>(old, fresh(spec) as T, this.now());
      this.putItem(kind, item);
      return true;
    });
    return item;
  }

  private async setEnabled<T extends Rule | Scene>(kind: Kind, homeId: string, id: string, enabled: boolean): Promise<T | null> {
    let item: T | null = null;
    await this.write(homeId, () => {
      const old = this.item<T>(kind, homeId, id);
      if (!old) return false;
      item = toggled(old, enabled, this.now());
      if (item === old) return false;
      this.putItem(kind, item);
      return true;
    });
    return item;
  }

  private async remove(kind: Kind, homeId: string, id: string): Promise<boolean> {
    // opened outside the transaction
    const stats = kind === 'rule' ? this.stats : null;
    return this.write(homeId, () => {
      if (this.db.get([kind, homeId, id]) === undefined) return false;
      void this.db.remove([kind, homeId, id]);
      if (kind === 'rule') {
        void this.db.remove(['cron', homeId, id]);
        void this.db.put(['cursor', id], { deletedAt: this.now() });
        void stats?.remove([homeId, id]);
        this.sweepSome(SWEEP_PER_DELETE);
      }
      return true;
    });
  }

  /** Writes the item and keeps the cron index in step (inside a write transaction). */
  private putItem(kind: Kind, item: Rule | Scene): void {
    void this.db.put([kind, item.homeId, item.id], JSON.stringify(item));
    if (kind !== 'rule') return;
    if ((item as Rule).triggers.some((t) => t.type === 'cron')) void this.db.put(['cron', item.homeId, item.id], 1);
    else void this.db.remove(['cron', item.homeId, item.id]);
  }

  /**
   * Runs `change` in a write transaction; when it answers true, bumps the home version in the
   * same transaction and tells the listeners after the commit. Resolves with `change`'s answer.
   */
  private async write(homeId: string, change: (home: HomeRecord) => boolean): Promise<boolean> {
    if (this.closed) throw closedError();
    const version = await this.data.written(
      this.data.root.transaction(() => {
        const home: HomeRecord = { ...(this.home(homeId) ?? { v: 0 }) };
        if (!change(home)) return 0;
        home.v = Math.max(home.v + 1, Math.round(this.now()));
        void this.db.put(['home', homeId], home);
        return home.v;
      }),
    );
    if (version === 0) return false;
    const note = { homeId, version };
    for (const l of [...this.listeners]) {
      try {
        l(note);
      } catch {
        // a listener's failure is its own
      }
    }
    return true;
  }

  /** True when at least `n` entries' keys start with `prefix` (reads no more than `n` of them). */
  private holdsAtLeast(prefix: Key, n: number): boolean {
    let seen = 0;
    for (const _ of this.range(prefix)) if (++seen >= n) return true;
    return n <= 0;
  }

  /** The entries whose key starts with `prefix` (a tuple sorts right after its prefix). */
  private *range(prefix: Key): Generator<{ key: Key; value: unknown }> {
    for (const entry of this.db.getRange({ start: prefix })) {
      if (!prefix.every((p, i) => entry.key[i] === p)) return;
      yield entry;
    }
  }

  private async sweepTombstones(): Promise<void> {
    const now = this.now();
    await this.data.root.transaction(() => {
      const expired = [...this.range(['cursor'])].filter(({ value }) => expiredTombstone(value, now));
      for (const { key } of expired) void this.db.remove(key);
    });
  }

  /** The next `count` cursors after the last looked at, expired tombstones removed (inside a write transaction); past the last, from the first again. */
  private sweepSome(count: number): void {
    const now = this.now();
    let seen = 0;
    for (const { key, value } of this.db.getRange({ start: this.sweepFrom })) {
      if (key[0] !== 'cursor') break;
      if (seen++ === count) {
        this.sweepFrom = key;
        return;
      }
      if (expiredTombstone(value, now)) void this.db.remove(key);
    }
    this.sweepFrom = ['cursor'];
  }
}

function expiredTombstone(value: unknown, now: number): boolean {
  return typeof value === 'object' && value !== null && now - (value as { deletedAt: number }).deletedAt >= TOMBSTONE_MS;
}

/** A spec as stored data: a deep copy the caller's later changes cannot reach. */
function fresh(spec: RuleSpec | SceneSpec): RuleSpec | SceneSpec {
  return JSON.parse(JSON.stringify(spec)) as RuleSpec | SceneSpec;
}

function closedError(): TierError {
  return new TierError('draining', 'rule store is closed');
}
