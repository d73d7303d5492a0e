import type { Attrs, DeviceInfo } from '../../src/index.js';
import { mapLimit, sleep } from '../lib/async.js';
import { AdminClient, AdminError, NoAnswerError } from '../wire/admin.js';
import { deviceAt, deviceList } from '../wire/devices.js';
import { HubClientError, hubEndpoint } from '../wire/handshake.js';
import type { ConnectResult, HubSpec, StormResult, WorkerConfig } from './ipc.js';
import { LeanHub, type LeanHubEvents, type LeanTarget } from './lean-hub.js';
import type { WorkerMetrics } from './metrics.js';
import { PORT_TAKEN, type SourcePorts } from './sources.js';

/**
 * A worker's share of the hubs (lean hubs): provisioning, connecting at a ramp, reconnecting
 * sessions that drop, the reconnect storm, and one heartbeat sweep a second for all of them.
 * After each welcome a hub may send its full device list and every device's starting state (from
 * the catalogue), so the server's shadow is filled as a real hub's would be.
 */

interface Slot {
  spec: HubSpec;
  hub: LeanHub;
  attempt: number;
  /** a reconnect is scheduled or under way */
  retrying: boolean;
}

/** Calls of the admin API per worker at once while provisioning. */
const PROVISION_CONCURRENCY = 16;
/** Source ports tried in a row when each one is taken. */
const MAX_PORT_TRIES = 32;

export class HubPool {
  readonly slots: Slot[] = [];
  /** while a storm or the stop runs, dropped sessions are not reconnected by the pool */
  storming = false;
  private stopping = false;
  private readonly heartbeats: NodeJS.Timeout;
  /** what every hub sends after its welcome (built once: one device list and one report) */
  private readonly fillFrames: { list: DeviceInfo[]; state: Record<string, Attrs> } | null;

  constructor(
    private readonly config: WorkerConfig,
    private readonly metrics: WorkerMetrics,
    sources: SourcePorts,
  ) {
    const events: LeanHubEvents = {
      onClose: (hub, code) => this.onSessionClosed(this.slots[hub.index]!, code),
      onErrorFrame: (_hub, code) => metrics.bump(`frame:${code}`),
      onCommand: () => metrics.counters.commandsAnswered++,
      onAck: () => metrics.counters.acks++,
      onReportAck: (_hub, ms) => metrics.record('reportToAck', ms),
    };
    const targets: LeanTarget[] = config.targets.map((url) => ({
      endpoint: hubEndpoint(url, config.path),
      signed: config.signed,
      hello: config.hello !== false,
      connectTimeoutMs: config.connectTimeoutMs,
      source: () => sources.next(),
      events,
    }));
    for (const spec of config.hubs) {
      const hub = new LeanHub(targets[spec.target]!, spec.id, spec.home, spec.secret ?? '', this.slots.length);
      this.slots.push({ spec, hub, attempt: 0, retrying: false });
    }
    metrics.counters.hubs = this.slots.length;
    this.fillFrames = config.fill && config.hello !== false && config.devices > 0 ? fillFrames(config.devices) : null;
    // one sweep a second: a heartbeat from every hub that sent nothing for most of its interval
    this.heartbeats = setInterval(() => {
      const now = Date.now();
      for (const { hub } of this.slots) if (hub.hb > 0 && hub.connected && now - hub.lastSent >= hub.hb - 1_500) hub.heartbeat();
    }, 1_000);
    this.heartbeats.unref();
  }

  /** Provisions every hub without a known secret, through the node it will connect to. */
  async provision(adminFor: (target: number) => AdminClient): Promise<{ ok: number; failed: number }> {
    let ok = 0;
    let failed = 0;
    await mapLimit(this.slots, PROVISION_CONCURRENCY, async (slot) => {
      if (slot.spec.secret !== undefined) return;
      try {
        const done = await adminFor(slot.spec.target).provisionHub(slot.spec.id, slot.spec.home, 'load-hub');
        if ('secret' in done) {
          slot.spec.secret = done.secret;
          slot.hub.secret = done.secret;
          ok++;
          return;
        }
        this.metrics.bump('provision:already_exists');
      } catch (err) {
        this.metrics.bump(`provision:${err instanceof AdminError || err instanceof NoAnswerError ? err.code : 'failed'}`);
      }
      failed++;
    });
    return { ok, failed };
  }

  /** Connects every hub not connected, `perSec` new connections a second at most (0: no limit). */
  async connectAll(perSec: number): Promise<ConnectResult> {
    const started = performance.now();
    let ok = 0;
    let failed = 0;
    let n = 0;
    await mapLimit(this.slots, this.config.connectConcurrency, async (slot) => {
      if (slot.hub.connected) return;
      if (perSec > 0) {
        // the ramp: connection k starts no earlier than k / perSec seconds after the first
        const wait = started + (n++ * 1000) / perSec - performance.now();
        if (wait > 0) await sleep(wait);
      }
      if (await this.connectOne(slot, 'connect')) ok++;
      else failed++;
    });
    return { ok, failed, elapsedMs: performance.now() - started };
  }

  /** Every connected hub drops its TCP connection at once, then reconnects at once (with a short backoff on failure). */
  async storm(deadlineMs: number): Promise<StormResult> {
    const online = this.slots.filter((s) => s.hub.connected);
    this.storming = true;
    const started = performance.now();
    await Promise.all(online.map((s) => s.hub.terminate()));
    let back = 0;
    let attempts = 0;
    let last = 0;
    const deadline = started + deadlineMs;
    await Promise.all(
      online.map(async (slot) => {
        for (let attempt = 0; performance.now() < deadline && !this.stopping; attempt++) {
          attempts++;
          if (await this.connectOne(slot, 'storm')) {
            back++;
            last = performance.now();
            return;
          }
          await sleep(Math.random() * Math.min(5_000, 100 * 2 ** Math.min(attempt, 6)));
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
    for (const { hub } of this.slots) if (hub.connected) hub.bye();
    await sleep(graceMs);
    for (const { hub } of this.slots) void hub.terminate();
  }

  /** One connect (errors counted as `<phase>:<code>`), then the fill frames. */
  private async connectOne(slot: Slot, phase: 'connect' | 'storm'): Promise<boolean> {
    const m = this.metrics;
    try {
      m.record('connect', await this.dial(slot.hub));
    } catch (err) {
      m.counters.connectFailures++;
      m.bump(`${phase}:${err instanceof HubClientError ? err.code : 'connect_failed'}`);
      return false;
    }
    m.counters.connects++;
    m.counters.connected++;
    slot.attempt = 0;
    if (this.fillFrames !== null) {
      slot.hub.devices(this.fillFrames.list);
      if (slot.hub.report(this.fillFrames.state)) m.counters.reportsSent++;
    }
    return true;
  }

  /** One connect, retried at once on the next source port when the chosen one was taken. */
  private async dial(hub: LeanHub): Promise<number> {
    for (let tries = 0; ; tries++) {
      try {
        return await hub.connect();
      } catch (err) {
        if (!(err instanceof HubClientError) || !PORT_TAKEN.has(err.code) || tries >= MAX_PORT_TRIES) throw err;
        this.metrics.bump('source:port_taken');
      }
    }
  }

  private onSessionClosed(slot: Slot, code: number): void {
    this.metrics.counters.connected--;
    if (this.stopping || this.storming) return;
    this.metrics.counters.disconnects++;
    this.metrics.bump(`close:${code}`);
    if (this.config.reconnect) this.scheduleReconnect(slot);
  }

  /** Full-jitter backoff from 1 s, at most 30 s. */
  private scheduleReconnect(slot: Slot): void {
    if (slot.retrying || this.stopping) return;
    slot.retrying = true;
    const delay = Math.random() * Math.min(30_000, 1_000 * 2 ** Math.min(slot.attempt, 5));
    slot.attempt++;
    setTimeout(() => {
      slot.retrying = false;
      if (this.stopping || this.storming || slot.hub.connected) return;
      void this.connectOne(slot, 'connect').then((ok) => {
        if (!ok) this.scheduleReconnect(slot);
      });
    }, delay).unref();
  }
}

/** The device list and every device's starting state of a hub with `n` devices (a fixed state per kind). */
function fillFrames(n: number): { list: DeviceInfo[]; state: Record<string, Attrs> } {
  const state: Record<string, Attrs> = {};
  const middle = () => 0.5;
  for (let j = 0; j < n; j++) {
    const { id, spec } = deviceAt(j);
    state[id] = spec.init(middle);
  }
  return { list: deviceList(n), state };
}
