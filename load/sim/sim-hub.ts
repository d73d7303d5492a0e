import type { Attrs, CommandFrame, TimerHandle, TimerTarget, TimerWheel } from '../../src/index.js';
import { deviceAt, setPatch, type KindSpec, type Kind } from '../wire/devices.js';
import { HubClient, HubClientError, type CommandOutcome } from '../wire/hub-client.js';
import { consequences, diff, drift, isEmpty } from './physics.js';

/**
 * One simulated hub: a HubClient with sub-devices of the catalogue whose state drifts, reported
 * at jittered intervals; commands are checked against what each kind lets be set, applied, and
 * the change reported after the result. The simulator owns its connection lifecycle (`status`
 * and the reconnect fields); its timers (next report, next connect) are on the shared wheel.
 */

export type HubStatus = 'pending' | 'connecting' | 'online' | 'waiting' | 'failed' | 'stopped';

/** What every hub of one simulator shares. */
export interface SimContext {
  readonly timers: TimerWheel;
  readonly rnd: () => number;
  /** mean report interval, ms (each one jittered ±20%) */
  readonly reportEveryMs: number;
  readonly counters: { reportsSent: number; reportsAcked: number; eventsSent: number; refused: number; commands: number };
  /** a command was executed (for the simulator's `command` event) */
  commanded(hub: SimHub, cmd: CommandFrame, outcome: CommandOutcome): void;
  /** the hub's reconnect timer fired */
  reconnectDue(hub: SimHub): void;
}

interface SimDevice {
  id: string;
  spec: KindSpec & { kind: Kind };
}

/** the server's per-frame limit on devices */
const DEVICES_PER_FRAME = 256;
const REPORT = 1;
const RECONNECT = 2;

export class SimHub implements TimerTarget {
  status: HubStatus = 'pending';
  /** consecutive failed connects, for the backoff */
  attempt = 0;
  onlineSince = 0;
  everOnline = false;
  /** the server asked for a reconnect after this many ms */
  reconnectAfter: number | null = null;
  /** the last close was a takeover by another connection of this hub */
  takenOver = false;
  /** the device list was sent in this boot */
  private synced = false;
  private readonly devices: SimDevice[] = [];
  private readonly byId = new Map<string, SimDevice>();
  private reportTimer: TimerHandle | null = null;

  constructor(
    readonly id: string,
    readonly homeId: string,
    readonly client: HubClient,
    deviceCount: number,
    private readonly ctx: SimContext,
  ) {
    for (let j = 0; j < deviceCount; j++) {
      const dev = deviceAt(j);
      this.devices.push(dev);
      this.byId.set(dev.id, dev);
      client.state.set(dev.id, dev.spec.init(ctx.rnd));
    }
    client.onCommand((cmd) => {
      const outcome = this.execute(cmd);
      ctx.commanded(this, cmd, outcome);
      return outcome;
    });
  }

  /**
   * A session began: the device list and every state if this boot has not sent them or the
   * server lost them (`s` below what it had acknowledged: a restart without persistence), then
   * the welcome's desired delta; reports start if they are not running.
   */
  welcomed(s: number, ackedBefore: number, dl: Record<string, Attrs>): void {
    if (!this.synced || s < ackedBefore) this.sync();
    this.applyDelta(dl);
    if (this.reportTimer === null) this.scheduleReport(this.ctx.rnd() * this.ctx.reportEveryMs);
  }

  /** The next connection attempt in `delayMs`. */
  reconnectIn(delayMs: number): void {
    this.ctx.timers.schedule(delayMs, this, RECONNECT);
  }

  onTimer(tag: number): void {
    if (tag === RECONNECT) this.ctx.reconnectDue(this);
    else this.tick();
  }

  /** The full device list and every device's state. */
  private sync(): void {
    const infos = this.devices.map((d) => ({ d: d.id, k: d.spec.kind, m: d.spec.model }));
    for (let i = 0; i < Math.max(1, infos.length); i += DEVICES_PER_FRAME) {
      const j = infos.slice(i, i + DEVICES_PER_FRAME);
      this.track(i === 0 ? this.client.devices({ f: true, j }) : this.client.devices({ j }));
    }
    for (let i = 0; i < this.devices.length; i += DEVICES_PER_FRAME) {
      const r: Record<string, Attrs> = {};
      for (const d of this.devices.slice(i, i + DEVICES_PER_FRAME)) r[d.id] = { ...this.client.state.get(d.id) };
      this.sendReport(r);
    }
    this.synced = true;
  }

  /** Applies the welcome's desired delta (writable attributes only) and reports the result. */
  private applyDelta(dl: Record<string, Attrs>): void {
    const report: Record<string, Attrs> = {};
    for (const [deviceId, want] of Object.entries(dl)) {
      const dev = this.byId.get(deviceId);
      if (!dev) continue;
      const patch: Attrs = {};
      for (const [k, v] of Object.entries(want)) {
        const ok = setPatch(dev.id, dev.spec, { [k]: v });
        if (typeof ok !== 'string') Object.assign(patch, ok);
      }
      const changes = this.apply(dev, patch);
      if (!isEmpty(changes)) report[deviceId] = changes;
    }
    if (!isEmpty(report)) this.sendReport(report);
  }

  /** Merges a patch (plus what follows from it) into the device's state; returns what changed. */
  private apply(dev: SimDevice, patch: Attrs): Attrs {
    const cur = this.client.state.get(dev.id) ?? {};
    const changes = diff(cur, consequences(dev.spec.kind, cur, patch, this.ctx.rnd));
    if (!isEmpty(changes)) this.client.state.set(dev.id, { ...cur, ...changes });
    return changes;
  }

  private execute(cmd: CommandFrame): CommandOutcome {
    this.ctx.counters.commands++;
    const dev = this.byId.get(cmd.d);
    if (!dev) return { ok: false, e: 'unknown_device', msg: `hub ${this.id} has no device ${cmd.d}` };
    let patch: Attrs | string;
    if (cmd.m === 'set') patch = setPatch(dev.id, dev.spec, cmd.p);
    else if (cmd.m === 'toggle' && Object.hasOwn(dev.spec.writable, 'on')) patch = { on: this.client.state.get(dev.id)?.on !== true };
    else return { ok: false, e: 'command_failed', msg: `${dev.spec.kind} ${dev.id} does not support ${cmd.m}` };
    if (typeof patch === 'string') return { ok: false, e: 'command_failed', msg: patch };
    const changes = this.apply(dev, patch);
    // the client sends a synchronous answer before this microtask runs: result first, then report
    if (!isEmpty(changes)) queueMicrotask(() => this.sendReport({ [dev.id]: changes }));
    return { ok: true, r: { ...this.client.state.get(dev.id) } };
  }

  private scheduleReport(delayMs: number): void {
    this.reportTimer = this.ctx.timers.schedule(delayMs, this, REPORT);
  }

  /** One report interval: drift every device, report what changed, send events. */
  private tick(): void {
    this.reportTimer = null;
    if (this.status !== 'online') return; // rescheduled when it comes back
    const report: Record<string, Attrs> = {};
    const events: Array<{ d: string; e: string; p?: Attrs }> = [];
    for (const dev of this.devices) {
      const { changes, event } = drift(dev.spec.kind, this.client.state.get(dev.id) ?? {}, this.ctx.rnd);
      if (!isEmpty(changes)) report[dev.id] = changes;
      if (event) events.push({ d: dev.id, ...event });
    }
    if (!isEmpty(report)) this.sendReport(report);
    for (const ev of events) {
      this.ctx.counters.eventsSent++;
      this.track(this.client.event(ev.d, ev.e, ev.p));
    }
    this.scheduleReport(this.ctx.reportEveryMs * (0.8 + 0.4 * this.ctx.rnd()));
  }

  private sendReport(r: Record<string, Attrs>): void {
    if (!this.client.connected) return;
    this.ctx.counters.reportsSent++;
    this.track(this.client.report(r), () => this.ctx.counters.reportsAcked++);
  }

  /** Counts the outcome of a sequenced frame; a refused or unsent frame stays queued for a resend. */
  private track(p: Promise<number>, onAck?: () => void): void {
    p.then(onAck, (err: unknown) => {
      if (err instanceof HubClientError && err.temporary === true) this.ctx.counters.refused++;
    });
  }
}
