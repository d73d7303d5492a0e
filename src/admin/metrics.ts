import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { HubSessionMetrics } from '../actors/hub-session.js';
import type { HubGatewayMetrics } from '../transport/hub-gateway.js';

const FRAME_NAMES: Record<number, string> = { 1: 'hello', 3: 'heartbeat', 4: 'report', 5: 'event', 8: 'result', 9: 'devices', 10: 'error', 12: 'bye' };

/** The node's Prometheus metrics (served on the admin port at /metrics). */
export class NodeMetrics implements HubSessionMetrics, HubGatewayMetrics {
  readonly registry = new Registry();
  private readonly framesIn = new Counter({ name: 'tier_hub_frames_in_total', help: 'Hub frames accepted by type', labelNames: ['type'], registers: [this.registry] });
  private readonly commands = new Counter({ name: 'tier_commands_total', help: 'Commands finished by outcome', labelNames: ['outcome'], registers: [this.registry] });
  private readonly closed = new Counter({ name: 'tier_hub_sessions_closed_total', help: 'Hub sessions closed by close code', labelNames: ['code'], registers: [this.registry] });
  private readonly refused = new Counter({ name: 'tier_hub_upgrades_refused_total', help: 'Hub upgrades refused by error code', labelNames: ['code'], registers: [this.registry] });
  private readonly badFrames = new Counter({ name: 'tier_hub_bad_frames_total', help: 'Hub frames rejected by error code', labelNames: ['code'], registers: [this.registry] });
  readonly actorFailures = new Counter({ name: 'tier_actor_failures_total', help: 'Actor messages that threw', labelNames: ['message'], registers: [this.registry] });
  readonly binding = new Gauge({ name: 'tier_uws_binding_info', help: 'uWebSockets.js build in use (1)', labelNames: ['package', 'native'], registers: [this.registry] });

  constructor(sessions: () => number) {
    new Gauge({ name: 'tier_hub_sessions', help: 'Hub sessions held by this node', registers: [this.registry], collect() { this.set(sessions()); } });
    collectDefaultMetrics({ register: this.registry });
  }

  /**
   * `tier_backend_up{backend}`: 1 while this node reaches the shared backend, 0 while not, read at
   * each scrape. Readiness ignores shared backends (every pod would leave at once): alert on this.
   */
  backendsUp(read: () => Record<string, boolean>): void {
    new Gauge({
      name: 'tier_backend_up',
      help: 'Shared backend reachable from this node (1) or not (0)',
      labelNames: ['backend'],
      registers: [this.registry],
      collect() {
        for (const [backend, up] of Object.entries(read())) this.set({ backend }, up ? 1 : 0);
      },
    });
  }

  /** Counters of the per-frame and per-command paths, bound to their label once (no label look-up per call). */
  private readonly frameCounters = new Map<number, Counter.Internal>();
  private readonly commandCounters = new Map<string, Counter.Internal>();

  frameIn(type: number): void {
    let c = this.frameCounters.get(type);
    if (!c) {
      c = this.framesIn.labels(FRAME_NAMES[type] ?? String(type));
      this.frameCounters.set(type, c);
    }
    c.inc();
  }
  commandDone(outcome: 'ok' | 'failed' | 'timeout' | 'closed'): void {
    let c = this.commandCounters.get(outcome);
    if (!c) {
      c = this.commands.labels(outcome);
      this.commandCounters.set(outcome, c);
    }
    c.inc();
  }
  sessionClosed(reason: string): void {
    this.closed.inc({ code: reason });
  }
  upgradeRefused(code: string): void {
    this.refused.inc({ code });
  }
  badFrame(code: string): void {
    this.badFrames.inc({ code });
  }
}
