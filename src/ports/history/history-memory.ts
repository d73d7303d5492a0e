import type { EventHistory, HistoryEntry, HistoryRead, HistoryRetention, Position } from './history.js';
import { checkRead, newEpoch } from './history-read.js';
import { agingNowMs } from '../../actors/clock.js';

interface Stored extends HistoryEntry {
  readonly at: number;
}

interface HomeLog {
  top: number;
  /** entries[head..] are kept; the ones before head wait for compaction */
  entries: Stored[];
  head: number;
}

/**
 * Every home's history in this process (`DATA_DIR=:memory:`): one epoch per process, so a restart
 * tells every app to reload. A removed home keeps its newest offset, so positions stay comparable.
 */
export class MemoryEventHistory implements EventHistory {
  private readonly homes = new Map<string, HomeLog>();
  private readonly epoch = newEpoch();

  /** entries' times on the wall clock, their ages on the earlier of it and the steady one (clock.ts); `now` (tests): both */
  private readonly now: () => number;
  private readonly ageNow: () => number;

  constructor(
    readonly retention: HistoryRetention,
    now?: () => number,
  ) {
    this.now = now ?? Date.now;
    this.ageNow = now ?? agingNowMs;
  }

  append(homeId: string, data: Uint8Array): Promise<Position> {
    return Promise.resolve(this.appendNow(homeId, data));
  }

  appendNow(homeId: string, data: Uint8Array): Position {
    let log = this.homes.get(homeId);
    if (!log) {
      log = { top: 0, entries: [], head: 0 };
      this.homes.set(homeId, log);
    }
    const at = this.now();
    // a copy: an encoder's output is often a view of an 8 KB buffer it shares with later
    // payloads, which a kept view would keep alive whole (about 6 KB per kept event, measured)
    log.entries.push({ offset: ++log.top, data: new Uint8Array(data), at });
    this.trim(log, this.ageNow());
    return { epoch: this.epoch, offset: log.top };
  }

  read(homeId: string, since: Position, upTo: number, limit: number): Promise<HistoryRead> {
    const log = this.homes.get(homeId);
    const pos = { epoch: this.epoch, offset: log?.top ?? 0 };
    const plan = checkRead(pos, since, upTo, limit);
    if (!plan.ok || plan.count === 0 || !log) return Promise.resolve(plan.ok ? { ok: true, epoch: this.epoch, entries: [] } : plan);
    const first = log.entries[log.head];
    const start = first ? log.head + (since.offset + 1 - first.offset) : -1;
    const oldest = log.entries[start];
    if (!first || start < log.head || !oldest || oldest.at < this.ageNow() - this.retention.maxAgeMs) {
      return Promise.resolve({ ok: false, reason: 'too_old', pos });
    }
    const entries = log.entries.slice(start, start + plan.count).map(({ offset, data }) => ({ offset, data }));
    return Promise.resolve({ ok: true, epoch: this.epoch, entries });
  }

  position(homeId: string): Promise<Position> {
    return Promise.resolve({ epoch: this.epoch, offset: this.homes.get(homeId)?.top ?? 0 });
  }

  remove(homeId: string): Promise<void> {
    const log = this.homes.get(homeId);
    if (log) {
      log.entries = [];
      log.head = 0;
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private trim(log: HomeLog, now: number): void {
    const { maxEvents, maxAgeMs } = this.retention;
    while (log.head < log.entries.length && (log.entries.length - log.head > maxEvents || log.entries[log.head]!.at < now - maxAgeMs)) log.head++;
    // compact once the dropped prefix outweighs what is kept: amortised O(1) per append
    if (log.head > 64 && log.head * 2 > log.entries.length) {
      log.entries = log.entries.slice(log.head);
      log.head = 0;
    }
  }
}
