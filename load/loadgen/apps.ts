import type WebSocket from 'ws';
import { backoffMs, mapLimit, sleep } from '../lib/async.js';
import { AdminError, NoAnswerError, type AdminClient } from '../wire/admin.js';
import { AppClientError, forEachState, openApp } from '../wire/app-client.js';
import { Deliveries } from './deliveries.js';
import type { AppSpec, WorkerConfig } from './ipc.js';
import type { WorkerMetrics } from './metrics.js';
import type { SourcePorts } from './sources.js';
import { wallNow } from './traffic.js';

/** Connects an app subscriber tries before it is counted as failed. */
const APP_TRIES = 5;
/** Failures an app retries (after full-jitter backoff from 1 s): the server's temporary refusals and lost connections. */
const TEMPORARY = /^(busy|draining|internal|rate_limited|http_5\d\d|http_429|timeout|error|ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT)$/;

/**
 * A worker's app subscribers: each follows its homes and measures report → app, from the `lt`
 * send time a load report carries to the state event's arrival (or, on the relay floor, the
 * forwarded report frame's).
 */
export class AppPool {
  /** the reports awaited by this pool's open subscribers (the worker's traffic tells it what was sent) */
  readonly deliveries = new Deliveries((home) => this.following.get(home) ?? 0);
  private readonly sockets: Array<WebSocket | null>;
  /** open subscribers by home */
  private readonly following = new Map<string, number>();
  private stopping = false;

  constructor(
    private readonly specs: readonly AppSpec[],
    private readonly config: WorkerConfig,
    private readonly metrics: WorkerMetrics,
    private readonly sources: SourcePorts,
  ) {
    this.sockets = specs.map(() => null);
  }

  /** Opens every subscriber, 32 at a time; with signed hubs each gets a user token from the admin API. */
  async connectAll(adminFor: (target: number) => AdminClient): Promise<{ ok: number; failed: number }> {
    let ok = 0;
    await mapLimit(this.specs, 32, async (spec, i) => {
      if (await this.connect(spec, i, adminFor(spec.target))) ok++;
    });
    return { ok, failed: this.specs.length - ok };
  }

  stop(): void {
    this.stopping = true;
    for (const ws of this.sockets) ws?.close(1000, 'load tool done');
  }

  private async connect(spec: AppSpec, i: number, admin: AdminClient): Promise<boolean> {
    const m = this.metrics;
    let token: string | null = null;
    if (this.config.adminToken !== null && this.config.signed) {
      try {
        token = await admin.appToken(`load-app-${i}`, spec.homes);
      } catch (err) {
        m.bump(`app:token_${err instanceof AdminError || err instanceof NoAnswerError ? err.code : 'failed'}`);
        return false;
      }
    }
    const handlers = {
      message: (msg: Record<string, unknown> | null) => this.onMessage(msg),
      close: () => {
        m.counters.apps--;
        this.sockets[i] = null;
        for (const h of spec.homes) this.following.set(h, (this.following.get(h) ?? 1) - 1);
        if (!this.stopping) m.bump('app:closed');
      },
    };
    for (let attempt = 0; ; attempt++) {
      const opts = { url: this.config.targets[spec.target]!, token, homes: spec.homes, timeoutMs: this.config.connectTimeoutMs, source: this.sources.next() };
      try {
        this.sockets[i] = await openApp(opts, handlers);
        m.counters.apps++;
        for (const h of spec.homes) this.following.set(h, (this.following.get(h) ?? 0) + 1);
        return true;
      } catch (err) {
        const code = err instanceof AppClientError ? err.code : 'error';
        // as an app would: a refusal that may pass later is tried again after a backoff
        if (attempt + 1 >= APP_TRIES || !TEMPORARY.test(code) || this.stopping) {
          m.bump(`app:${code}`);
          return false;
        }
        m.bump(`retry:app:${code}`);
        await sleep(backoffMs(attempt, 1_000, 30_000));
      }
    }
  }

  private onMessage(msg: Record<string, unknown> | null): void {
    const m = this.metrics;
    if (msg === null) return m.bump('app:undecodable');
    if (msg.op === 'err') return m.bump(`app:${String(msg.code)}`);
    const now = wallNow();
    const isState = forEachState(msg, (attrs) => {
      if (typeof attrs.lt !== 'number') return;
      m.record('reportToApp', now - attrs.lt);
      if (this.deliveries.received(attrs.lt)) m.counters.reportsDelivered++;
    });
    if (isState) m.counters.eventsReceived++;
  }
}
