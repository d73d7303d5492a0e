/**
 * Whether the cluster's Redis still holds its data. A Redis restarted without persistence, a
 * FLUSHALL or an empty replacement answers every call as before, so nothing else notices: hubs were
 * acknowledged into shadows of hubs the registry no longer knew, rules deleted by the loss fired
 * from the nodes' caches, and no line, metric or alert said a word (review "redisloss").
 *
 * The mark is the salt of the cluster's secrets record (`<prefix>cluster:secrets`), written once by
 * the first node ever started and never changed: each node reads it at start and again every
 * `everyMs`. Gone or another value: Redis lost its data (logged at error once, `lost` true until the
 * value is back, as after a restore from a backup). The watch never writes it again itself: every
 * node sees the loss, and one started since writes a new salt, which the others tell from theirs.
 */
import type { Logger } from '../log/logger.js';

export interface RedisDataWatchDeps {
  /** the record's salt as Redis holds it now; undefined: none (rejects while Redis is away) */
  readMark(): Promise<string | undefined>;
  log: Logger;
  /** told once at each loss: the node lets go of what it cached from the lost data */
  onLost(): void;
  /** how often to look (ms) */
  everyMs: number;
}

export class RedisDataWatch {
  #adopted: string | undefined;
  #lostSince: number | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: RedisDataWatchDeps) {}

  /** Since when (ms, wall clock) Redis has been found without the data this node started with; null while it has it. */
  get lostSince(): number | null {
    return this.#lostSince;
  }

  /** Takes the mark as it is now (after the shared-secrets check wrote it) and looks again every `everyMs`. */
  async start(): Promise<void> {
    this.#adopted = await this.deps.readMark();
    this.#timer = setInterval(() => void this.check(), this.deps.everyMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** One look (the timer's; tests call it). A Redis that does not answer says nothing of its data: an outage is told elsewhere. */
  async check(): Promise<void> {
    let mark: string | undefined;
    try {
      mark = await this.deps.readMark();
    } catch {
      return;
    }
    if (this.#adopted === undefined) {
      // started with no record (it was lost before the watch read it): the first one written is the cluster's
      this.#adopted = mark;
      return;
    }
    const lost = mark !== this.#adopted;
    if (lost === (this.#lostSince !== null)) return;
    if (lost) {
      this.#lostSince = Date.now();
      this.deps.log.error(
        { found: mark === undefined ? 'none' : 'another' },
        "Redis lost its data: the cluster's secrets record this node started with is gone (a restart without persistence, a FLUSHALL, an empty replacement). " +
          'Hub records and secrets, rules, scenes, settings and pending delays went with it; hubs not known any more are told to retry later. Restore Redis from its backup (runbook HubtierRedisDataLost)',
      );
      this.deps.onLost();
    } else {
      this.#lostSince = null;
      this.deps.log.warn("Redis holds the cluster's secrets record this node started with again (restored): the data-loss flag is cleared");
    }
  }
}
