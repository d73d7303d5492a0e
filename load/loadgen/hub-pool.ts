import { TimerWheel, type Attrs, type DeviceInfo, type TimerTarget } from '../../src/index.js';
import { backoffMs, mapLimit, sleep } from '../lib/async.js';
import { AdminClient, AdminError, NoAnswerError } from '../wire/admin.js';
import { deviceAt, deviceList } from '../wire/devices.js';
import { HubClientError, hubEndpoint } from '../wire/handshake.js';
import type { ConnectResult, StormResult, WorkerConfig } from './ipc.js';
import { LeanHubs, type LeanHubEvents, type LeanTarget } from './lean-hub.js';
import type { WorkerMetrics } from './metrics.js';
import { PORT_TAKEN, type SourcePorts } from './sources.js';

/**
 * A worker's share of the hubs (lean hubs): provisioning, connecting at a ramp, reconnecting
 * sessions that drop, the reconnect storm, and one heartbeat sweep a second for all of them.
 * After each welcome a hub may send its full device list and every device's starting state (from
 * the catalogue), so the server's shadow is filled as a real hub's would be. Per hub it keeps two
 * bytes (reconnect attempts, a reconnect pending); its timers are in the worker's one wheel.
 */

/** Hubs per provisioning request (the API takes up to 1,000), requests per worker at once, tries per request. */
const PROVISION_BATCH = 250;
const PROVISION_CONCURRENCY = 4;
const PROVISION_TRIES = 5;
/** Source ports tried in a row when each one is taken. */
const MAX_PORT_TRIES = 32;

export class HubPool implements TimerTarget {
  readonly hubs: LeanHubs;
  /** while a storm or the stop runs, dropped sessions are not reconnected by the pool */
  storming = false;
  private stopping = false;
  private readonly wheel = new TimerWheel();
  private readonly heartbeats: NodeJS.Timeout;
  /** reconnect attempts since the last welcome, per hub (capped) */
  private readonly attempt: Uint8Array;
  /** 1: a reconnect is scheduled or under way */
  private readonly retrying: Uint8Array;
  /** what every hub sends after its welcome (built once: one device list and one report) */
  private readonly fillFrames: { list: DeviceInfo[]; state: Record<string, Attrs> } | null;

  constructor(
    private readonly config: WorkerConfig,
    private readonly metrics: WorkerMetrics,
    sources: SourcePorts,
  ) {
    const events: LeanHubEvents = {
      onClose: (i, code) => this.onSessionClosed(i, code),
      onErrorFrame: (_i, code) => metrics.bump(`frame:${code}`),
      onCommand: () => metrics.counters.commandsAnswered++,
      onAck: () => metrics.counters.acks++,
      onReportAck: (_i, ms) => {
        metrics.counters.reportAcks++;
        metrics.record('reportToAck', ms);
      },
    };
    const targets: LeanTarget[] = config.targets.map((url) => ({
      endpoint: hubEndpoint(url, config.path),
      signed: config.signed,
      hello: config.hello !== false,
      connectTimeoutMs: config.connectTimeoutMs,
      source: () => sources.next(),
    }));
    this.hubs = new LeanHubs(targets, config.hubs, events, this.wheel);
    // the specs are copied into the hubs' arrays: the objects of the init message can go
    config.hubs = [];
    this.attempt = new Uint8Array(this.hubs.count);
    this.retrying = new Uint8Array(this.hubs.count);
    metrics.counters.hubs = this.hubs.count;
    this.fillFrames = config.fill && config.hello !== false && config.devices > 0 ? fillFrames(config.devices) : null;
    // one sweep a second: a heartbeat from every hub that sent nothing for most of its interval
    this.heartbeats = setInterval(() => this.hubs.sweepHeartbeats(Date.now()), 1_000);
    this.heartbeats.unref();
  }

  /**
   * Provisions every hub without a known secret, through the node it will connect to, in batches
   * (one request per PROVISION_BATCH hubs). A batch without an answer, or refused by admission
   * control, is tried again; hubs it may have created meanwhile answer `already_exists` then and
   * get a new secret.
   */
  async provision(adminFor: (target: number) => AdminClient): Promise<{ ok: number; failed: number }> {
    const h = this.hubs;
    const byTarget = new Map<number, number[]>();
    for (let i = 0; i < h.count; i++) {
      if (h.secrets[i] !== '') continue;
      let list = byTarget.get(h.target[i]!);
      if (!list) byTarget.set(h.target[i]!, (list = []));
      list.push(i);
    }
    const batches: number[][] = [];
    for (const list of byTarget.values()) for (let k = 0; k < list.length; k += PROVISION_BATCH) batches.push(list.slice(k, k + PROVISION_BATCH));
    const counts = { ok: 0, failed: 0 };
    await mapLimit(batches, PROVISION_CONCURRENCY, (batch) => this.provisionBatch(adminFor(h.target[batch[0]!]!), batch, counts));
    return counts;
  }

  private async provisionBatch(admin: AdminClient, batch: number[], counts: { ok: number; failed: number }): Promise<void> {
    const h = this.hubs;
    const items = batch.map((i) => ({ hubId: h.ids[i]!, homeId: h.homes[i]!, model: 'load-hub' }));
    let unanswered = false;
    for (let attempt = 1; ; attempt++) {
      try {
        const outcomes = await admin.provisionBatch(items);
        const ours: number[] = [];
        outcomes.forEach((o, k) => {
          if (o.ok) {
            h.secrets[batch[k]!] = o.secret;
            counts.ok++;
          } else if (o.code === 'already_exists' && unanswered) ours.push(batch[k]!);
          else {
            this.metrics.bump(`provision:${o.code}`);
            counts.failed++;
          }
        });
        // made by an attempt whose answer was lost: its secret was never seen, so a new one
        await mapLimit(ours, 4, async (i) => {
          try {
            h.secrets[i] = await admin.rotateSecret(h.ids[i]!);
            counts.ok++;
          } catch (err) {
            this.metrics.bump(`provision:${errorCode(err)}`);
            counts.failed++;
          }
        });
        return;
      } catch (err) {
        const code = errorCode(err);
        const transient = err instanceof NoAnswerError || (err instanceof AdminError && (err.status === 429 || err.status === 503));
        if (!transient || attempt >= PROVISION_TRIES) {
          for (let k = 0; k < batch.length; k++) this.metrics.bump(`provision:${code}`);
          counts.failed += batch.length;
          return;
        }
        unanswered ||= err instanceof NoAnswerError;
        this.metrics.bump(`retry:provision:${code}`);
        await sleep(backoffMs(attempt, 250, 8_000));
      }
    }
  }

  /** Connects every hub not connected, `perSec` new connections a second at most (0: no limit). */
  async connectAll(perSec: number): Promise<ConnectResult> {
    const started = performance.now();
    let ok = 0;
    let failed = 0;
    let n = 0;
    await mapLimit(indices(this.hubs.count), this.config.connectConcurrency, async (i) => {
      if (this.hubs.connected(i)) return;
      if (perSec > 0) {
        // the ramp: connection k starts no earlier than k / perSec seconds after the first
        const wait = started + (n++ * 1000) / perSec - performance.now();
        if (wait > 0) await this.after(wait);
      }
      if (await this.connectOne(i, 'connect')) ok++;
      else {
        failed++;
        // as a hub would: refused (`busy`) or failed, it tries again after its backoff
        if (this.config.reconnect) this.scheduleReconnect(i);
      }
    });
    return { ok, failed, elapsedMs: performance.now() - started };
  }

  /** Every connected hub drops its TCP connection at once, then reconnects at once (with a short backoff on failure). */
  async storm(deadlineMs: number): Promise<StormResult> {
    const online = indices(this.hubs.count).filter((i) => this.hubs.connected(i));
    this.storming = true;
    const started = performance.now();
    await Promise.all(online.map((i) => this.hubs.terminate(i)));
    let back = 0;
    let attempts = 0;
    let last = 0;
    const deadline = started + deadlineMs;
    await Promise.all(
      online.map(async (i) => {
        for (let attempt = 0; performance.now() < deadline && !this.stopping; attempt++) {
          attempts++;
          if (await this.connectOne(i, 'storm')) {
            back++;
            last = performance.now();
            return;
          }
          await this.after(backoffMs(attempt, 100, 5_000));
        }
      }),
    );
    this.storming = false;
    return { hubs: online.length, back, allBackMs: back === online.length ? last - started : performance.now() - started, attempts };
  }

  /** Says bye from every session, then drops what is left after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    clearInterval(this.heartbeats);
    for (let i = 0; i < this.hubs.count; i++) this.hubs.bye(i);
    await sleep(graceMs);
    for (let i = 0; i < this.hubs.count; i++) void this.hubs.terminate(i);
    this.wheel.close();
  }

  /** TimerTarget: hub `i`'s reconnect is due. */
  onTimer(i: number): void {
    this.retrying[i] = 0;
    if (this.stopping || this.storming || this.hubs.connected(i)) return;
    void this.connectOne(i, 'connect').then((ok) => {
      if (!ok) this.scheduleReconnect(i);
    });
  }

  /** A wait on the worker's wheel (ramps and storm backoffs: no timer of their own). */
  private after(ms: number): Promise<void> {
    return new Promise((resolve) => this.wheel.schedule(ms, { onTimer: () => resolve() }));
  }

  /** One connect (errors counted as `<phase>:<code>`), then the fill frames. */
  private async connectOne(i: number, phase: 'connect' | 'storm'): Promise<boolean> {
    const m = this.metrics;
    try {
      m.record('connect', await this.dial(i));
    } catch (err) {
      m.counters.connectFailures++;
      // a close carries its code (`connect:closed:1006`): which side closed, and why, at a glance
      const code = err instanceof HubClientError ? (err.closeCode === undefined ? err.code : `${err.code}:${err.closeCode}`) : 'connect_failed';
      m.bump(`${phase}:${code}`);
      return false;
    }
    m.counters.connects++;
    m.counters.connected++;
    this.attempt[i] = 0;
    if (this.fillFrames !== null) {
      // made for each hub when its ids are its own: nothing kept per hub
      const fill = this.config.deviceIds === 'per-hub' ? fillFrames(this.config.devices, this.hubs.ids[i]) : this.fillFrames;
      this.hubs.devices(i, fill.list);
      if (this.hubs.report(i, fill.state)) m.counters.reportsSent++;
    }
    return true;
  }

  /** One connect, retried at once on the next source port when the chosen one was taken. */
  private async dial(i: number): Promise<number> {
    for (let tries = 0; ; tries++) {
      try {
        return await this.hubs.connect(i);
      } catch (err) {
        if (!(err instanceof HubClientError) || !PORT_TAKEN.has(err.code) || tries >= MAX_PORT_TRIES) throw err;
        this.metrics.bump('source:port_taken');
      }
    }
  }

  private onSessionClosed(i: number, code: number): void {
    this.metrics.counters.connected--;
    if (this.stopping || this.storming) return;
    this.metrics.counters.disconnects++;
    this.metrics.bump(`close:${code}`);
    if (this.config.reconnect) this.scheduleReconnect(i);
  }

  /** Full-jitter backoff from 1 s, at most 30 s. */
  private scheduleReconnect(i: number): void {
    if (this.retrying[i] === 1 || this.stopping) return;
    this.retrying[i] = 1;
    const delay = backoffMs(this.attempt[i]!, 1_000, 30_000);
    this.attempt[i] = Math.min(255, this.attempt[i]! + 1);
    this.wheel.schedule(delay, this, i);
  }
}

/** The code an admin call failed with: the API's error code, the socket's, or `failed`. */
function errorCode(err: unknown): string {
  return err instanceof AdminError || err instanceof NoAnswerError ? err.code : 'failed';
}

/** 0 .. n-1: the hub numbers a phase walks over. */
function indices(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * The device list and every device's starting state of a hub with `n` devices (a fixed state per
 * kind); with `hubId`, the devices' ids are `<hubId>-<j>` instead of `dev-<j>`.
 */
function fillFrames(n: number, hubId?: string): { list: DeviceInfo[]; state: Record<string, Attrs> } {
  const state: Record<string, Attrs> = {};
  const middle = () => 0.5;
  const list = deviceList(n);
  for (let j = 0; j < n; j++) {
    const { spec } = deviceAt(j);
    if (hubId !== undefined) list[j]!.d = `${hubId}-${j}`;
    state[list[j]!.d] = spec.init(middle);
  }
  return { list, state };
}
