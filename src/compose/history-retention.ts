import type { Config } from '../config/config.js';
import type { HistoryRetention } from '../ports/history/history.js';

/** The history's retention from the configuration (TIER_HISTORY_SIZE, TIER_HISTORY_MAX_AGE_S). */
export function historyRetention(config: Config): HistoryRetention {
  return { maxEvents: config.historySize, maxAgeMs: config.historyMaxAgeS * 1000 };
}
