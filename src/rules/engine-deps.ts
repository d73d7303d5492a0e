/**
 * What the rules engine (engine.ts) is given and what it tells of a rule: its ports, its bounds
 * and their defaults, one place to read them.
 */
import type { AuditTrail } from '../actors/audit-trail.js';
import type { Attrs } from '../../proto/frames.js';
import type { ActorSystem } from '../actors/actor.js';
import type { CommandSender } from '../actors/commands.js';
import type { TimerWheel } from '../actors/timer-wheel.js';
import type { Logger } from '../log/logger.js';
import type { PendingRuns } from '../ports/pending-runs/pending-runs.js';
import type { EvaluatedMarks } from '../ports/history/history.js';
import type { PushNotification } from '../ports/push-queue/push-queue.js';
import type { RuleStore } from '../ports/rule-store/rule-store.js';
import type { RuleMetricsSink, RuleStatsSnapshot } from './metrics.js';
import type { DeviceRef } from './model.js';
import type { RuleRunner } from './pool.js';
import type { LostReportsDeps } from './replay-reports.js';

export interface RulesEngineDeps {
  store: RuleStore;
  runner: RuleRunner;
  /** reported attributes of these devices, by `deviceKey(hub, device)`; unknown devices left out */
  /** `spent.ms`: added the main thread's time of the read (charged to the home's rules) */
  stateOf(refs: readonly DeviceRef[], spent?: { ms: number }): Promise<Record<string, Attrs>>;
  runCommand: CommandSender;
  setDesired(hubId: string, deviceId: string, patch: Attrs, homeId: string): Promise<unknown>;
  push(notification: PushNotification): Promise<unknown>;
  /**
   * The home a hub is provisioned in: the node's registry lookup, asked at every check (it is the
   * node's cache). When given, every hub a rule or scene reaches at run time must still be in the
   * rule's home: state of other hubs is not read, commands to them fail.
   */
  homeOfHub?(hubId: string): Promise<string | null>;
  timers: TimerWheel;
  log: Logger;
  metrics?: RuleMetricsSink;
  now?: () => number;
  /** @default 5_000 (ms) */
  commandTimeoutMs?: number;
  /** how long a rule's command waits for its hub to connect (`HubWait`); @default 0: fails at once, `hub_offline` */
  hubWaitMs?: number;
  /** each hub's bound of commands in flight (TIER_HUB_MAX_COMMANDS): a scene sends a hub a quarter of it at a time, 8 at most; @default 32 */
  hubMaxCommands?: number;
  /** the commands, desired changes and scene runs of rules are recorded here */
  audit?: AuditTrail;
  /** how long the loop guard suspends a rule; @default 600_000 (ms) */
  suspendMs?: number;
  /** a home's cached rules are re-checked against the store's version after this; @default 10_000 (ms) */
  cacheTtlMs?: number;
  /** events of one home accepted and not yet evaluated (the one in evaluation included); more are dropped and counted; @default 256 */
  maxBacklogPerHome?: number;
  /**
   * worker time one home's evaluations may use per second (HomeCpuBudget); past it the home's
   * events are dropped and counted (`home_cpu`); 0: no bound; @default 250 (ms)
   */
  homeCpuMsPerSecond?: number;
  /**
   * device commands (a scene's each), desired changes and notifications one home's rule runs may
   * start per second (ActionBudget); past it actions are refused and counted; 0: no bound; @default 500
   */
  homeActionsPerSecond?: number;
  /** notifications one home's rule runs may send per minute, besides those; 0: no bound; @default 60 */
  homeNotificationsPerMinute?: number;
  /**
   * how long `close` waits for evaluations and action runs in progress; homes' queued events are
   * dropped at once (`closed`), and what is still running past it is left to the pool's close; @default 5_000 (ms)
   */
  closeWaitMs?: number;
  /** homes kept in memory (rules index, last values); idle ones beyond are forgotten; @default 50_000 */
  maxHomes?: number;
  /**
   * a home without rules, idle this long since the store last said so, is forgotten (its next event
   * reads the store again): most homes of a node have none, and each kept costs about 400 B;
   * checked as often; 0: kept until `maxHomes`; @default 3 × cacheTtlMs
   */
  forgetIdleMs?: number;
  /** the node's supervision of the home actors and its failure counter (tier_actor_failures_total) */
  supervision?: Pick<ActorSystem, 'supervision' | 'onFailure' | 'failureLog'>;
  /**
   * where runs parked in a delay are saved, so they survive a restart (`resumePending`); absent,
   * delays live in this node's memory only and a restart forgets them
   */
  pendingRuns?: PendingRuns;
  /**
   * how late past its due time a delay found at start still goes on, and how long ago an event
   * replayed at start may have been stored; older ones are missed; @default 60_000 (ms), as cron's catch-up
   */
  delayCatchUpMs?: number;
  /** the history's marks of how far each home's events are evaluated (replay.ts); absent: no replay */
  marks?: EvaluatedMarks;
  /**
   * with `marks`: the shadow's devices and a home's hubs, to replay reports whose events the
   * stop lost (replay-reports.ts); absent: only stored events are replayed
   */
  reports?: Pick<LostReportsDeps, 'devicesOf' | 'hubsOf'>;
}

export interface RuleStatus {
  suspendedUntil: number | null;
  lastRunAt: number | null;
  /** a run is waiting in a delay */
  waiting: boolean;
  stats: RuleStatsSnapshot;
}
