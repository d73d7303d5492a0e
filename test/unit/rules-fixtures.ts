/**
 * Test fixtures of the rules tests: simulated hubs that execute commands and report back, and a
 * rig wiring a RulesEngine to a shared worker pool, a memory store, a push queue and a fake clock.
 */
import { afterAll, beforeAll } from 'vitest';
import type { HubEvent } from '../../proto/app.js';
import type { Attrs } from '../../proto/frames.js';
import type { CommandSpec } from '../../src/actors/commands.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { CommandError } from '../../src/errors.js';
import type { PushDelivery } from '../../src/ports/push-queue/push-queue.js';
import { MemoryPushQueue } from '../../src/ports/push-queue/push-queue-memory.js';
import { createLogger } from '../../src/log/logger.js';
import { RulesEngine, type RulesEngineDeps } from '../../src/rules/engine.js';
import { deviceKey, type DeviceRef } from '../../src/rules/model.js';
import { RulePool, type RuleRunner } from '../../src/rules/pool.js';
import { MemoryRuleStore } from '../../src/ports/rule-store/rule-store-memory.js';
import { MemoryLease } from '../../src/ports/lease/lease-memory.js';
import { CronScheduler } from '../../src/rules/scheduler.js';
import type { EvaluatedMarks, UnevaluatedHome } from '../../src/ports/history/history.js';

export interface SentCommand {
  hub: string;
  device: string;
  spec: CommandSpec;
  at: number;
}

/**
 * Hubs and their devices. A command changes the device and the hub reports the change at once
 * (as a real hub does, only faster), so loops through the engine happen as they would live.
 */
export class FakeHubs {
  readonly devices = new Map<string, Attrs>();
  readonly versions = new Map<string, number>();
  readonly commands: SentCommand[] = [];
  readonly desired: Array<{ hub: string; device: string; patch: Attrs }> = [];
  readonly offline = new Set<string>();
  onEvent: (e: HubEvent) => void = () => {};

  constructor(
    private readonly homeOf: (hub: string) => string,
    private readonly clock: () => number,
  ) {}

  /** A device reports attributes (the hub actor publishes a state event). */
  report(hub: string, device: string, attrs: Attrs): void {
    const key = deviceKey(hub, device);
    this.devices.set(key, { ...(this.devices.get(key) ?? {}), ...attrs });
    const version = (this.versions.get(key) ?? 0) + 1;
    this.versions.set(key, version);
    this.onEvent({ kind: 'state', home: this.homeOf(hub), hub, device, attrs, version, ts: this.clock() });
  }

  /** A device event (button press, leak alarm). */
  event(hub: string, device: string, event: string, params?: Attrs, ts = this.clock()): void {
    this.onEvent({ kind: 'event', home: this.homeOf(hub), hub, device, event, params, ts });
  }

  readonly stateOf = async (refs: readonly DeviceRef[]): Promise<Record<string, Attrs>> => {
    const out: Record<string, Attrs> = {};
    for (const r of refs) {
      const s = this.devices.get(deviceKey(r.hub, r.device));
      if (s) out[deviceKey(r.hub, r.device)] = { ...s };
    }
    return out;
  };

  readonly runCommand = async (hub: string, device: string, spec: CommandSpec): Promise<unknown> => {
    this.commands.push({ hub, device, spec, at: this.clock() });
    if (this.offline.has(hub)) throw new CommandError('hub_offline', `hub ${hub} is not connected`);
    const key = deviceKey(hub, device);
    const cur = this.devices.get(key) ?? {};
    let change: Attrs = {};
    if ('set' in spec) change = spec.set;
    else if (spec.method === 'toggle') change = { on: cur.on !== true };
    else if (spec.method === 'open') change = { position: 100 };
    else if (spec.method === 'close') change = { position: 0 };
    if (Object.keys(change).some((k) => cur[k] !== change[k])) this.report(hub, device, change);
    return { ...(this.devices.get(key) ?? {}) };
  };

  readonly setDesired = async (hub: string, device: string, patch: Attrs): Promise<void> => {
    this.desired.push({ hub, device, patch });
  };

  /** commands as `device:json` strings, for readable assertions */
  sent(): string[] {
    return this.commands.map((c) => `${c.device}:${JSON.stringify(c.spec)}`);
  }
}

export const silentLog = createLogger('silent');

/** One node's cron scheduler over `store` on a fake clock, with an in-memory lease; `fire` gets each instant (ms). */
export function cronOnClock(store: MemoryRuleStore, clock: { now: number }, fire: (at: number) => void): CronScheduler {
  return new CronScheduler({ store, lease: new MemoryLease({ now: () => clock.now }), nodeId: 'n', log: silentLog, now: () => clock.now, fire: async (_h, _r, at) => fire(at) });
}

export interface Rig {
  clock: { now: number };
  wheel: TimerWheel;
  store: MemoryRuleStore;
  hubs: FakeHubs;
  pushes: PushDelivery[];
  push: MemoryPushQueue;
  engine: RulesEngine;
  /**
   * A node restart: closes the engine (runs in a delay stop; saved ones stay saved) and starts a
   * new one over the same rule store, hubs, clock and wheel, with the rig's deps and `override`.
   */
  restart(override?: Partial<RulesEngineDeps>): Promise<RulesEngine>;
  /** lets `ms` pass on the fake clock and fires due delays */
  advance(ms: number): void;
  /** waits for evaluations, actions and push deliveries */
  settle(): Promise<void>;
  close(): Promise<void>;
}

/** Hubs `<home>-hub*` belong to `<home>`: `home1-hub` → `home1`. */
export const homeOfHub = (hub: string): string => hub.split('-hub')[0] ?? hub;

export function rig(runner: RuleRunner, start: number, deps: Partial<RulesEngineDeps> = {}): Rig {
  const clock = { now: start };
  const wheel = new TimerWheel({ now: () => clock.now });
  const store = new MemoryRuleStore({ now: () => clock.now });
  const hubs = new FakeHubs(homeOfHub, () => clock.now);
  const pushes: PushDelivery[] = [];
  const push = new MemoryPushQueue({ sender: async (d) => void pushes.push(d), backoffMs: 1 });
  const boot = (override: Partial<RulesEngineDeps> = {}) => {
    const engine = new RulesEngine({
      store,
      runner,
      stateOf: hubs.stateOf,
      runCommand: hubs.runCommand,
      setDesired: hubs.setDesired,
      push: (n) => push.enqueue(n),
      timers: wheel,
      log: silentLog,
      now: () => clock.now,
      ...deps,
      ...override,
    });
    hubs.onEvent = (e) => engine.onEvent(e);
    return engine;
  };
  return {
    clock,
    wheel,
    store,
    hubs,
    pushes,
    push,
    engine: boot(),
    async restart(override) {
      await this.engine.close();
      return (this.engine = boot(override));
    },
    advance(ms: number) {
      clock.now += ms;
      wheel.advance();
    },
    async settle() {
      await this.engine.idle();
      await push.drain();
    },
    async close() {
      await this.engine.close();
      await push.close();
      wheel.close();
    },
  };
}

/** The first example of issue 4, as the API receives it: hall motion at night, light on for 5 minutes. */
export const HALL_LIGHT = {
  name: 'Hall light at night',
  triggers: [{ type: 'state', hub: 'home1-hub', device: 'hall-motion', attr: 'motion', to: true }],
  devices: { lux: { hub: 'home1-hub', device: 'hall-lux' } },
  conditions: ['between(time.hhmm, "22:00", "06:00")', 'dev.lux.lux < 30'],
  actions: [
    { type: 'command', hub: 'home1-hub', device: 'hall-light', set: { on: true } },
    { type: 'delay', ms: 300_000 },
    { type: 'command', hub: 'home1-hub', device: 'hall-light', set: { on: false } },
  ],
};

/**
 * One warm worker pool for a test file (started before its tests, closed after): a far task
 * deadline, since a cold worker on a busy machine is not what the rules tests are about.
 */
export function warmPool(): () => RulePool {
  const timers = new TimerWheel();
  let pool: RulePool | undefined;
  beforeAll(async () => {
    pool = new RulePool({ timers, threads: 1, taskTimeoutMs: 30_000 });
    await pool.warmUp();
  });
  afterAll(async () => {
    await pool?.close();
    timers.close();
  });
  return () => pool!;
}

/** Marks that record each note (and the offsets of events that ran actions) and each `owe`, and answer the homes given once. */
export class RecordingMarks implements EvaluatedMarks {
  readonly notes: Array<[string, number]> = [];
  /** the offsets noted as past an event that ran actions */
  readonly ran: number[] = [];
  owed = 0;
  constructor(private homes: UnevaluatedHome[] = []) {}
  note(homeId: string, offset: number, ran: boolean): void {
    this.notes.push([homeId, offset]);
    if (ran) this.ran.push(offset);
  }
  async unevaluated(): Promise<UnevaluatedHome[]> {
    const homes = this.homes;
    this.homes = [];
    return homes;
  }
  async owe(): Promise<void> {
    this.owed++;
  }
}
