/**
 * Whether the cluster's Redis still holds its data. A Redis restarted without persistence, a
 * FLUSHALL or an empty replacement answers every call as before, so nothing else notices: hubs were
 * acknowledged into shadows of hubs the registry no longer knew, rules deleted by the loss fired
 * from the nodes' caches, and no line, metric or alert said a word (review "redisloss").
 *
 * The mark is the salt of the cluster's secrets record (`<prefix>cluster:secrets`), written once by
 * the first node ever started and never changed: each node takes it at start and reads it again
 * every `everyMs`. Gone or another value: Redis lost its data. The node says so once and notes the
 * loss in Redis (`<prefix>cluster:data-lost`, with the salt from before it), so that a node started
 * since, whose start wrote a record of its own, knows it too, and writes the note again if Redis is
 * emptied again (review "diff28"). The loss is over when the salt from before it is back (a restore)
 * or an operator accepts it (`SET <prefix>cluster:data-lost accepted`, which the nodes turn into
 * `accepted:<salt>`, writing a new record first when none is there): a salt of any other node's
 * making ends nothing (review "diff29"). A loss's note beside the very salt it names is a restore
 * that kept it (key by key): deleted, not a loss (review "diff30").
 */
import type { Logger } from '../log/logger.js';

export interface RedisDataWatchDeps {
  /** the record's salt as Redis holds it now, and the loss note (rejects while Redis is away) */
  readMark(): Promise<{ salt?: string; note?: string }>;
  /** writes a loss's note while the note and salt are still those the node read */
  noteLost(note: string, seen: { salt?: string; note?: string }): Promise<void>;
  /** turns an operator's bare `accepted` into `accepted:<salt>` */
  noteAccepted(salt: string): Promise<void>;
  /** deletes the note while it is the one given */
  clearNote(note: string): Promise<void>;
  /** the record's salt, `fresh` written first when there is none (the shared-secrets check's own call) */
  saltOr(fresh: string): Promise<string>;
  /** a salt of this node's making, for an acceptance that finds no record */
  freshSalt(): string;
  log: Logger;
  /** told once at each loss: the node lets go of what it cached from the lost data */
  onLost(): void;
  /** how often to look (ms) */
  everyMs: number;
}

const ACCEPTED = 'accepted';

/** What a note says: a loss (when, and the salt before it), an acceptance (of the loss that left `salt`), or nothing. */
type Note = { kind: 'none' } | { kind: 'loss'; at: number; salt: string | undefined } | { kind: 'accepted'; salt: string | undefined };

function readNote(text: string | undefined): Note {
  if (text === undefined) return { kind: 'none' };
  // an operator's word as typed: `Accepted`, or `accepted\n` from `echo accepted | redis-cli -x SET` (review "diff31")
  const word = text.trim().toLowerCase();
  if (word === ACCEPTED) return { kind: 'accepted', salt: undefined };
  if (text.startsWith(`${ACCEPTED}:`)) return { kind: 'accepted', salt: text.slice(ACCEPTED.length + 1) };
  try {
    const { at, salt } = JSON.parse(text) as { at?: unknown; salt?: unknown };
    if (typeof at === 'number') return { kind: 'loss', at, salt: typeof salt === 'string' ? salt : undefined };
  } catch {
    // below
  }
  // a note none of the nodes wrote: not a loss (a node that finds one writes its own over it)
  return { kind: 'none' };
}

export class RedisDataWatch {
  /** the salt of the data this node works with */
  #adopted: string | undefined;
  /** while lost: the salt from before the loss, whose return is a restore */
  #awaited: string | undefined;
  #lostSince: number | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** the look under way, and when the last began (`recheck` shares it) */
  #looking: Promise<void> | null = null;
  #lookedAt = 0;

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
    const note = readNote(mark.note);
    if (note.kind === 'loss' && !this.#restoredBeside(note, mark)) this.#lost(note.at, note.salt, true);
    // through the shared look: a timed look and a handshake's never run at once
    this.#timer = setInterval(() => void this.recheck(0), this.deps.everyMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /**
   * Whether the data is lost, looked at again unless a look began within `freshMs`: asked by a
   * hub's admission, so that a hub reconnecting before the next timed look after a loss is told to
   * retry, not refused for good (review "diff31"); one look at a time, shared, so at most 20 a
   * second however many hubs connect.
   */
  async recheck(freshMs = 50): Promise<boolean> {
    if (this.#looking === null && Date.now() - this.#lookedAt >= freshMs) this.#looking = this.check().finally(() => (this.#looking = null));
    await this.#looking;
    return this.#lostSince !== null;
  }

  /** One look (the timer's; tests call it). A Redis that does not answer says nothing of its data: an outage is told elsewhere. */
  async check(): Promise<void> {
    this.#lookedAt = Date.now();
    let mark: { salt?: string; note?: string };
    try {
      mark = await this.deps.readMark();
    } catch {
      return;
    }
    let { salt } = mark;
    const note = readNote(mark.note);
    // an acceptance of the loss that left this salt (or the operator's bare word): that data is the cluster's now
    if (note.kind === 'accepted' && (note.salt === undefined || note.salt === salt)) {
      if (note.salt === undefined) {
        try {
          // no record yet: one of this node's making, so that the next loss has a salt to miss (review "diff30")
          salt ??= await this.deps.saltOr(this.deps.freshSalt());
          await this.deps.noteAccepted(salt);
        } catch {
          return;
        }
      }
      if (this.#lostSince !== null) this.#clear(salt, 'accepted');
      else if (salt !== this.#adopted) {
        // a loss this node did not see (frozen, cut off) was accepted meanwhile: its caches are of the old data
        this.#adopted = salt;
        this.deps.log.warn("Redis holds other data than this node started with, its loss accepted while this node did not look: what it cached goes");
        this.deps.onLost();
      }
      return;
    }
    if (this.#restoredBeside(note, mark)) {
      if (this.#lostSince !== null) this.#clear(salt, 'restored');
      return;
    }
    if (this.#lostSince === null) {
      // started with no record (it was lost before the watch read it): the first one written is the cluster's
      this.#adopted ??= salt;
      if (note.kind === 'loss') return this.#lost(note.at, note.salt, true);
      if (salt === this.#adopted) return;
      this.#lost(Date.now(), this.#adopted, false);
    } else if (salt !== undefined && salt === this.#awaited) {
      return this.#clear(salt, 'restored');
    }
    // noted for every node, again after a second emptying (only over the note and salt just read)
    if (note.kind !== 'loss') await this.deps.noteLost(JSON.stringify({ at: this.#lostSince, ...(this.#awaited !== undefined ? { salt: this.#awaited } : {}) }), mark).catch(() => undefined);
  }

  /** A loss's note beside the very salt it names: a restore that kept the note (key by key). Deleted, unless written over since. */
  #restoredBeside(note: Note, mark: { salt?: string; note?: string }): boolean {
    if (note.kind !== 'loss' || note.salt === undefined || note.salt !== mark.salt) return false;
    void this.deps.clearNote(mark.note!).catch(() => undefined);
    return true;
  }

  #lost(at: number, awaited: string | undefined, noted: boolean): void {
    this.#lostSince = at;
    this.#awaited = awaited;
    this.deps.log.error(
      { noted },
      "Redis lost its data: the cluster's secrets record this node started with is gone (a restart without persistence, a FLUSHALL, an empty replacement). " +
        'Hub records and secrets, rules, scenes, settings and pending delays went with it; hubs not known any more are told to retry later. Restore Redis from its backup (runbook HubtierRedisDataLost)',
    );
    this.deps.onLost();
  }

  #clear(salt: string | undefined, how: 'restored' | 'accepted'): void {
    this.#lostSince = null;
    this.#awaited = undefined;
    this.#adopted = salt;
    this.deps.log.warn({ how }, "Redis holds the cluster's data again (restored, or its loss accepted): the data-loss flag is cleared");
  }
}
