import { NoAnswerError, errorCodeOf, type AdminClient } from '../wire/admin.js';
import { sleep } from '../lib/async.js';
import type { Deliveries } from './deliveries.js';
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
 * it missed, so the offered rate holds. `at` gives when each of those sends was due, which is what
 * a latency is measured from, so the lateness is in it (no coordinated omission).
 */
export class Pacer {
  private owed = 0;
  /** the last `due`'s start (ms) and what was owed then, for `at` */
  private from: number;
  private owedBefore = 0;

  /**
   * `perMs` sends per ms from `last` (ms, the clock `due` is given). `tickMs`: how often `due` is
   * meant to be called; a send is not due before the tick meant to carry it (0: the rate's own schedule).
   */
  constructor(
    private readonly perMs: number,
    private last: number,
    private readonly tickMs = 0,
  ) {
    this.from = last;
  }

  /** How many sends are due at `now` (ms): the whole ones owed since the start, less those given. */
  due(now: number): number {
    this.from = this.last;
    this.owedBefore = this.owed;
    this.owed += (now - this.last) * this.perMs;
    this.last = now;
    const whole = Math.floor(this.owed);
    this.owed -= whole;
    return whole;
  }

  /**
   * When send `k` (from 0) of the last `due` was due (ms, the same clock): by the rate's schedule,
   * but not before the tick after the previous `due` was meant to fire. An on-time tick's sends are
   * due about when it fires; a late tick's, before it, by as much as it was late.
   */
  at(k: number): number {
    const byRate = this.from + (k + 1 - this.owedBefore) / this.perMs;
    return Math.min(this.last, Math.max(byRate, this.from + this.tickMs));
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

/** How long an HTTP command may go unanswered before it fails `timeout`; a drain never waits longer. */
export const COMMAND_TIMEOUT_MS = 60_000;

/** What a drain left open, each counted as an error and recorded at its age when the drain ended. */
export interface Drained {
  commandsUnanswered: number;
  reportsUnacknowledged: number;
  reportsUndelivered: number;
}

export class Traffic {
  private reportTimer: NodeJS.Timeout | null = null;
  private commandTimer: NodeJS.Timeout | null = null;
  /** commands sent and not answered yet: id → when each was due (performance.now()) */
  private readonly open = new Map<number, number>();
  private nextCommand = 0;

  constructor(
    private readonly pool: HubPool,
    private readonly devices: number,
    private readonly metrics: WorkerMetrics,
    private readonly adminFor: (target: number) => AdminClient,
    private readonly deliveries: Deliveries,
  ) {}

  /**
   * Every hub reports every `everyMs`, spread evenly (0 stops). A report sets one device's
   * `temperature` and `lt`, when it was due (wall clock): the app subscriber that receives it
   * measures the latency, and report → ack runs from the same due time.
   */
  reports(everyMs: number): void {
    if (this.reportTimer) clearInterval(this.reportTimer);
    this.reportTimer = null;
    const hubs = this.pool.hubs;
    if (everyMs <= 0 || hubs.count === 0) return;
    const m = this.metrics;
    const perMs = hubs.count / everyMs;
    const tick = tickMs(perMs, REPORT_TICK_MS);
    const pace = new Pacer(perMs, performance.now(), tick);
    let cursor = Math.floor(Math.random() * hubs.count);
    const n = Math.max(1, this.devices);
    this.reportTimer = setInterval(() => {
      const due = pace.due(performance.now());
      for (let k = 0; k < due; k++) {
        const i = cursor++ % hubs.count;
        const dev = `dev-${(cursor * 7) % n}`;
        const at = pace.at(k);
        const lt = performance.timeOrigin + at;
        if (hubs.report(i, { [dev]: { temperature: 15 + ((cursor * 13) % 150) / 10, lt } }, undefined, at)) {
          m.counters.reportsSent++;
          this.deliveries.sent(hubs.homes[i]!, lt);
        } else m.counters.reportsSkipped++;
      }
    }, tick);
  }

  /**
   * HTTP commands (`set on`) per second over this worker's hubs, each to the hub's own node (0
   * stops). A command's latency runs from when it was due; one due for a hub not connected is
   * counted as skipped (`commandsSkipped`), not sent.
   */
  commands(perSec: number): void {
    if (this.commandTimer) clearInterval(this.commandTimer);
    this.commandTimer = null;
    const hubs = this.pool.hubs;
    if (perSec <= 0 || hubs.count === 0) return;
    const m = this.metrics;
    const perMs = perSec / 1000;
    const tick = tickMs(perMs, COMMAND_TICK_MS);
    const pace = new Pacer(perMs, performance.now(), tick);
    this.commandTimer = setInterval(() => {
      const due = pace.due(performance.now());
      for (let k = 0; k < due; k++) {
        const i = Math.floor(Math.random() * hubs.count);
        if (!hubs.connected(i)) {
          m.counters.commandsSkipped++;
          continue;
        }
        if (this.open.size >= MAX_INFLIGHT) {
          m.bump('command:client_backlog');
          continue;
        }
        const dev = `dev-${Math.floor(Math.random() * Math.max(1, this.devices))}`;
        const id = this.nextCommand++;
        this.open.set(id, pace.at(k));
        m.counters.commandsSent++;
        this.adminFor(hubs.target[i]!)
          .command(hubs.ids[i]!, dev, { set: { on: Math.random() < 0.5 } })
          .then(
            (res) => {
              // a drain that gave up on it has counted it already
              const started = this.open.get(id);
              if (started === undefined) return;
              this.open.delete(id);
              if (res.status === 200) {
                m.counters.commandsOk++;
                m.record('command', performance.now() - started);
              } else {
                m.counters.commandsFailed++;
                m.bump(`command:${errorCodeOf(res)}`);
              }
            },
            (err: unknown) => {
              if (!this.open.delete(id)) return;
              m.counters.commandsFailed++;
              m.bump(`command:${err instanceof NoAnswerError ? err.code : 'failed'}`);
            },
          );
      }
    }, tick);
  }

  stop(): void {
    this.reports(0);
    this.commands(0);
  }

  /**
   * The end of a run: stops sending, waits up to `waitMs` for the commands in flight to be answered,
   * the reports of connected hubs to be acknowledged and those of followed homes to reach their
   * apps; whatever is still open is an error (`command:unanswered`, `report:unacknowledged`,
   * `report:undelivered`, one per app that did not get it) and a latency sample at its age now.
   */
  async drain(waitMs: number): Promise<Drained> {
    this.stop();
    const hubs = this.pool.hubs;
    const m = this.metrics;
    const end = performance.now() + Math.min(waitMs, COMMAND_TIMEOUT_MS);
    while (performance.now() < end && (this.open.size > 0 || hubs.unacknowledged() > 0 || this.deliveries.size > 0)) await sleep(Math.min(20, end - performance.now()));
    const now = performance.now();
    const out: Drained = { commandsUnanswered: this.open.size, reportsUnacknowledged: 0, reportsUndelivered: 0 };
    for (const started of this.open.values()) m.record('command', now - started);
    this.open.clear();
    hubs.forgetUnacknowledged(now, (ageMs) => {
      out.reportsUnacknowledged++;
      m.record('reportToAck', ageMs);
    });
    for (const { ageMs, n } of this.deliveries.forgetMissing(wallNow())) {
      out.reportsUndelivered += n;
      m.record('reportToApp', ageMs, n);
    }
    m.counters.commandsUnanswered += out.commandsUnanswered;
    m.counters.reportsUnacknowledged += out.reportsUnacknowledged;
    m.counters.reportsUndelivered += out.reportsUndelivered;
    m.bump('command:unanswered', out.commandsUnanswered);
    m.bump('report:unacknowledged', out.reportsUnacknowledged);
    m.bump('report:undelivered', out.reportsUndelivered);
    return out;
  }
}
