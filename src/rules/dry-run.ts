/**
 * A dry run (`POST .../rules/{id}/test`): the rule evaluated on the pool against current state,
 * or a given event, with each condition's value, and what it would do now. It runs nothing and
 * counts nothing, and it does not go through the home's mailbox: it changes no state there.
 * The pool's refusals answer as codes of the table: a full queue `busy`, a batch that overran on
 * this rule `rule_timeout`, a closing pool `draining`; a worker that died `internal`.
 */
import type { AttrValue, Attrs } from '../../proto/frames.js';
import type { ErrorCode } from '../../proto/errors.js';
import { TierError } from '../errors.js';
import type { RuleStore } from '../ports/rule-store/rule-store.js';
import type { HomeScope } from './home-scope.js';
import type { ConditionReport, EvalTask, PlannedAction, RuleEvent, SceneCommand } from './model.js';
import { RulePoolError, type RulePoolErrorCode, type RuleRunner } from './pool.js';
import type { RunGuard } from './run-guard.js';
import type { DryRunLimits } from './dry-run-limits.js';

export interface DryRunReport {
  ruleId: string;
  version: number;
  enabled: boolean;
  triggered: boolean;
  trigger: number | null;
  passed: boolean;
  conditions: ConditionReport[];
  error: string | null;
  /**
   * what it would do, scenes expanded to their commands; `problem`: why an action would fail at run
   * time (no such scene, a hub not in the home: deleted or moved out since the rule was saved)
   */
  actions: Array<(PlannedAction & { problem?: string }) | { type: 'scene'; scene: string; commands: SceneCommand[] | null; problem?: string }>;
  /** why it would not run now although it matched: disabled, suspended, cooldown */
  blockedBy: string[];
  wouldRun: boolean;
  /** the device state the conditions saw */
  state: Record<string, Attrs>;
}

export interface DryRunDeps {
  store: RuleStore;
  runner: RuleRunner;
  scope: HomeScope;
  guard: RunGuard;
  now(): number;
  /** the home's dry runs: one at a time, within a budget of worker time */
  limits: DryRunLimits;
}

const POOL_CODES: Record<RulePoolErrorCode, ErrorCode> = { queue_full: 'busy', timeout: 'rule_timeout', closed: 'draining', worker_failed: 'internal' };

/** `at`: the instant `time.*` and a manual event are read at (default now); the run guard still reads now. */
export async function dryRun(deps: DryRunDeps, homeId: string, ruleId: string, event?: RuleEvent, prev: Record<string, AttrValue> = {}, at?: number): Promise<DryRunReport> {
  const { store } = deps;
  const now = () => at ?? deps.now();
  const rule = await store.getRule(homeId, ruleId);
  if (!rule) throw new TierError('not_found', `no rule ${ruleId} in home ${homeId}`);
  const [settings, homeVersion] = await Promise.all([store.getSettings(homeId), store.homeVersion(homeId)]);
  const state = await deps.scope.state(homeId, [rule]);
  const task: EvalTask = {
    homeId,
    homeVersion,
    timeZone: settings.timeZone,
    now: now(),
    rules: [rule],
    event: event ?? { kind: 'manual', ts: now() },
    prev,
    state,
    explain: true,
  };
  const result = await deps.limits.run(homeId, async () => {
    const value = await deps.runner.evaluate(task).catch((err: unknown) => {
      throw err instanceof RulePoolError ? new TierError(POOL_CODES[err.code], err.message, { cause: err }) : err;
    });
    return { value, workerMs: value.outcomes.reduce((ms, o) => ms + o.evalUs / 1000, 0) };
  });
  const o = result.outcomes[0];
  if (!o) throw new TierError('internal', 'the worker returned no outcome');
  const actions: DryRunReport['actions'] = [];
  // the run refuses a hub outside the home (`forbidden`): said here too, not `wouldRun` alone (review "entities")
  const outside = async (hubs: string[]): Promise<string | undefined> => {
    for (const hub of hubs) if (!(await deps.scope.contains(hub, homeId))) return `hub ${hub} is not in the home`;
    return undefined;
  };
  for (const a of o.actions) {
    if (a.type !== 'scene') {
      const problem = a.type === 'command' || a.type === 'desired' ? await outside([a.hub]) : undefined;
      actions.push(problem === undefined ? a : { ...a, problem });
      continue;
    }
    const scene = await store.getScene(homeId, a.scene);
    const problem = !scene ? 'no such scene' : !scene.enabled ? 'scene is disabled' : await outside(scene.commands.map((c) => c.hub));
    actions.push({ type: 'scene', scene: a.scene, commands: scene?.commands ?? null, ...(problem === undefined ? {} : { problem }) });
  }
  const blockedBy: string[] = [...(rule.enabled ? [] : ['disabled']), ...deps.guard.blockedBy(rule)];
  const matched = o.triggered && o.passed;
  return {
    ruleId: rule.id,
    version: rule.version,
    enabled: rule.enabled,
    triggered: o.triggered,
    trigger: o.trigger ?? null,
    passed: o.passed,
    conditions: o.conditions ?? [],
    error: o.error ?? null,
    actions: matched ? actions : [],
    blockedBy: matched ? blockedBy : [],
    wouldRun: matched && blockedBy.length === 0,
    state,
  };
}
