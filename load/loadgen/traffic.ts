import { NoAnswerError, errorCodeOf, type AdminClient } from '../wire/admin.js';
import type { HubPool } from './hub-pool.js';
import type { WorkerMetrics } from './metrics.js';

/**
 * The steady traffic of a worker's scenario: reports from its hubs spread evenly over each
 * report interval, and HTTP commands at a fixed rate to random hubs. Each runs on one interval
 * for the whole worker, never one timer per hub.
 */

/** Wall clock with sub-ms resolution, comparable between processes of one machine. */
export const wallNow = () => performance.timeOrigin + performance.now();

/** the shortest ticks: at high rates a tick sends many (the pacer's share of the elapsed time) */
const REPORT_TICK_MS = 20;
const COMMAND_TICK_MS = 10;
/** the longest tick, whatever the rate (a stop or a rate change never waits on it: it clears the interval) */
const MAX_TICK_MS = 1_000;
/** commands in flight at once; past it a command is counted as `command:client_backlog`, not sent */
const MAX_INFLIGHT = 2_048;

/**
 * Sends at a rate by the clock, not by the ticks: a tick that fires late (a busy worker) sends what
 * it missed, so the offered rate holds and the latency measured includes the lateness.
 */
export class Pacer {
  private owed = 0;

  /** `perMs` sends per ms from `last` (ms, the clock `due` is given) */
  constructor(
    private readonly perMs: number,
    private last: number,
  ) {}

  /** How many sends are due at `now` (ms): the whole ones owed since the start, less those given. */
  due(now: number): number {
    this.owed += (now - this.last) * this.perMs;
    this.last = now;
    const whole = Math.floor(this.owed);
    this.owed -= whole;
    return whole;
  }
}

/**
 * The tick for `perMs` sends per ms: about one send per tick, never shorter than `shortestMs` nor
 * longer than MAX_TICK_MS. A fixed short tick woke each worker 150 times a second at the
 * half-million run's rates (a few reports and commands a second per worker), and a wake-up of a
 * process costs this machine's guest 0.1-0.3 ms of CPU: most of what the load tool spent.
 */
export function tickMs(perMs: number, shortestMs: number): number {
  return Math.min(MAX_TICK_MS, Math.max(shortestMs, 1 / perMs));
}

export class Traffic {
  private reportTimer: NodeJS.Timeout | null = null;
  private commandTimer: NodeJS.Timeout | null = null;
  private inflight = 0;

  constructor(
    private readonly pool: HubPool,
    private readonly devices: number,
    private readonly metrics: WorkerMetrics,
    private readonly adminFor: (target: number) => AdminClient,
  ) {}

  /**
   * Every hub reports every `everyMs`, spread evenly (0 stops). A report sets one device's
   * `temperature` and `lt`, its send time: the app subscriber that receives it measures the latency.
   */
  reports(everyMs: number): void {
    if (this.reportTimer) clearInterval(this.reportTimer);
    this.reportTimer = null;
    const hubs = this.pool.hubs;
    if (everyMs <= 0 || hubs.count === 0) return;
    const perMs = hubs.count / everyMs;
    const pace = new Pacer(perMs, performance.now());
    let cursor = Math.floor(Math.random() * hubs.count);
    const n = Math.max(1, this.devices);
    this.reportTimer = setInterval(() => {
      for (let due = pace.due(performance.now()); due > 0; due--) {
        const i = cursor++ % hubs.count;
        const dev = `dev-${(cursor * 7) % n}`;
        if (hubs.report(i, { [dev]: { temperature: 15 + ((cursor * 13) % 150) / 10, lt: wallNow() } })) this.metrics.counters.reportsSent++;
      }
    }, tickMs(perMs, REPORT_TICK_MS));
  }

  /** HTTP commands (`set on`) per second over this worker's hubs, each to the hub's own node (0 stops). */
  commands(perSec: number): void {
    if (this.commandTimer) clearInterval(this.commandTimer);
    this.commandTimer = null;
    const hubs = this.pool.hubs;
    if (perSec <= 0 || hubs.count === 0) return;
    const m = this.metrics;
    const perMs = perSec / 1000;
    const pace = new Pacer(perMs, performance.now());
    this.commandTimer = setInterval(() => {
      for (let due = pace.due(performance.now()); due > 0; due--) {
        const i = Math.floor(Math.random() * hubs.count);
        if (!hubs.connected(i)) continue;
        if (this.inflight >= MAX_INFLIGHT) {
          m.bump('command:client_backlog');
          continue;
        }
        const dev = `dev-${Math.floor(Math.random() * Math.max(1, this.devices))}`;
        const started = performance.now();
        this.inflight++;
        m.counters.commandsSent++;
        this.adminFor(hubs.target[i]!)
          .command(hubs.ids[i]!, dev, { set: { on: Math.random() < 0.5 } })
          .then(
            (res) => {
              if (res.status === 200) {
                m.counters.commandsOk++;
                m.record('command', performance.now() - started);
              } else {
                m.counters.commandsFailed++;
                m.bump(`command:${errorCodeOf(res)}`);
              }
            },
            (err: unknown) => {
              m.counters.commandsFailed++;
              m.bump(`command:${err instanceof NoAnswerError ? err.code : 'failed'}`);
            },
          )
          .finally(() => this.inflight--);
      }
    }, tickMs(perMs, COMMAND_TICK_MS));
  }

  stop(): void {
    this.reports(0);
    this.commands(0);
  }
}
