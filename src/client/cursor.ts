import type { AppEventMessage, Position } from '../../proto/app.js';

/** Events held back while a gap is open; beyond this the oldest are let go (recovery re-sends them). */
const MAX_HELD = 1_000;
/** Events delivered without a position remembered, by content, at most (the newest are kept). */
const MAX_UNPLACED = 64;
/**
 * They are forgotten after this many events with a position: the one that comes again does so at
 * the seam, among the first events with a position after the history is back.
 */
const UNPLACED_FOR = 1_000;
/** Epochs left behind that are remembered (their late events dropped without asking). */
const LEFT_EPOCHS = 4;

/**
 * Where an app is in one home's history: the position of the last event delivered, and the events
 * that arrived ahead of a gap, held until the gap is filled so that every event is delivered once,
 * in offset order. It only decides; the subscription sends requests and calls the app.
 */
export class HomeCursor {
  /** the last event delivered (or the start the server gave); null: none known yet */
  pos: Position | null = null;
  /** events past a gap, ascending by offset, all of pos's epoch */
  private held: AppEventMessage[] = [];
  /**
   * events delivered without a position (the server's history could not store them), by content:
   * one the history had stored after all comes again with its position, after newer ones, and is
   * not delivered twice (it would put a device's older value over a newer one)
   */
  private unplaced: string[] = [];
  /** events with a position checked against `unplaced` since the last one was added */
  private checked = 0;
  /**
   * events returned with a position that were delivered before without one: they move the app's
   * position but are not handed over again (`SubscriptionHandlers.onSkip`)
   */
  readonly skipped = new WeakSet<AppEventMessage>();

  /**
   * Epochs this cursor left at a reload, newest first: their late events are dropped quietly. An
   * event of an epoch it never saw means a reload it did not get (one it could not read: a newer
   * server's reason): that opens a gap, so it asks where it stands instead of dropping all silently.
   */
  private left: string[] = [];
  private unknownEpoch = false;

  /** True while events are held, or one came of an epoch never announced: something is missing. */
  get gapOpen(): boolean {
    return this.held.length > 0 || this.unknownEpoch;
  }

  /**
   * Places an arriving event; returns those to deliver now, in order (none for a duplicate or an
   * event past a gap, which is held), `skipped` ones among them. An event without a position is
   * delivered and moves nothing; one of another epoch is not delivered: the history changed and a
   * reload will say from where.
   */
  place(evt: AppEventMessage): AppEventMessage[] {
    const at = evt.pos;
    if (at === undefined) {
      this.unplaced.push(contentOf(evt));
      if (this.unplaced.length > MAX_UNPLACED) this.unplaced.shift();
      this.checked = 0;
      return [evt];
    }
    if (this.pos === null) {
      this.pos = at;
      return [this.checkFresh(evt), ...this.release()];
    }
    if (at.epoch !== this.pos.epoch) {
      if (!this.left.includes(at.epoch)) this.unknownEpoch = true;
      return [];
    }
    if (at.offset <= this.pos.offset) return [];
    if (at.offset === this.pos.offset + 1) {
      this.pos = at;
      return [this.checkFresh(evt), ...this.release()];
    }
    this.hold(evt);
    return [];
  }

  /**
   * Jumps to a position the server gave (a reload, a subscription that could not recover): held
   * events up to it are dropped, those right after it released.
   */
  jump(pos: Position | null): AppEventMessage[] {
    if (this.pos !== null && pos !== null && pos.epoch !== this.pos.epoch) this.left = [this.pos.epoch, ...this.left.filter((e) => e !== pos.epoch)].slice(0, LEFT_EPOCHS);
    this.pos = pos;
    this.unknownEpoch = false;
    if (pos === null || this.held.some((e) => e.pos!.epoch !== pos.epoch)) this.held = [];
    return this.release();
  }

  /**
   * Takes the start a fresh subscription answered with, unless events already delivered went past
   * it (they may arrive before the answer).
   */
  start(pos: Position | null): AppEventMessage[] {
    if (pos === null) return [];
    if (this.pos !== null && this.pos.epoch === pos.epoch && this.pos.offset >= pos.offset) return this.release();
    return this.jump(pos);
  }

  /**
   * A `sub` with the position is on its way: it answers for an epoch seen so far (a reload, or a
   * recovery in the same epoch when the stray event was garbage). Cleared only by a reload, one
   * stray event made every later event ask again (review "diff8").
   */
  asked(): void {
    this.unknownEpoch = false;
  }

  /** Forgets held events (the socket dropped: resubscribing from pos brings them again). */
  clearHeld(): void {
    this.held = [];
    this.unknownEpoch = false;
  }

  private hold(evt: AppEventMessage): void {
    const offset = evt.pos!.offset;
    let i = this.held.length;
    while (i > 0 && this.held[i - 1]!.pos!.offset > offset) i--;
    if (i > 0 && this.held[i - 1]!.pos!.offset === offset) return; // already held
    this.held.splice(i, 0, evt);
    if (this.held.length > MAX_HELD) this.held.shift();
  }

  /** Delivers held events that continue from pos, dropping those at or before it. */
  private release(): AppEventMessage[] {
    const out: AppEventMessage[] = [];
    while (this.pos !== null && this.held.length > 0) {
      const next = this.held[0]!.pos!;
      if (next.offset > this.pos.offset + 1) break;
      const evt = this.held.shift()!;
      if (next.offset === this.pos.offset + 1) {
        this.pos = next;
        out.push(this.checkFresh(evt));
      }
    }
    return out;
  }

  /** The event, marked `skipped` if it was delivered before without a position. */
  private checkFresh(evt: AppEventMessage): AppEventMessage {
    if (!this.fresh(evt)) this.skipped.add(evt);
    return evt;
  }

  /** Whether to deliver the event at its position: not if it was delivered before without one. */
  private fresh(evt: AppEventMessage): boolean {
    if (this.unplaced.length === 0) return true;
    if (++this.checked > UNPLACED_FOR) {
      this.unplaced = [];
      return true;
    }
    const i = this.unplaced.indexOf(contentOf(evt));
    if (i < 0) return true;
    this.unplaced.splice(i, 1);
    return false;
  }
}

/** An event without its position, as text: the same event with or without one gives the same. */
function contentOf(evt: AppEventMessage): string {
  const { pos: _pos, ...content } = evt;
  return JSON.stringify(content);
}
