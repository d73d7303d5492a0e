/** The messages a home of the rules engine takes (home-actor.ts), and what a cron instant answers. */
import type { HubEvent } from '../../proto/app.js';
import type { ReplayedEvent, ReplayResult } from './replay.js';
import type { RememberedValue } from './replay-reports.js';
import type { Span } from '../trace/tracing.js';

export type FireResult = 'ran' | 'not_matched' | 'suppressed' | 'error' | 'gone';

/** The hub events rules trigger on. */
export type RuleHubEvent = Extract<HubEvent, { kind: 'state' | 'event' }>;

export type HomeMessage =
  /**
   * `received`: performance.now() when the event reached the engine; `parent` (tracing on, only
   * when the hub session traced the step that published it): the evaluation's parent span
   */
  | { type: 'event'; event: RuleHubEvent; received: number; parent?: Span; offset?: number }
  /**
   * the home's events past its mark after an unclean stop (replay.ts), oldest first; its mark moves
   * to `through` after them; `reply` is called exactly once
   */
  | { type: 'replay'; events: ReplayedEvent[]; through: number; reply(result: ReplayResult): void; taken?: string }
  /**
   * before a `replay`: the last values its triggers watch as the stored events before its mark left
   * them (replay-reports.ts), so a replayed report's transition sees the value before it
   */
  | { type: 'remember'; values: readonly RememberedValue[] }
  /** a cron instant of a rule, from the scheduler; `reply` is called exactly once */
  | { type: 'schedule'; ruleId: string; scheduledAt: number; reply(result: FireResult): void }
  /** the store told of a change of the home: its version after it */
  | { type: 'changed'; version: number };
