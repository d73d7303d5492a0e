import { DEFAULT_SETTINGS, type HomeSettings, type Rule, type RuleSpec, type Scene, type SceneSpec } from '../../rules/model.js';
import { DEFAULT_HOME_LIMITS, created, homeFull, newId, noRunStats, scheduledOf, toggled, updated, withDelta, type HomeItemLimits, type RuleRunDelta, type RuleRunStats, type RuleStore, type RuleStoreChange, type ScheduledRule } from './rule-store.js';

interface Home {
  version: number;
  rules: Map<string, Rule>;
  scenes: Map<string, Scene>;
  settings: HomeSettings;
}

/**
 * Rules and scenes held in this process (embedded default and tests). Everything is lost when the
 * process ends. Watch listeners are called synchronously after each change; a listener that
 * throws is skipped, never failing the change.
 */
export class MemoryRuleStore implements RuleStore {
  private readonly homes = new Map<string, Home>();
  private readonly cursors = new Map<string, number>();
  private readonly runStats = new Map<string, RuleRunStats>();
  private readonly listeners = new Set<(change: RuleStoreChange) => void>();
  private readonly now: () => number;

  private readonly limits: HomeItemLimits;

  constructor(options: { now?: () => number; limits?: HomeItemLimits } = {}) {
    this.now = options.now ?? Date.now;
    this.limits = options.limits ?? DEFAULT_HOME_LIMITS;
  }

  async homeVersion(homeId: string): Promise<number> {
    return this.homes.get(homeId)?.version ?? 0;
  }

  async listRules(homeId: string): Promise<Rule[]> {
    return [...(this.homes.get(homeId)?.rules.values() ?? [])].map(copy);
  }

  async getRule(homeId: string, ruleId: string): Promise<Rule | null> {
    const r = this.homes.get(homeId)?.rules.get(ruleId);
    return r ? copy(r) : null;
  }

  async createRule(homeId: string, spec: RuleSpec): Promise<Rule> {
    const home = this.home(homeId);
    if (home.rules.size >= this.limits.rules) throw homeFull('rule', homeId, this.limits.rules);
    const rule = created<Rule>(copy(spec), newId('r'), homeId, this.now());
    home.rules.set(rule.id, rule);
    this.changed(homeId, home);
    return copy(rule);
  }

  async updateRule(homeId: string, ruleId: string, spec: RuleSpec): Promise<Rule | null> {
    const home = this.homes.get(homeId);
    const old = home?.rules.get(ruleId);
    if (!home || !old) return null;
    const rule = updated(old, copy(spec), this.now());
    home.rules.set(ruleId, rule);
    this.changed(homeId, home);
    return copy(rule);
  }

  async setRuleEnabled(homeId: string, ruleId: string, enabled: boolean): Promise<Rule | null> {
    const home = this.homes.get(homeId);
    const old = home?.rules.get(ruleId);
    if (!home || !old) return null;
    const rule = toggled(old, enabled, this.now());
    if (rule === old) return copy(old);
    home.rules.set(ruleId, rule);
    this.changed(homeId, home);
    return copy(rule);
  }

  async deleteRule(homeId: string, ruleId: string): Promise<boolean> {
    const home = this.homes.get(homeId);
    if (!home?.rules.delete(ruleId)) return false;
    this.cursors.delete(ruleId);
    this.runStats.delete(ruleId);
    this.changed(homeId, home);
    return true;
  }

  async listScenes(homeId: string): Promise<Scene[]> {
    return [...(this.homes.get(homeId)?.scenes.values() ?? [])].map(copy);
  }

  async getScene(homeId: string, sceneId: string): Promise<Scene | null> {
    const s = this.homes.get(homeId)?.scenes.get(sceneId);
    return s ? copy(s) : null;
  }

  async createScene(homeId: string, spec: SceneSpec): Promise<Scene> {
    const home = this.home(homeId);
    if (home.scenes.size >= this.limits.scenes) throw homeFull('scene', homeId, this.limits.scenes);
    const scene = created<Scene>(copy(spec), newId('s'), homeId, this.now());
    home.scenes.set(scene.id, scene);
    this.changed(homeId, home);
    return copy(scene);
  }

  async updateScene(homeId: string, sceneId: string, spec: SceneSpec): Promise<Scene | null> {
    const home = this.homes.get(homeId);
    const old = home?.scenes.get(sceneId);
    if (!home || !old) return null;
    const scene = updated(old, copy(spec), this.now());
    home.scenes.set(sceneId, scene);
    this.changed(homeId, home);
    return copy(scene);
  }

  async setSceneEnabled(homeId: string, sceneId: string, enabled: boolean): Promise<Scene | null> {
    const home = this.homes.get(homeId);
    const old = home?.scenes.get(sceneId);
    if (!home || !old) return null;
    const scene = toggled(old, enabled, this.now());
    if (scene === old) return copy(old);
    home.scenes.set(sceneId, scene);
    this.changed(homeId, home);
    return copy(scene);
  }

  async deleteScene(homeId: string, sceneId: string): Promise<boolean> {
    const home = this.homes.get(homeId);
    if (!home?.scenes.delete(sceneId)) return false;
    this.changed(homeId, home);
    return true;
  }

  async getSettings(homeId: string): Promise<HomeSettings> {
    return { ...(this.homes.get(homeId)?.settings ?? DEFAULT_SETTINGS) };
  }

  async putSettings(homeId: string, settings: HomeSettings): Promise<HomeSettings> {
    const home = this.home(homeId);
    home.settings = { ...settings };
    this.changed(homeId, home);
    return { ...home.settings };
  }

  async listScheduled(): Promise<ScheduledRule[]> {
    const out: ScheduledRule[] = [];
    for (const home of this.homes.values()) {
      for (const rule of home.rules.values()) {
        const s = scheduledOf(rule, home.settings.timeZone);
        if (s) out.push(s);
      }
    }
    return out;
  }

  /** one node, one clock: the scheduler goes by the node's own */
  async sharedTime(): Promise<null> {
    return null;
  }

  async getCursor(ruleId: string): Promise<number | null> {
    return this.cursors.get(ruleId) ?? null;
  }

  async advanceCursor(_homeId: string, ruleId: string, at: number): Promise<boolean> {
    const cur = this.cursors.get(ruleId);
    if (cur !== undefined && cur >= at) return false;
    this.cursors.set(ruleId, at);
    return true;
  }

  async addRunStats(deltas: readonly RuleRunDelta[]): Promise<void> {
    for (const d of deltas) {
      if (!this.homes.get(d.homeId)?.rules.has(d.ruleId)) continue;
      this.runStats.set(d.ruleId, withDelta(this.runStats.get(d.ruleId) ?? noRunStats(), d));
    }
  }

  async getRunStats(homeId: string, ruleIds: readonly string[]): Promise<Map<string, RuleRunStats>> {
    const rules = this.homes.get(homeId)?.rules;
    return new Map(ruleIds.map((id) => [id, { ...((rules?.has(id) && this.runStats.get(id)) || noRunStats()) }]));
  }

  watch(listener: (change: RuleStoreChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }

  private home(homeId: string): Home {
    let home = this.homes.get(homeId);
    if (!home) {
      home = { version: 0, rules: new Map(), scenes: new Map(), settings: { ...DEFAULT_SETTINGS } };
      this.homes.set(homeId, home);
    }
    return home;
  }

  private changed(homeId: string, home: Home): void {
    home.version++;
    const change = { homeId, version: home.version };
    for (const l of [...this.listeners]) {
      try {
        l(change);
      } catch {
        // a listener's failure is its own
      }
    }
  }
}

function copy<T>(v: T): T {
  return structuredClone(v);
}
