import type { HomeSettings } from './model.js';
import type { RuleStore } from '../ports/rule-store/rule-store.js';

/**
 * Stores a home's settings. A new time zone moves every cron rule of the home, as an edit would:
 * their cursors move to the change first, so a scheduler that reloads for it (or starts later)
 * neither fires nor reports skipped an instant of the new zone before the change. Without it, an
 * alarm fired at 07:00 UTC went off again at 07:00 New York, or a passed one counted as an error
 * (review "tz"). The new zone's next instant after the change fires, on the same day too.
 */
export async function putHomeSettings(store: RuleStore, homeId: string, settings: HomeSettings, now: () => number = Date.now): Promise<HomeSettings> {
  if ((await store.getSettings(homeId)).timeZone !== settings.timeZone) {
    // the clock the schedulers go by: Redis's in cluster mode, else this node's
    const at = (await store.sharedTime()) ?? now();
    for (const rule of await store.listRules(homeId)) {
      if (rule.triggers.some((t) => t.type === 'cron')) await store.advanceCursor(homeId, rule.id, at);
    }
  }
  return store.putSettings(homeId, settings);
}
