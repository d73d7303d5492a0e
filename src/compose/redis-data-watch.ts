/**
 * Whether the cluster's Redis still holds its data. A Redis restarted without persistence, a
 * FLUSHALL or an empty replacement answers every call as before, so nothing else notices: hubs were
 * acknowledged into shadows of hubs the registry no longer knew, rules deleted by the loss fired
 * from the nodes' caches, and no line, metric or alert said a word (review "redisloss").
 *
 * The mark is the salt of the cluster's secrets record (`<prefix>cluster:secrets`), written once by
 * the first node ever started and never changed: each node takes it at start and reads it again
 * every `everyMs`. Gone or another value: Redis lost its data. The node says so once and notes it
 * in Redis (`<prefix>cluster:data-lost`), so that a node started since, which finds a record of its
 * own making, learns of the loss too (review "diff28"). The loss is over once that note is gone
 * and a salt is there: a restore of a backup (which predates the note) or an operator who accepts
 * the loss and deletes it; the node then takes the salt it finds.
 */
import type { Logger } from '../log/logger.js';

export interface RedisDataWatchDeps {
  /** the record's salt as Redis holds it now, and when a node noted the loss (rejects while Redis is away) */
  readMark(): Promise<{ salt?: string; lostAt?: number }>;
  /** notes the loss for every node, unless noted already */
  noteLost(at: number): Promise<void>;
  log: Logger;
  /** told once at each loss: the node lets go of what it cached from the lost data */
  onLost(): void;
  /** how often to look (ms) */
  everyMs: number;
}

export class RedisDataWatch {
  #adopted: string | undefined;
  #lostSince: number | null = null;
  /** the note of this loss was seen in Redis: its absence later means a restore or an operator's word */
  #noted = false;
  #timer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: RedisDataWatchDeps) {}

  /** Since when (ms, wall clock) Redis has been found without the data this node started with; null while it has it. */
  get lostSince(): number | null {
    return this.#lostSince;
  }

  /** Takes the mark as it is now (after the shared-secrets check wrote it) and looks again every `everyMs`. */
  async start(): Promise<void> {
    const mark = await this.deps.readMark();
    this.#adopted = mark.salt;
    // started during a loss another node noted: this start's record is not the cluster's data
    if (mark.lostAt !== undefined) this.#lost(mark.lostAt, true);
    this.#timer = setInterval(() => void this.check(), this.deps.everyMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** One look (the timer's; tests call it). A Redis that does not answer says nothing of its data: an outage is told elsewhere. */
  async check(): Promise<void> {
    let mark: { salt?: string; lostAt?: number };
    try {
      mark = await this.deps.readMark();
    } catch {
      return;
    }
    if (this.#lostSince === null) {
      // started with no record (it was lost before the watch read it): the first one written is the cluster's
      this.#adopted ??= mark.salt;
      if (mark.lostAt === undefined && mark.salt === this.#adopted) return;
      this.#lost(Date.now(), mark.lostAt !== undefined);
    } else if (mark.lostAt !== undefined) {
      this.#noted = true;
      return;
    } else if (mark.salt !== undefined && (mark.salt === this.#adopted || this.#noted)) {
      this.#lostSince = null;
      this.#noted = false;
      this.#adopted = mark.salt;
      this.deps.log.warn("Redis holds the cluster's data again (restored, or its loss accepted): the data-loss flag is cleared");
      return;
    }
    // noted once seen; again when the salt is gone too (flushed again: a node started next would not know)
    if (!this.#noted || mark.salt === undefined) await this.deps.noteLost(this.#lostSince ?? Date.now()).catch(() => undefined);
  }

  #lost(at: number, noted: boolean): void {
    this.#lostSince = at;
    this.#noted = noted;
    this.deps.log.error(
      { noted },
      "Redis lost its data: the cluster's secrets record this node started with is gone (a restart without persistence, a FLUSHALL, an empty replacement). " +
        'Hub records and secrets, rules, scenes, settings and pending delays went with it; hubs not known any more are told to retry later. Restore Redis from its backup (runbook HubtierRedisDataLost)',
    );
    this.deps.onLost();
  }
}
