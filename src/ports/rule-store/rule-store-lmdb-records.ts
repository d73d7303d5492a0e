/**
 * The LMDB rule store's records as a backup holds them (sub-database `rules`, see
 * rule-store-lmdb.ts): decoded for the backup check and the Redis import.
 */
import type { HomeSettings, Rule, Scene } from '../../rules/model.js';

/** the home record: its version, its settings as JSON */
export interface HomeRecord {
  v: number;
  settings?: string;
}

/** One record of sub-database `rules` as a backup holds it, decoded (see `decodeRuleRecord`). */
export type RuleRecord =
  | { type: 'home'; homeId: string; settings: HomeSettings | null }
  | { type: 'rule'; item: Rule }
  | { type: 'scene'; item: Scene }
  | { type: 'cron'; homeId: string; ruleId: string }
  | { type: 'cursor'; ruleId: string; at: number | null };

/**
 * Decodes one record of sub-database `rules` (a key and value as this adapter stores them, e.g.
 * read from a backup). A cursor's `at` is null for a deleted rule's tombstone. Throws a TypeError
 * on anything else.
 */
export function decodeRuleRecord(key: unknown, value: unknown): RuleRecord {
  const k = Array.isArray(key) ? (key as unknown[]) : [];
  if (k[0] === 'home' && k.length === 2 && typeof k[1] === 'string') {
    const raw = (value as HomeRecord).settings;
    return { type: 'home', homeId: k[1], settings: raw ? (JSON.parse(raw) as HomeSettings) : null };
  }
  if ((k[0] === 'rule' || k[0] === 'scene') && k.length === 3 && typeof value === 'string') {
    return k[0] === 'rule' ? { type: 'rule', item: JSON.parse(value) as Rule } : { type: 'scene', item: JSON.parse(value) as Scene };
  }
  if (k[0] === 'cron' && k.length === 3) return { type: 'cron', homeId: String(k[1]), ruleId: String(k[2]) };
  if (k[0] === 'cursor' && k.length === 2 && typeof k[1] === 'string') return { type: 'cursor', ruleId: k[1], at: typeof value === 'number' ? value : null };
  throw new TypeError(`not a rule store record: ${JSON.stringify(key)}`);
}
