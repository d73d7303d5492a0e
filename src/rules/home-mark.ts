/**
 * A home's "evaluated through" mark as its actor moves it (EvaluatedMarks in the history port): an
 * event's offset is noted once the event is evaluated and the runs it began have run up to their
 * first delay (what follows a delay is saved: resume.ts), and only after every earlier event's, so
 * the mark never passes an event whose run has not got that far. Most events reach no rule: a
 * field written, or the mark noted at once (`evaluated` false: stored lazily); no promise.
 */
import type { EvaluatedMarks } from '../ports/history/history.js';

export class HomeMark {
  /** the runs of earlier events the mark waits for, chained in offset order */
  #waiting: Promise<void> | null = null;
  /** the newest offset done, with no run of its own, while `#waiting` was pending */
  #after = 0;

  constructor(
    private readonly marks: EvaluatedMarks,
    private readonly homeId: string,
  ) {}

  /** No run of an earlier event is waited for: a new mark for the home would note nothing out of order. */
  get settled(): boolean {
    return this.#waiting === null;
  }

  /** Resolves once every event done so far has its mark noted. */
  noted(): Promise<void> {
    return this.#waiting ?? Promise.resolve();
  }

  /**
   * The event at `offset` is done; `runs`: the first stretches of the runs it began, absent when no
   * rule was evaluated on it (none listens, or all are suspended).
   */
  done(offset: number, runs?: ReadonlyArray<Promise<void>>): void {
    if (!runs) {
      if (this.#waiting) this.#after = offset;
      else this.marks.note(this.homeId, offset, false);
      return;
    }
    // a run that fails still ends its stretch: the mark goes on either way
    const chained: Promise<void> = Promise.allSettled([this.#waiting, ...runs]).then(() => {
      if (this.#waiting !== chained) return this.marks.note(this.homeId, offset, true);
      this.#waiting = null;
      this.marks.note(this.homeId, Math.max(offset, this.#after), true);
    });
    this.#waiting = chained;
  }
}

/**
 * `HomeMark.done` for a home whose mark is made at its first event that began a run (`mark` null
 * until then): with no run waiting, an offset is noted at once. A node holds a rules actor per home
 * it serves, most with no rule, and each object counts. Answers the home's mark.
 */
export function markDone(mark: HomeMark | null, marks: EvaluatedMarks, homeId: string, offset: number, runs?: ReadonlyArray<Promise<void>>): HomeMark | null {
  if (mark === null && runs === undefined) {
    marks.note(homeId, offset, false);
    return null;
  }
  mark ??= new HomeMark(marks, homeId);
  mark.done(offset, runs);
  return mark;
}
