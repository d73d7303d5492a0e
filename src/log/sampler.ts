import { monotonicMs } from '../actors/clock.js';
import type { Logger } from './logger.js';

interface Window {
  start: number;
  logged: number;
  skipped: number;
}

/** Keys past this many share one window (`*`): a flood from many sources cannot grow the map. */
const MAX_KEYS = 10_000;
const OVERFLOW = '*';

/**
 * Per-key rate limit of log lines: at most `limit` admitted per key and window, the rest counted.
 * `sweep` hands back what each ended window skipped and forgets ended windows, so the map holds only
 * the keys seen in the current window.
 */
export class Sampler {
  private readonly windows = new Map<string, Window>();
  /** skips of windows that ended while their key was in use, not yet swept */
  private pending: Array<{ key: string; skipped: number }> = [];

  constructor(
    /** lines per key and window; 0 admits none */
    readonly limit: number,
    /** @default 1_000 (ms) */
    readonly windowMs = 1_000,
  ) {}

  /** true: log this line; false: it was counted as skipped. */
  admit(key: string, now: number): boolean {
    let w = this.windows.get(key);
    if (w === undefined && this.windows.size >= MAX_KEYS) {
      key = OVERFLOW;
      w = this.windows.get(key);
    }
    if (w === undefined) {
      w = { start: now, logged: 0, skipped: 0 };
      this.windows.set(key, w);
    } else if (now - w.start >= this.windowMs) {
      if (w.skipped > 0) this.pending.push({ key, skipped: w.skipped });
      w.start = now;
      w.logged = 0;
      w.skipped = 0;
    }
    if (w.logged < this.limit) {
      w.logged++;
      return true;
    }
    w.skipped++;
    return false;
  }

  /** Windows ended by `now`: removed, and those that skipped lines returned with their count. */
  sweep(now: number): Array<{ key: string; skipped: number }> {
    const out = this.pending;
    this.pending = [];
    for (const [key, w] of this.windows) {
      if (now - w.start < this.windowMs) continue;
      this.windows.delete(key);
      if (w.skipped > 0) out.push({ key, skipped: w.skipped });
    }
    return out;
  }

  /** true when skipped lines wait to be reported by sweep. */
  get skipping(): boolean {
    if (this.pending.length > 0) return true;
    for (const w of this.windows.values()) if (w.skipped > 0) return true;
    return false;
  }

  /** keys with a window (bounded by MAX_KEYS + 1) */
  get size(): number {
    return this.windows.size;
  }
}

/**
 * A log line kept to `limit` per key and window (a flood cannot fill the disk): past it, one summary
 * line per key and window with the count skipped (`skipped`, `windowMs`, and the key's field). One
 * timer per instance, armed only while lines are being skipped.
 */
export class SampledLog {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly log: Logger,
    private readonly sampler: Sampler,
    /** the summary line's `msg` */
    private readonly summaryMsg: string,
    /** the field the key is written as in the summary (`route`, `remote`) */
    private readonly keyField: string,
    /** windows are measured on the monotonic clock: a step of the wall clock back silenced every key that had one for the step */
    private readonly now: () => number = monotonicMs,
    /** the level of `write`'s lines and of the summary */
    private readonly level: 'info' | 'warn' | 'error' = 'info',
  ) {}

  /** true: write this key's line now; false: counted, and reported in the window's summary. */
  admit(key: string): boolean {
    if (this.sampler.admit(key, this.now())) return true;
    this.timer ??= setTimeout(() => this.flush(), this.sampler.windowMs).unref();
    return false;
  }

  /** Logs `fields` at info unless info is off or this key is over its rate. */
  info(key: string, fields: Record<string, unknown>, msg: string): void {
    if (this.log.isLevelEnabled('info') && this.admit(key)) this.log.info(fields, msg);
  }

  /** Logs `fields` at this log's level unless that level is off or this key is over its rate. */
  write(key: string, fields: Record<string, unknown>, msg: string): void {
    if (this.log.isLevelEnabled(this.level) && this.admit(key)) this.log[this.level](fields, msg);
  }

  /**
   * Writes the summaries of ended windows (`final`: of every window, as its owner stops); re-arms
   * while lines are still being skipped.
   */
  flush(final = false): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const { key, skipped } of this.sampler.sweep(final ? Infinity : this.now())) {
      this.log[this.level]({ [this.keyField]: key, skipped, windowMs: this.sampler.windowMs }, this.summaryMsg);
    }
    if (this.sampler.skipping) this.timer = setTimeout(() => this.flush(), this.sampler.windowMs).unref();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/**
 * Failures that come in floods when a backend is away (every handshake of a reconnect storm fails
 * alike): @default 10 lines per kind and 10 s, then one summary at the same level with the count.
 */
export function failureLog(log: Logger, summaryMsg: string, level: 'warn' | 'error', perKind = 10, windowMs = 10_000): SampledLog {
  return new SampledLog(log, new Sampler(perKind, windowMs), summaryMsg, 'kind', monotonicMs, level);
}

/** Refusals logged per source address: @default 10 lines per source and 10 s, then one summary. */
export function refusalLog(log: Logger, summaryMsg: string, perSource = 10, windowMs = 10_000): SampledLog {
  return new SampledLog(log, new Sampler(perSource, windowMs), summaryMsg, 'remote');
}

const perLog = new WeakMap<Logger, Map<string, SampledLog>>();

/**
 * The SampledLog of `summaryMsg` for `log`, made once: every session writing to one node's log
 * shares its budget (10 lines per key and 10 s), so no number of sessions multiplies the lines.
 */
export function sharedSampledLog(log: Logger, summaryMsg: string, keyField: string, perKey = 10, windowMs = 10_000): SampledLog {
  let logs = perLog.get(log);
  if (logs === undefined) perLog.set(log, (logs = new Map()));
  let sampled = logs.get(summaryMsg);
  if (sampled === undefined) logs.set(summaryMsg, (sampled = new SampledLog(log, new Sampler(perKey, windowMs), summaryMsg, keyField)));
  return sampled;
}
