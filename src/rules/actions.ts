/**
 * One planned action of a rule's run, performed (ActionRun runs them in order): a device command, a
 * desired change, a scene's commands, a notification; each within the home's budgets and, where
 * configured, recorded in the audit trail with the rule as the actor.
 */
import type { Attrs } from '../../proto/frames.js';
import type { CommandSpec } from '../actors/commands.js';
import type { AuditWhat } from '../actors/audit-trail.js';
import { asTierError, CommandError, TierError } from '../errors.js';
import type { PushNotification } from '../ports/push-queue/push-queue.js';
import type { ActionDeps } from './action-run.js';
import { SCENE_COMMANDS_PER_HUB, settleByHub } from './hub-lanes.js';
import { notificationText } from './notify-text.js';
import type { PlannedAction, Rule, Scene, SceneCommand } from './model.js';
import { traceparentOf, type Span } from '../trace/tracing.js';

export interface SceneRunResult {
  sceneId: string;
  results: Array<{ hub: string; device: string; ok: boolean; result?: unknown; code?: string; message?: string }>;
}

/**
 * Runs one planned action (not a delay); throws on failure. `run`: the run's span, the parent of what it sends.
 * The home's budget is taken first, outside the audit: a flood of refusals is counted, not audited one by one.
 */
export async function perform(deps: ActionDeps, homeId: string, rule: Rule, a: PlannedAction, index: number, dedupBase: string, run: Span | undefined): Promise<void> {
  if (a.type === 'scene') deps.budget.check(homeId);
  else if (a.type !== 'delay') deps.budget.take(homeId, 1);
  const audit = deps.audit;
  const audited = <T>(what: AuditWhat, action: () => Promise<T>): Promise<T> => (audit ? audit.run({ actor: { kind: 'rule', sub: rule.id } }, { homeId, ...what }, action) : action());
  switch (a.type) {
    case 'command':
      await audited({ action: 'command', hubId: a.hub, deviceId: a.device, detail: a.set !== undefined ? `set ${Object.keys(a.set).join(',')}` : (a.method ?? 'set') }, async () => {
        const inHome = () => deps.scope.require(a.hub, homeId);
        await inHome();
        await deps.runCommand(a.hub, a.device, commandSpec(a), a.timeoutMs ?? deps.commandTimeoutMs, undefined, run, inHome);
      });
      return;
    case 'desired':
      await audited({ action: 'desired.set', hubId: a.hub, deviceId: a.device, detail: Object.keys(a.desired).join(',') }, async () => {
        await deps.scope.require(a.hub, homeId);
        await deps.setDesired(a.hub, a.device, a.desired, homeId);
      });
      return;
    case 'scene':
      return audited({ action: 'scene.run', target: a.scene }, () => runSceneAction(deps, homeId, a.scene, run));
    case 'notify': {
      // phones, not devices: a home's flood would hold every other home's notifications back in the queue
      deps.notifyBudget?.take(homeId, 1);
      // the worker fitted the text already; again for plans an older node saved in the pending-runs store
      const text = notificationText(a.title, a.body, rule.name);
      const notification: PushNotification = { homeId, ...text, dedupKey: `${dedupBase}:${index}`, data: { ruleId: rule.id } };
      // the delivery, on whichever node or push worker takes the job, joins the run's trace
      if (run) notification.tp = traceparentOf(run);
      await deps.push(notification);
      return;
    }
    case 'delay':
      return; // parks the run: ActionRun
  }
}

/** A rule's scene action: the scene's commands (`runSceneCommands`); throws when any failed. */
async function runSceneAction(deps: ActionDeps, homeId: string, sceneId: string, run: Span | undefined): Promise<void> {
  const scene = await deps.getScene(homeId, sceneId);
  // error codes, not bare errors: the audit trail records the code as the outcome
  if (!scene) throw new TierError('not_found', `scene ${sceneId} does not exist`);
  if (!scene.enabled) throw new TierError('invalid_field', `scene ${sceneId} is disabled`, { field: 'enabled' });
  // each of its commands counts: all of them run or none
  deps.budget.take(homeId, scene.commands.length);
  const res = await runSceneCommands(deps, scene, run);
  const failed = res.results.filter((r) => !r.ok);
  if (failed.length > 0) throw new TierError('command_failed', `scene ${sceneId}: ${failed.length} of ${res.results.length} commands failed (${failed.map((f) => f.code).join(', ')})`);
}

/**
 * A scene's commands in parallel, at most `sceneCommandsPerHub` (8) in flight per hub (the rest follow
 * in the scene's order as answers come); one result per command, failures included. A hub offline or
 * answering nothing has its commands not yet sent fail at once (`hubGivenUp`). `parent`: the caller's span (tracing on).
 */
export async function runSceneCommands(deps: Pick<ActionDeps, 'scope' | 'runCommand' | 'commandTimeoutMs' | 'sceneCommandsPerHub'>, scene: Scene, parent?: Span): Promise<SceneRunResult> {
  const run = async (c: SceneCommand): Promise<unknown> => {
    const inHome = () => deps.scope.require(c.hub, scene.homeId);
    await inHome();
    return deps.runCommand(c.hub, c.device, commandSpec(c), c.timeoutMs ?? deps.commandTimeoutMs, undefined, parent, inHome);
  };
  const settled = await settleByHub(scene.commands, deps.sceneCommandsPerHub ?? SCENE_COMMANDS_PER_HUB, run, hubGivenUp);
  return {
    sceneId: scene.id,
    results: settled.map((s, i) => {
      const c = scene.commands[i]!;
      if (s.status === 'fulfilled') return { hub: c.hub, device: c.device, ok: true, result: s.value };
      const err = s.reason as unknown;
      return { hub: c.hub, device: c.device, ok: false, code: asTierError(err).code, message: err instanceof Error ? err.message : String(err) };
    }),
  };
}

/**
 * When a hub's unsent commands of a scene fail at once: after one failed `hub_offline` (past its wait,
 * for rules). Timeouts stop nothing: devices that do not answer (a dead bulb's) tell nothing of the
 * hub's others, whose commands then went unsent (review diff18); a hub that answers nothing at all
 * holds the run a timeout per window of its commands.
 */
function hubGivenUp(): (result: PromiseSettledResult<unknown>) => CommandError | undefined {
  return (result) => {
    const err = result.status === 'rejected' ? asTierError(result.reason) : undefined;
    return err?.code === 'hub_offline' ? new CommandError('hub_offline', `not sent: ${err.message}`, { cause: err }) : undefined;
  };
}

function commandSpec(c: { set?: Attrs; method?: string; params?: Record<string, unknown> }): CommandSpec {
  return c.set !== undefined ? { set: c.set } : { method: c.method ?? 'set', params: c.params ?? {} };
}
