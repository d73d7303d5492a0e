/**
 * Running what a rule decided: one run of its planned actions, in order, each awaited. A delay
 * parks the run on the node's timer wheel (nothing else is held meanwhile); cancelling stops it
 * before its next action (an action already started finishes). A failed action is counted with
 * its index and the next one still runs. Runs are detached from the home's mailbox: a delay never
 * holds the home's next event. Delays live in this node's memory: a restart forgets them.
 */
import { performance } from 'node:perf_hooks';
import type { Attrs } from '../../proto/frames.js';
import type { CommandSpec } from '../actors/commands.js';
import type { TimerHandle, TimerTarget, TimerWheel } from '../actors/timer-wheel.js';
import { TierError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { PushNotification } from '../ports/push-queue/push-queue.js';
import type { HomeScope } from './home-scope.js';
import type { RuleMetricsSink, RuleStats } from './metrics.js';
import type { PlannedAction, Rule, Scene } from './model.js';
import type { Run } from './run-guard.js';

/** What actions reach, from the composition root, and where their outcomes are counted. */
export interface ActionDeps {
  scope: HomeScope;
  getScene(homeId: string, sceneId: string): Promise<Scene | null>;
  runCommand(hubId: string, deviceId: string, spec: CommandSpec, timeoutMs: number): Promise<unknown>;
  setDesired(hubId: string, deviceId: string, patch: Attrs): Promise<unknown>;
  push(notification: PushNotification): Promise<unknown>;
  timers: TimerWheel;
  /** for commands that set no timeout (ms) */
  commandTimeoutMs: number;
  stats: RuleStats;
  metrics: RuleMetricsSink;
  log: Logger;
  now(): number;
  /** each stretch of a run between delays is a promise the engine's idle and close wait for */
  track(p: Promise<unknown>): void;
}

export interface SceneRunResult {
  sceneId: string;
  results: Array<{ hub: string; device: string; ok: boolean; result?: unknown; code?: string; message?: string }>;
}

export class ActionRun implements TimerTarget, Run {
  #cancelled = false;
  #timer: TimerHandle | null = null;
  #next = 0;
  #started = false;

  constructor(
    private readonly deps: ActionDeps,
    private readonly homeId: string,
    readonly rule: Rule,
    private readonly actions: readonly PlannedAction[],
    /** the notification dedup key of action i is `${dedupBase}:${i}` */
    private readonly dedupBase: string,
    /** performance.now() when the triggering event reached the engine */
    private readonly received: number,
    /** called once when the run finishes or is cancelled */
    private readonly onEnd: (run: ActionRun) => void,
  ) {}

  get waiting(): boolean {
    return this.#timer !== null && this.#timer.active;
  }

  start(): void {
    this.deps.track(this.#execute(0));
  }

  cancel(): void {
    this.#cancelled = true;
    this.deps.timers.cancel(this.#timer);
    this.#timer = null;
    this.onEnd(this);
  }

  onTimer(): void {
    this.#timer = null;
    this.deps.track(this.#execute(this.#next));
  }

  async #execute(from: number): Promise<void> {
    const { deps, rule } = this;
    for (let i = from; i < this.actions.length; i++) {
      if (this.#cancelled) return;
      const a = this.actions[i]!;
      if (a.type === 'delay') {
        this.#next = i + 1;
        this.#timer = deps.timers.schedule(a.ms, this);
        return;
      }
      if (!this.#started) {
        this.#started = true;
        deps.metrics.eventToAction((performance.now() - this.received) / 1000);
      }
      let error: unknown;
      try {
        await perform(deps, this.homeId, rule, a, i, this.dedupBase);
      } catch (err) {
        error = err ?? new Error('action failed');
      }
      deps.metrics.action(a.type, error === undefined);
      if (error === undefined) deps.stats.of(rule.id).actionsRun++;
      else {
        deps.stats.error(rule.id, deps.now(), `actions[${i}] (${a.type}): ${error instanceof Error ? error.message : String(error)}`);
        deps.log.warn({ ruleId: rule.id, err: error }, 'rules: action failed');
      }
    }
    if (!this.#cancelled) this.onEnd(this);
  }
}

/** Runs one planned action (not a delay); throws on failure. */
async function perform(deps: ActionDeps, homeId: string, rule: Rule, a: PlannedAction, index: number, dedupBase: string): Promise<void> {
  switch (a.type) {
    case 'command':
      await deps.scope.require(a.hub, homeId);
      await deps.runCommand(a.hub, a.device, commandSpec(a), a.timeoutMs ?? deps.commandTimeoutMs);
      return;
    case 'desired':
      await deps.scope.require(a.hub, homeId);
      await deps.setDesired(a.hub, a.device, a.desired);
      return;
    case 'scene': {
      const scene = await deps.getScene(homeId, a.scene);
      if (!scene) throw new Error(`scene ${a.scene} does not exist`);
      if (!scene.enabled) throw new Error(`scene ${a.scene} is disabled`);
      const res = await runSceneCommands(deps, scene);
      const failed = res.results.filter((r) => !r.ok);
      if (failed.length > 0) throw new Error(`scene ${a.scene}: ${failed.length} of ${res.results.length} commands failed (${failed.map((f) => f.code).join(', ')})`);
      return;
    }
    case 'notify':
      await deps.push({ homeId, title: a.title, body: a.body, dedupKey: `${dedupBase}:${index}`, data: { ruleId: rule.id } });
      return;
    case 'delay':
      return; // parks the run: ActionRun
  }
}

/** A scene's commands at once, in parallel; one result per command, failures included. */
export async function runSceneCommands(deps: Pick<ActionDeps, 'scope' | 'runCommand' | 'commandTimeoutMs'>, scene: Scene): Promise<SceneRunResult> {
  const settled = await Promise.allSettled(
    scene.commands.map(async (c) => {
      await deps.scope.require(c.hub, scene.homeId);
      return deps.runCommand(c.hub, c.device, commandSpec(c), c.timeoutMs ?? deps.commandTimeoutMs);
    }),
  );
  return {
    sceneId: scene.id,
    results: settled.map((s, i) => {
      const c = scene.commands[i]!;
      if (s.status === 'fulfilled') return { hub: c.hub, device: c.device, ok: true, result: s.value };
      const err = s.reason as unknown;
      return { hub: c.hub, device: c.device, ok: false, code: err instanceof TierError ? err.code : 'internal', message: err instanceof Error ? err.message : String(err) };
    }),
  };
}

function commandSpec(c: { set?: Attrs; method?: string; params?: Record<string, unknown> }): CommandSpec {
  return c.set !== undefined ? { set: c.set } : { method: c.method ?? 'set', params: c.params ?? {} };
}
