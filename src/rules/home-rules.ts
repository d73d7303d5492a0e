/**
 * A home's rules as its actor caches them: a snapshot of the store with its trigger index, re-checked
 * against the store's version after `cacheTtlMs`, reloaded at once when the store tells of a change.
 * A store that cannot be reached is an outage, not a reason to stop evaluating: the cached rules
 * stay in use, stale, for as long as it lasts (re-asked every STORE_RETRY_MS), one sampled line said.
 */
import { isUnreachable } from '../errors.js';
import type { HomeDeps } from './home-actor.js';
import type { Rule } from './model.js';
import { TriggerIndex } from './trigger-index.js';

export interface RulesSnapshot {
  version: number;
  checkedAt: number;
  stale: boolean;
  /** the store was unreachable at the last check: the snapshot is used as it is until then (ms) */
  heldUntil: number;
  timeZone: string;
  /** shared by every home without rules (NO_RULES): never changed in place */
  rules: ReadonlyMap<string, Rule>;
  index: TriggerIndex;
}

/**
 * What a home without rules holds, one pair for the node: most homes of a fleet have none, and an
 * empty Map's table is about 270 B (two a home, with the index's: BENCHMARKS.md, 2026-12-05 third).
 */
const NO_RULES: ReadonlyMap<string, Rule> = new Map();
const NO_TRIGGERS = new TriggerIndex([]);

/** Whether `rule` is in `snap` as it was: not deleted, disabled or edited since. */
function unchangedIn(snap: RulesSnapshot, rule: Rule): boolean {
  const now = snap.rules.get(rule.id);
  return now !== undefined && now.enabled && now.version === rule.version;
}

/** while the store is unreachable, a home with cached rules asks it again after this long (ms), not at every event */
const STORE_RETRY_MS = 1_000;

export class HomeRules {
  #snap: RulesSnapshot | null = null;
  /** the highest home version the store told of: a snapshot older than it is stale */
  #wanted = 0;

  constructor(
    private readonly homeId: string,
    private readonly deps: Pick<HomeDeps, 'store' | 'guard' | 'stats' | 'outage' | 'now' | 'cacheTtlMs'>,
  ) {}

  /** the snapshot in memory, fresh or not; null before the first load */
  get current(): RulesSnapshot | null {
    return this.#snap;
  }

  /** the snapshot when it may be used without asking the store; else null */
  get fresh(): RulesSnapshot | null {
    const snap = this.#snap;
    if (snap === null) return null;
    const now = this.deps.now();
    return now < snap.heldUntil || (!snap.stale && now - snap.checkedAt < this.deps.cacheTtlMs) ? snap : null;
  }

  /** Whether the store said the home has no rule at a check `idleMs` or more before `now` (reachable then, nothing told since). */
  noneSince(now: number, idleMs: number): boolean {
    const snap = this.#snap;
    return snap !== null && snap.rules.size === 0 && !snap.stale && snap.heldUntil === 0 && now - snap.checkedAt >= idleMs;
  }

  /**
   * The store may no longer hold what the snapshot does (it lost its data, its versions with it):
   * stale, and no version waited for. True when there is a snapshot to read again.
   */
  lost(): boolean {
    this.#wanted = 0;
    if (this.#snap === null) return false;
    this.#snap.stale = true;
    return true;
  }

  /** The store told of the home's `version`: true when the snapshot is older (now stale) and should be reloaded. */
  changed(version: number): boolean {
    this.#wanted = Math.max(this.#wanted, version);
    const snap = this.#snap;
    if (!snap || snap.version >= version) return false;
    snap.stale = true;
    return true;
  }

  /**
   * The home's rules, reloaded when changed (watch) or when the ttl passed and the version moved.
   * A store that cannot be reached leaves the cached ones in use; with none cached its error is thrown.
   */
  async load(): Promise<RulesSnapshot> {
    const snap = this.#snap;
    try {
      return await this.#read(snap);
    } catch (err) {
      if (!snap || !isUnreachable(err)) throw err;
      snap.heldUntil = this.deps.now() + Math.min(STORE_RETRY_MS, this.deps.cacheTtlMs);
      this.deps.outage.write('rules_cached', { err, homeId: this.homeId, version: snap.version }, 'rules: rule store unreachable; the home evaluates with its cached rules');
      return snap;
    }
  }

  async #read(snap: RulesSnapshot | null): Promise<RulesSnapshot> {
    const { store, now: clock } = this.deps;
    const now = clock();
    if (snap && !snap.stale) {
      if (now - snap.checkedAt < this.deps.cacheTtlMs) return snap;
      if ((await store.homeVersion(this.homeId)) === snap.version) {
        snap.checkedAt = now;
        snap.heldUntil = 0;
        return snap;
      }
    }
    const [version, rules, settings] = await Promise.all([store.homeVersion(this.homeId), store.listRules(this.homeId), store.getSettings(this.homeId)]);
    const next: RulesSnapshot = {
      version,
      checkedAt: now,
      // a change told while this load was reading leaves the new snapshot stale at once
      stale: version < this.#wanted,
      heldUntil: 0,
      timeZone: settings.timeZone,
      rules: rules.length === 0 ? NO_RULES : new Map(rules.map((r) => [r.id, r])),
      index: rules.length === 0 ? NO_TRIGGERS : new TriggerIndex(rules),
    };
    if (snap) this.#retire(snap, next);
    this.#snap = next;
    return next;
  }

  /** Rules deleted, disabled or edited since the old snapshot: cancel their waiting runs. */
  #retire(old: RulesSnapshot, next: RulesSnapshot): void {
    const { guard, stats } = this.deps;
    for (const [id, rule] of old.rules) {
      if (unchangedIn(next, rule)) continue;
      if (!next.rules.has(id)) {
        guard.forget(id);
        stats.delete(id);
        // edited: the waiting run's plan is the old version's, so it stops as a disabled rule's does
      } else guard.cancel(id);
    }
  }
}
