import type { Config } from '../config/config.js';
import type { AuditRetention } from '../ports/audit/audit.js';
import type { HistoryRetention } from '../ports/history/history.js';
import type { HomeItemLimits } from '../ports/rule-store/rule-store.js';

/** The history's retention from the configuration (TIER_HISTORY_SIZE, TIER_HISTORY_MAX_AGE_S). */
export function historyRetention(config: Config): HistoryRetention {
  return { maxEvents: config.historySize, maxAgeMs: config.historyMaxAgeS * 1000 };
}

/** The audit trail's retention from the configuration (TIER_AUDIT_MAX_AGE_DAYS, TIER_AUDIT_MAX_ENTRIES). */
export function auditRetention(config: Config): AuditRetention {
  return { maxAgeMs: config.auditMaxAgeDays * 86_400_000, maxEntries: config.auditMaxEntries };
}

/** The rules and scenes a home may hold (TIER_MAX_RULES_PER_HOME, TIER_MAX_SCENES_PER_HOME). */
export function homeLimits(config: Config): HomeItemLimits {
  return { rules: config.homeMaxRules, scenes: config.homeMaxScenes };
}
