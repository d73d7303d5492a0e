/**
 * Automation on one node, assembled: the worker pool, the engine, and the cron scheduler,
 * from the ports and a few functions of the composition root. `compose/server.ts` builds one,
 * feeds it every published hub event, mounts its routes (src/api/rules-routes.ts) and closes it.
 */
import type { AuditTrail } from '../actors/audit-trail.js';
import type { HubEvent } from '../../proto/app.js';
import type { Attrs } from '../../proto/frames.js';
import type { CommandSender } from '../actors/commands.js';
import type { Span } from '../trace/tracing.js';
import type { TimerWheel } from '../actors/timer-wheel.js';
import type { ShadowStore } from '../ports/shadow-store/shadow-store.js';
import type { PendingRuns } from '../ports/pending-runs/pending-runs.js';
import type { EvaluatedMarks } from '../ports/history/history.js';
import type { PushQueue } from '../ports/push-queue/push-queue.js';
import type { Logger } from '../log/logger.js';
import { RulesEngine, type RulesEngineDeps } from './engine.js';
import type { Lease } from '../ports/lease/lease.js';
import { noRuleMetrics, type RuleMetricsSink } from './metrics.js';
import { CRON_MIN_INTERVAL_MS, deviceKey, type DeviceRef } from './model.js';
import { RulePool, type RulePoolOptions } from './pool.js';
import { enqueueRetrying } from './push-retry.js';
import type { RuleStore } from '../ports/rule-store/rule-store.js';
import { CronScheduler } from './scheduler.js';

export interface AutomationDeps {
  store: RuleStore;
  lease: Lease;
  push: PushQueue;
  /** device state for conditions (`reported`) */
  shadows: ShadowStore;
  /** the home of a hub, null when unknown: the node's registry lookup, asked at every check (no cache of its own) */
  homeOfHub(hubId: string): Promise<string | null>;
  /** the normal command path (`sendCommand` over the bus) */
  runCommand: CommandSender;
  /** writes desired state and tells the node holding the hub (as `PUT .../desired` does) */
  setDesired(hubId: string, deviceId: string, patch: Attrs, homeId: string): Promise<unknown>;
  timers: TimerWheel;
  log: Logger;
  nodeId: string;
  metrics?: RuleMetricsSink;
  /** @default 5_000 (ms) */
  commandTimeoutMs?: number;
  /** largest timeout a rule's command may ask for; @default 60_000 (ms) */
  commandTimeoutMaxMs?: number;
  /** how long a rule's command waits for its hub to connect (`HubWait`); @default 0: fails at once */
  hubWaitMs?: number;
  /** each hub's bound of commands in flight (TIER_HUB_MAX_COMMANDS); @default 32: see RulesEngineDeps.hubMaxCommands */
  hubMaxCommands?: number;
  pool?: Omit<RulePoolOptions, 'timers'>;
  /** worker time one home may use per second; @default 250 (ms): see RulesEngineDeps.homeCpuMsPerSecond */
  homeCpuMsPerSecond?: number;
  /** device commands (a scene's each), desired changes and notifications one home's rules may start per second; @default 500: see RulesEngineDeps.homeActionsPerSecond */
  homeActionsPerSecond?: number;
  /** notifications one home's rules may send per minute; @default 60: see RulesEngineDeps.homeNotificationsPerMinute */
  homeNotificationsPerMinute?: number;
  /** the node's supervision of the home actors and its failure counter */
  supervision?: RulesEngineDeps['supervision'];
  /** where runs parked in a delay are saved (resumed at `start`); absent: delays do not survive a restart */
  pendingRuns?: PendingRuns;
  /** @default 60_000 (ms): see RulesEngineDeps.delayCatchUpMs */
  delayCatchUpMs?: number;
  /** the history's marks of how far rules evaluated each home (RulesEngineDeps.marks); absent: no replay */
  marks?: EvaluatedMarks;
  /** a home's hubs (the registry's), for triggers on any device when reports lost with a stop are looked for (replay-reports.ts) */
  hubsOfHome?(homeId: string): Promise<string[]>;
  /** how often the delays and rules marks of dead nodes are looked for, with stores shared by a cluster; @default 10_000 (ms) */
  orphanCheckMs?: number;
  /** the commands, desired changes and scene runs of rules are recorded here */
  audit?: AuditTrail;
}

export interface Automation {
  readonly engine: RulesEngine;
  readonly pool: RulePool;
  readonly scheduler: CronScheduler;
  /**
   * the publishEvent hook: never throws, returns at once; `parent` (tracing on): the step the event
   * came from; `offset`: the event's in its home's history, when stored
   */
  onEvent(event: HubEvent, parent?: Span, offset?: number): void;
  /** warms the worker threads up, resumes the delays pending at the last stop, starts the cron scheduler */
  start(): void;
  /** the rule store lost its data (Redis restarted empty): rules and cron triggers are read again now; answers the homes re-read */
  storeLost(): number;
  /** scheduler, engine (waits for running actions), pool; the ports are the caller's to close */
  close(): Promise<void>;
}

/**
 * Reads `reported` of the named devices from the shadow store, one read per hub of those devices alone. Only devices the
 * loaded shadow owns count: a device id named like an Object.prototype member (`toString`) that
 * the hub never reported has no state, whatever a plain-object shadow inherits under that name.
 */
export function shadowState(shadows: ShadowStore): (refs: readonly DeviceRef[], spent?: { ms: number }) => Promise<Record<string, Attrs>> {
  return async (refs, spent) => {
    const byHub = new Map<string, DeviceRef[]>();
    for (const r of refs) {
      const list = byHub.get(r.hub);
      if (list) list.push(r);
      else byHub.set(r.hub, [r]);
    }
    const out: Record<string, Attrs> = {};
    await Promise.all(
      [...byHub].map(async ([hub, list]) => {
        const shadow = await shadows.loadDevices(hub, list.map((r) => r.device), { reportedOnly: true, spent });
        for (const r of list) {
          if (!Object.hasOwn(shadow, r.device)) continue;
          const device = shadow[r.device];
          if (device) out[deviceKey(r.hub, r.device)] = device.reported;
        }
      }),
    );
    return out;
  };
}

export function createAutomation(deps: AutomationDeps): Automation {
  const metrics = deps.metrics ?? noRuleMetrics;
  const log = deps.log;
  const pool = new RulePool({
    ...deps.pool,
    timers: deps.timers,
    onWorkerError: (err) => {
      metrics.workerError();
      log.error({ err }, 'rule worker thread failed; piscina replaces it');
      deps.pool?.onWorkerError?.(err);
    },
  });
  const engine = new RulesEngine({
    store: deps.store,
    runner: pool,
    stateOf: shadowState(deps.shadows),
    runCommand: deps.runCommand,
    setDesired: deps.setDesired,
    push: (n) => enqueueRetrying(() => deps.push.enqueue(n)),
    homeOfHub: deps.homeOfHub,
    timers: deps.timers,
    log,
    metrics,
    ...(deps.commandTimeoutMs === undefined ? {} : { commandTimeoutMs: deps.commandTimeoutMs }),
    ...(deps.hubWaitMs === undefined ? {} : { hubWaitMs: deps.hubWaitMs }),
    ...(deps.hubMaxCommands === undefined ? {} : { hubMaxCommands: deps.hubMaxCommands }),
    ...(deps.homeCpuMsPerSecond === undefined ? {} : { homeCpuMsPerSecond: deps.homeCpuMsPerSecond }),
    ...(deps.homeActionsPerSecond === undefined ? {} : { homeActionsPerSecond: deps.homeActionsPerSecond }),
    ...(deps.homeNotificationsPerMinute === undefined ? {} : { homeNotificationsPerMinute: deps.homeNotificationsPerMinute }),
    ...(deps.supervision === undefined ? {} : { supervision: deps.supervision }),
    ...(deps.pendingRuns === undefined ? {} : { pendingRuns: deps.pendingRuns }),
    ...(deps.delayCatchUpMs === undefined ? {} : { delayCatchUpMs: deps.delayCatchUpMs }),
    ...(deps.marks === undefined ? {} : { marks: deps.marks, reports: { devicesOf: (hubId: string) => deps.shadows.load(hubId), ...(deps.hubsOfHome ? { hubsOf: deps.hubsOfHome } : {}) } }),
    ...(deps.audit === undefined ? {} : { audit: deps.audit }),
  });
  const scheduler = new CronScheduler({
    store: deps.store,
    lease: deps.lease,
    nodeId: deps.nodeId,
    fire: (homeId, ruleId, at) => engine.fireScheduled(homeId, ruleId, at),
    log,
    metrics,
    minIntervalMs: CRON_MIN_INTERVAL_MS,
  });
  let closed = false;
  let orphanCheck: NodeJS.Timeout | null = null;
  let checking = false;
  const takeOver = () => {
    if (checking) return;
    checking = true;
    const delays = engine.takeOverOrphans().catch((err: unknown) => log.warn({ err }, 'rules: delays of dead nodes not looked for; retried'));
    // the events a dead node had acknowledged and not evaluated (a history shared by the cluster)
    const events = engine.replayOrphans().catch((err: unknown) => log.warn({ err }, 'rules: events of dead nodes not looked for; retried'));
    void Promise.all([delays, events]).finally(() => (checking = false));
  };
  return {
    engine,
    pool,
    scheduler,
    onEvent: (event, parent, offset) => engine.onEvent(event, parent, offset),
    storeLost() {
      scheduler.storeLost();
      return engine.rulesLost();
    },
    start() {
      void pool.warmUp();
      // the engine tracks it (close waits for it); a store that cannot be read is logged, not fatal
      engine.resumePending().catch((err: unknown) => log.error({ err }, 'rules: pending delays not resumed'));
      // stores shared by a cluster: a dead node's delays go on, and its events are evaluated, here if this node claims them first
      if (deps.pendingRuns?.claimOrphans || deps.marks?.claimOrphans) {
        orphanCheck = setInterval(takeOver, deps.orphanCheckMs ?? 10_000);
        orphanCheck.unref();
      }
      scheduler.start();
    },
    async close() {
      if (closed) return;
      closed = true;
      if (orphanCheck) clearInterval(orphanCheck);
      await scheduler.stop();
      await engine.close();
      await pool.close();
    },
  };
}
