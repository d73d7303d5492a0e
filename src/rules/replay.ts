/**
 * Events a hub was told were stored, which the rules had not evaluated when the node died (kill -9,
 * a crash, the power): at start after an unclean stop, the events of each home's history past its
 * mark (EvaluatedMarks) go to the home's rules, in order, once, before any hub is back (the home's
 * newer events queue behind them). The home evaluates those its rules listen to as it would have
 * live, with the same dedup keys, and counts those stored longer ago than the catch-up window as
 * missed (home-actor.ts `#replay`). Events of other kinds move the mark and nothing else.
 */
import type { AppEventMessage, HubEvent } from '../../proto/app.js';
import type { Logger } from '../log/logger.js';
import type { UnevaluatedHome } from '../ports/history/history.js';
import { decodeValue } from '../protocol/codec.js';

/** An event stored but not evaluated when the node last died: its offset and when it was stored (ms). */
export interface ReplayedEvent {
  event: Extract<HubEvent, { kind: 'state' | 'event' }>;
  offset: number;
  at: number;
}

/** What the replay of a home did: events evaluated again, and events too old for it (missed). */
export interface ReplayResult {
  replayed: number;
  missed: number;
}

/** What a replay did (tests, the start-up log). */
export interface ReplayReport {
  /** homes with events past their mark */
  homes: number;
  /** events evaluated again */
  replayed: number;
  /** events older than the catch-up window that rules listened to: not evaluated */
  missed: number;
}

/** Sends each home its replay; `tell` answers the home's result once it has gone through them. */
export type ReplayTell = (homeId: string, events: ReplayedEvent[], through: number, taken?: string) => Promise<ReplayResult>;

/**
 * Tells every home its events at once (in this turn); resolves with the report once every home is
 * through, logged as `what` (an unclean stop of this node, or a dead node's marks taken over).
 */
export function replayHomes(homes: readonly UnevaluatedHome[], tell: ReplayTell, log: Logger, what = 'rules: events not evaluated before the last stop replayed'): Promise<ReplayReport> {
  const results: Array<Promise<ReplayResult>> = [];
  for (const { homeId, entries, taken } of homes) {
    const last = entries[entries.length - 1];
    if (!last) continue;
    const events: ReplayedEvent[] = [];
    for (const entry of entries) {
      const event = ruleEventIn(entry.data);
      if (event) events.push({ event, offset: entry.offset, at: entry.at });
    }
    results.push(tell(homeId, events, last.offset, taken));
  }
  if (results.length === 0) return Promise.resolve({ homes: 0, replayed: 0, missed: 0 });
  return Promise.all(results).then((all) => {
    const report: ReplayReport = { homes: results.length, replayed: 0, missed: 0 };
    for (const r of all) {
      report.replayed += r.replayed;
      report.missed += r.missed;
    }
    log.info({ ...report }, what);
    return report;
  });
}

/** The state or device event stored as `data`; undefined for other kinds or bytes that do not decode. */
function ruleEventIn(data: Uint8Array): ReplayedEvent['event'] | undefined {
  let value: AppEventMessage;
  try {
    value = decodeValue(data) as AppEventMessage;
  } catch {
    return undefined;
  }
  return value?.kind === 'state' || value?.kind === 'event' ? value : undefined;
}
