/**
 * Over 400 lines: one adapter of the whole RuleStore port (rules, scenes, settings, cron cursors,
 * run statistics, import); its Lua scripts and statistics already live in their own modules.
 */
import type { Redis } from 'ioredis';
import { closeRedis, connectRedis, RedisKeys, type RedisTlsFiles } from '../redis.js';
import { ADVANCE, body, CREATE, CREATE_FULL, DELETE, PUT_SETTINGS, SCHEDULED, SET_ENABLED, stamp, UPDATE } from './rule-store-redis-scripts.js';
import { TierError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import { DEFAULT_SETTINGS, type HomeSettings, type Rule, type RuleSpec, type Scene, type SceneSpec } from '../../rules/model.js';
import { addRunStats, getRunStats, STATS_FIELDS } from './rule-store-redis-stats.js';
import { CLOCK_SLACK_MS, DEFAULT_HOME_LIMITS, homeFull, newId, scheduledOf, type HomeItemLimits, type RuleRunDelta, type RuleRunStats, type RuleStore, type RuleStoreChange, type ScheduledRule } from './rule-store.js';

export interface RedisRuleStoreOptions {
  log: Logger;
  /** key names and their prefix */
  keys?: RedisKeys;
  /**
   * the clock of `createdAt`/`updatedAt` (ms); @default Redis's clock (TIME, read in the write's
   * script): one clock for every node, so a node whose clock is off cannot date a rule before its
   * creation (the scheduler never fires a rule for instants before `updatedAt`)
   */
  now?: () => number;
  /** @default 2_000 (ms): how long a write waits for this store's first SUBSCRIBE before it goes ahead */
  subscribeWaitMs?: number;
  /** @default DEFAULT_HOME_LIMITS */
  limits?: HomeItemLimits;
}

/** how long a deleted rule's cursor refuses a late `advanceCursor` (a scheduler tick racing the delete) */
const TOMBSTONE_MS = 86_400_000;
/** homes whose cron rules are read at once by `listScheduled` */
const SCHEDULED_BATCH = 200;
/** attempts at a fresh id when a generated one exists (72 random bits: never in practice) */
const ID_ATTEMPTS = 3;

type Kind = 'rules' | 'scenes';
type Stored = Rule | Scene;

/**
 * Rules, scenes and settings in Redis, shared by every node. Keys of one home share the hash tag
 * `{home:<homeId>}` (one Redis Cluster slot), so every write is one Lua script over them:
 *
 * - `{home:H}:home` hash: `v` (the home version), `settings` (JSON);
 * - `{home:H}:rules`, `{home:H}:scenes` hashes: id → the stored item (JSON with a fixed header,
 *   see HEADER in rule-store-redis-scripts.ts); `{home:H}:cron`: ids of the home's rules that have a cron trigger.
 *
 * The write, the version bump and the change notice (PUBLISH on `<prefix>rules:changes`) are one
 * atomic script: a committed change is always announced. Versions are max(previous + 1, Redis
 * clock in ms): large (~1.7e12), strictly growing, also after Redis lost its data.
 *
 * - `{home:H}:rule-stats` hash: `<ruleId>:<counter>` → count (HINCRBY in one script per home and
 *   batch, after checking the rule still exists), `<ruleId>:lastRunAt` etc. (kept when later).
 *
 * Two things live outside the home's slot, so no script touches them together with it:
 * - `<prefix>rules:cron-homes`, the set of homes that have cron rules, read by `listScheduled`.
 *   It is updated with separate commands around the script (added before and after a write that
 *   leaves a cron rule; removed after one that leaves none, then re-checked), so a home with cron
 *   rules is never missing from it, though it may list a home that has none left (harmless).
 *   `listScheduled` is a cross-slot read without atomicity: each home is read consistently, but
 *   homes are read one batch after another, and a change during the call may or may not show.
 * - `<prefix>rules:cursor:<ruleId>`: the cron cursor (`getCursor` has no home). `advanceCursor`
 *   is a compare-and-set script on it that also refuses instants past Redis's clock + CLOCK_SLACK_MS. Deleting a rule replaces the cursor by a tombstone for a
 *   day, so a scheduler tick racing the delete cannot bring it back (`advanceCursor` answers false
 *   for a deleted rule; the memory store would accept it).
 *
 * `watch`: one subscriber connection per store, opened at the first `watch`, delivers every
 * change made through any node (this one included, through Redis: once each). A listener that
 * throws is skipped. The gap: notices published while the subscriber is disconnected are lost,
 * and `RuleStoreChange` has no "resync" form to tell listeners so. It resubscribes when the
 * connection is back (logged, counted in `resubscribes`); readers catch up by their periodic
 * checks (the engine re-reads `homeVersion` after its cache ttl, 10 s; the scheduler reloads every
 * 30 s). A write through this store waits (at most `subscribeWaitMs`) for its first SUBSCRIBE, so
 * a listener registered before a local change hears of it.
 *
 * Errors: a Redis error rejects the call ('fail' connection profile); nothing is retried here.
 */
export class RedisRuleStore implements RuleStore {
  private readonly keys: RedisKeys;
  private readonly log: Logger;
  /** null: Redis's clock */
  private readonly now: (() => number) | null;
  private readonly subscribeWaitMs: number;
  private readonly limits: Record<Kind, number>;
  private readonly channel: string;
  private readonly cronHomes: string;
  private readonly listeners = new Set<(change: RuleStoreChange) => void>();
  private subscriber: Redis | null = null;
  /** resolves once the first SUBSCRIBE succeeded (or gave up waiting) */
  private subscribed: Promise<void> = Promise.resolve();
  private closed = false;
  /** times the subscriber came back after losing its connection (notices may have been missed) */
  resubscribes = 0;

  /** Takes ownership of `client`: `close()` quits it (and the subscriber). */
  constructor(
    private readonly client: Redis,
    options: RedisRuleStoreOptions,
  ) {
    this.keys = options.keys ?? new RedisKeys();
    this.log = options.log;
    this.now = options.now ?? null;
    this.subscribeWaitMs = options.subscribeWaitMs ?? 2_000;
    const limits = options.limits ?? DEFAULT_HOME_LIMITS;
    this.limits = { rules: limits.rules, scenes: limits.scenes };
    this.channel = this.keys.single('rules:changes');
    this.cronHomes = this.keys.single('rules:cron-homes');
  }

  static async connect(url: string, options: RedisRuleStoreOptions & { name: string; tls?: RedisTlsFiles }): Promise<RedisRuleStore> {
    return new RedisRuleStore(await connectRedis(url, { name: options.name, log: options.log, tls: options.tls }), options);
  }

  /** true while changes from other nodes arrive (no `watch` yet: nothing to hear, also true) */
  get watching(): boolean {
    return this.subscriber === null || this.subscriber.status === 'ready';
  }

  async homeVersion(homeId: string): Promise<number> {
    return Number((await this.client.hget(this.key(homeId, 'home'), 'v')) ?? 0);
  }

  listRules(homeId: string): Promise<Rule[]> {
    return this.list<Rule>(homeId, 'rules');
  }

  getRule(homeId: string, ruleId: string): Promise<Rule | null> {
    return this.get<Rule>(homeId, 'rules', ruleId);
  }

  async createRule(homeId: string, spec: RuleSpec): Promise<Rule> {
    const cron = hasCron(spec);
    // into the index before the rule exists: a crash after the script cannot leave it unlisted
    if (cron) await this.client.sadd(this.cronHomes, homeId);
    let rule: Rule;
    try {
      rule = await this.create<Rule>(homeId, 'rules', 'r', spec, cron ? '1' : '0');
    } catch (err) {
      if (cron) await this.unindex(homeId); // undo the SADD above (nothing written: the home is full)
      throw err;
    }
    if (cron) await this.client.sadd(this.cronHomes, homeId);
    return rule;
  }

  async updateRule(homeId: string, ruleId: string, spec: RuleSpec): Promise<Rule | null> {
    const cron = hasCron(spec);
    if (cron) await this.client.sadd(this.cronHomes, homeId);
    const got = await this.update<Rule>(homeId, 'rules', ruleId, spec, cron ? '1' : '0');
    if (!got) {
      if (cron) await this.unindex(homeId); // undo the SADD above (no such rule)
      return null;
    }
    if (cron) await this.client.sadd(this.cronHomes, homeId);
    else if (got.cronLeft === 0) await this.unindex(homeId);
    return got.item;
  }

  setRuleEnabled(homeId: string, ruleId: string, enabled: boolean): Promise<Rule | null> {
    return this.setEnabled<Rule>(homeId, 'rules', ruleId, enabled);
  }

  async deleteRule(homeId: string, ruleId: string): Promise<boolean> {
    const got = await this.remove(homeId, 'rules', ruleId);
    if (!got) return false;
    try {
      await this.client.set(this.cursorKey(ruleId), 'deleted', 'PX', TOMBSTONE_MS);
    } catch (err) {
      // the rule is gone; its cursor stays behind (a few bytes, never read again)
      this.log.warn({ err, homeId, ruleId }, 'rule deleted but its cron cursor was not');
    }
    try {
      // after the script: an add racing the delete found no rule and added nothing
      await this.client.hdel(this.key(homeId, 'rule-stats'), ...STATS_FIELDS.map((f) => `${ruleId}:${f}`));
    } catch (err) {
      this.log.warn({ err, homeId, ruleId }, 'rule deleted but its run statistics were not');
    }
    if (got.wasCron && got.cronLeft === 0) await this.unindex(homeId);
    return true;
  }

  /**
   * For `npm run data -- import --redis` only (not on the RuleStore port): writes a rule or scene
   * read from a backup as it was, keeping its id, version, createdAt, updatedAt and enabled (cron
   * cursors and pending runs refer to the id). Resolves false, writing nothing, if the id exists.
   */
  async importItem(kind: 'rule' | 'scene', item: Rule | Scene): Promise<boolean> {
    const cron = kind === 'rule' && hasCron(item as Rule);
    if (cron) await this.client.sadd(this.cronHomes, item.homeId);
    await this.beforeWrite();
    const json = stamp(item.version, String(item.createdAt), String(item.updatedAt), item.enabled) + body(item.id, item.homeId, item);
    const keys = this.itemKeys(item.homeId, kind === 'rule' ? 'rules' : 'scenes');
    // a backup's items as they were: no per-home limit (an operator's restore)
    const got = await CREATE.run(this.client, keys, [this.channel, item.homeId, item.id, json, kind === 'rule' ? (cron ? '1' : '0') : '', '', 'kept']);
    if (got === null) {
      if (cron) await this.unindex(item.homeId); // undo the SADD above (nothing written)
      return false;
    }
    if (cron) await this.client.sadd(this.cronHomes, item.homeId);
    return true;
  }

  listScenes(homeId: string): Promise<Scene[]> {
    return this.list<Scene>(homeId, 'scenes');
  }

  getScene(homeId: string, sceneId: string): Promise<Scene | null> {
    return this.get<Scene>(homeId, 'scenes', sceneId);
  }

  createScene(homeId: string, spec: SceneSpec): Promise<Scene> {
    return this.create<Scene>(homeId, 'scenes', 's', spec, '');
  }

  async updateScene(homeId: string, sceneId: string, spec: SceneSpec): Promise<Scene | null> {
    return (await this.update<Scene>(homeId, 'scenes', sceneId, spec, ''))?.item ?? null;
  }

  setSceneEnabled(homeId: string, sceneId: string, enabled: boolean): Promise<Scene | null> {
    return this.setEnabled<Scene>(homeId, 'scenes', sceneId, enabled);
  }

  async deleteScene(homeId: string, sceneId: string): Promise<boolean> {
    return (await this.remove(homeId, 'scenes', sceneId)) !== null;
  }

  async getSettings(homeId: string): Promise<HomeSettings> {
    const raw = await this.client.hget(this.key(homeId, 'home'), 'settings');
    return raw ? (JSON.parse(raw) as HomeSettings) : { ...DEFAULT_SETTINGS };
  }

  async putSettings(homeId: string, settings: HomeSettings): Promise<HomeSettings> {
    await this.beforeWrite();
    const json = JSON.stringify(settings);
    await PUT_SETTINGS.run(this.client, [this.key(homeId, 'home')], [this.channel, homeId, json]);
    return JSON.parse(json) as HomeSettings;
  }

  async listScheduled(): Promise<ScheduledRule[]> {
    const homes = new Set<string>();
    let cursor = '0';
    do {
      const [next, batch] = await this.client.sscan(this.cronHomes, cursor, 'COUNT', 1_000);
      cursor = next;
      for (const h of batch) homes.add(h);
    } while (cursor !== '0');
    const out: ScheduledRule[] = [];
    const all = [...homes];
    for (let i = 0; i < all.length; i += SCHEDULED_BATCH) {
      // one script per home, sent back to back on the connection
      const views = await Promise.all(
        all.slice(i, i + SCHEDULED_BATCH).map(async (homeId) => (await SCHEDULED.run(this.client, [this.key(homeId, 'home'), this.key(homeId, 'rules'), this.key(homeId, 'cron')], [])) as string[]),
      );
      for (const got of views) {
        const [settings, ...rules] = got;
        const timeZone = settings ? (JSON.parse(settings) as HomeSettings).timeZone : DEFAULT_SETTINGS.timeZone;
        for (const raw of rules) {
          const s = scheduledOf(JSON.parse(raw) as Rule, timeZone);
          if (s) out.push(s);
        }
      }
    }
    return out;
  }

  addRunStats(deltas: readonly RuleRunDelta[]): Promise<void> {
    return addRunStats(this.client, (homeId) => this.statsKeys(homeId), deltas);
  }

  getRunStats(homeId: string, ruleIds: readonly string[]): Promise<Map<string, RuleRunStats>> {
    return getRunStats(this.client, this.key(homeId, 'rule-stats'), ruleIds);
  }

  async getCursor(ruleId: string): Promise<number | null> {
    const raw = await this.client.get(this.cursorKey(ruleId));
    return raw === null || raw === 'deleted' ? null : Number(raw);
  }

  async advanceCursor(_homeId: string, ruleId: string, at: number): Promise<boolean> {
    if (!Number.isSafeInteger(at)) throw new RangeError(`cursor instant must be an integer of ms, got ${at}`);
    return (await ADVANCE.run(this.client, [this.cursorKey(ruleId)], [at, CLOCK_SLACK_MS])) === 1;
  }

  async sharedTime(): Promise<number> {
    const [s, us] = await this.client.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  }

  watch(listener: (change: RuleStoreChange) => void): () => void {
    this.listeners.add(listener);
    this.subscribe();
    return () => {
      this.listeners.delete(listener);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    const sub = this.subscriber;
    this.subscriber = null;
    // at once: each waits at most QUIT_WITHIN_MS on a hung Redis (closeRedis)
    await Promise.all([sub ? closeRedis(sub) : undefined, closeRedis(this.client)]);
  }

  // ---- items ------------------------------------------------------------------------------------

  private async list<T extends Stored>(homeId: string, kind: Kind): Promise<T[]> {
    const all = (await this.client.hvals(this.key(homeId, kind))).map((raw) => JSON.parse(raw) as T);
    // hashes have no order: oldest first, as created
    return all.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  private async get<T extends Stored>(homeId: string, kind: Kind, id: string): Promise<T | null> {
    const raw = await this.client.hget(this.key(homeId, kind), id);
    return raw === null ? null : (JSON.parse(raw) as T);
  }

  private async create<T extends Stored>(homeId: string, kind: Kind, prefix: 'r' | 's', spec: RuleSpec | SceneSpec, cron: '1' | '0' | ''): Promise<T> {
    await this.beforeWrite();
    const now = this.stampNow();
    for (let attempt = 1; ; attempt++) {
      const id = newId(prefix);
      // with Redis's clock the script writes the stamps over these zeros
      const json = stamp(1, now || '0', now || '0', spec.enabled === true) + body(id, homeId, spec);
      const got = (await CREATE.run(this.client, this.itemKeys(homeId, kind), [this.channel, homeId, id, json, cron, String(this.limits[kind]), now])) as [string, number, string] | typeof CREATE_FULL | null;
      if (got === CREATE_FULL) throw homeFull(prefix === 'r' ? 'rule' : 'scene', homeId, this.limits[kind]);
      if (got !== null) return JSON.parse(got[2]) as T;
      if (attempt >= ID_ATTEMPTS) throw new TierError('internal', `could not draw a free ${kind} id`);
    }
  }

  private async update<T extends Stored>(homeId: string, kind: Kind, id: string, spec: RuleSpec | SceneSpec, cron: '1' | '0' | ''): Promise<{ item: T; cronLeft: number } | null> {
    await this.beforeWrite();
    const now = this.stampNow();
    const enabled = spec.enabled === true ? 'true' : 'false';
    const got = (await UPDATE.run(this.client, this.itemKeys(homeId, kind), [this.channel, homeId, id, now, enabled, body(id, homeId, spec), cron])) as [string, string, number] | null;
    if (!got) return null;
    return { item: JSON.parse(got[0]) as T, cronLeft: got[2] };
  }

  private async setEnabled<T extends Stored>(homeId: string, kind: Kind, id: string, enabled: boolean): Promise<T | null> {
    await this.beforeWrite();
    const now = this.stampNow();
    const got = (await SET_ENABLED.run(this.client, [this.key(homeId, 'home'), this.key(homeId, kind)], [this.channel, homeId, id, now, enabled ? 'true' : 'false'])) as [string, string?] | null;
    return got ? (JSON.parse(got[0]) as T) : null;
  }

  /** `createdAt`/`updatedAt` of a write: '' lets the script take Redis's clock */
  private stampNow(): string {
    return this.now ? String(Math.round(this.now())) : '';
  }

  private async remove(homeId: string, kind: Kind, id: string): Promise<{ wasCron: boolean; cronLeft: number } | null> {
    await this.beforeWrite();
    const got = (await DELETE.run(this.client, this.itemKeys(homeId, kind), [this.channel, homeId, id])) as [string, number, number] | null;
    return got ? { wasCron: got[1] === 1, cronLeft: got[2] } : null;
  }

  /**
   * Takes a home that has no cron rule left out of the index, then looks again: a cron rule
   * written meanwhile by another node (whose own SADD may have come before this SREM) puts it back.
   */
  private async unindex(homeId: string): Promise<void> {
    await this.client.srem(this.cronHomes, homeId);
    if ((await this.client.scard(this.key(homeId, 'cron'))) > 0) await this.client.sadd(this.cronHomes, homeId);
  }

  // ---- watch ------------------------------------------------------------------------------------

  /** Opens the subscriber connection (once); it resubscribes whenever its connection is back. */
  private subscribe(): void {
    if (this.subscriber || this.closed) return;
    const sub = this.client.duplicate({ connectionName: `${this.client.options.connectionName ?? 'rules'}:watch`, lazyConnect: true, autoResubscribe: false });
    this.subscriber = sub;
    let first: (() => void) | null = null;
    let giveUp: NodeJS.Timeout | undefined;
    this.subscribed = new Promise<void>((resolve) => {
      first = resolve;
      giveUp = setTimeout(resolve, this.subscribeWaitMs);
      giveUp.unref();
    });
    let everSubscribed = false;
    let down = false;
    sub.on('message', (_channel: string, message: string) => this.deliver(message));
    sub.on('error', (err: Error) => {
      if (!down && !this.closed) this.log.warn({ err: err.message }, 'rule change subscriber: connection failed; reconnecting');
      down = true;
    });
    sub.on('close', () => {
      if (!down && !this.closed) this.log.warn('rule change subscriber: connection lost; changes from other nodes are not heard until it is back');
      down = true;
    });
    sub.on('ready', () => {
      sub.subscribe(this.channel).then(
        () => {
          down = false;
          if (everSubscribed) {
            this.resubscribes++;
            this.log.info('rule change subscriber back: changes made meanwhile were not announced here; caches catch up at their next check');
          }
          everSubscribed = true;
          clearTimeout(giveUp);
          first?.();
          first = null;
        },
        (err: unknown) => {
          // the connection went away again; the next 'ready' tries again
          if (!this.closed) this.log.warn({ err }, 'rule change subscriber: SUBSCRIBE failed');
        },
      );
    });
    sub.connect().catch(() => {
      // reported by 'error'; the retry strategy keeps reconnecting
    });
  }

  private deliver(message: string): void {
    const colon = message.indexOf(':');
    const version = Number(message.slice(0, colon));
    const homeId = message.slice(colon + 1);
    if (colon < 1 || !Number.isFinite(version)) return;
    const change: RuleStoreChange = { homeId, version };
    for (const l of [...this.listeners]) {
      try {
        l(change);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  private beforeWrite(): Promise<void> {
    if (this.closed) return Promise.reject(new TierError('draining', 'rule store is closed'));
    return this.subscribed;
  }

  // ---- keys -------------------------------------------------------------------------------------

  private key(homeId: string, what: 'home' | Kind | 'cron' | 'rule-stats'): string {
    return this.keys.home(homeId, what);
  }

  private itemKeys(homeId: string, kind: Kind): string[] {
    return [this.key(homeId, 'home'), this.key(homeId, kind), this.key(homeId, 'cron')];
  }

  private statsKeys(homeId: string): string[] {
    return [this.key(homeId, 'rules'), this.key(homeId, 'rule-stats')];
  }

  private cursorKey(ruleId: string): string {
    return this.keys.single(`rules:cursor:${ruleId}`);
  }
}

function hasCron(spec: RuleSpec): boolean {
  return spec.triggers.some((t) => t.type === 'cron');
}
