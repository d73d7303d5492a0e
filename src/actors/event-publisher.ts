import type { AppEventMessage } from '../../proto/app.js';
import { subjects } from '../../proto/subjects.js';
import type { Logger } from '../log/logger.js';
import type { Bus } from '../ports/bus/bus.js';
import { NotedLostError, StaleSessionError, type EventHistory, type Position } from '../ports/history/history.js';
import { encodeBus } from '../protocol/codec.js';
import { withPosition } from '../protocol/app-events.js';
import { encodeStateEvent } from '../protocol/state-event.js';
import type { Span } from '../trace/tracing.js';

export interface EventPublisherOptions {
  /**
   * Whether a later session of the hub holds it now (the directory): asked before an event whose
   * append failed goes out without a position. Absent: not asked.
   */
  laterSession?: (hubId: string, epoch: number) => Promise<boolean>;
  /** @default 250 (ms): no answer by then counts as no (the event goes out) */
  laterSessionWaitMs?: number;
  /**
   * @default 5_000 (ms): how long events wait for the history's lost note while it cannot be made
   * (Redis away), counted from the first note that failed; past it they go out without waiting
   * until a note is made again (the history keeps owing the rest)
   */
  lostNoteWaitMs?: number;
}

/** ms between tries of a lost note an event waits for */
const LOST_NOTE_RETRY_MS = 100;

/**
 * A hub's events leave here: into the home's history (which gives each its position), then onto
 * the bus with that position, in the order they were published. An event the history refuses
 * (its backend unreachable) still goes out, without a position: live subscribers get it, a
 * recovery will not, so the history first notes the home's events lost (`noteLost`), and an app
 * recovering from before them is told to reload; unless the directory says a later session of the
 * hub holds it (a node that froze with an append on the wire, whose Redis client timed it out on
 * resuming before reading the answer, while its hub moved to another node). One the history refuses because a later
 * session of the hub has published (this session was taken over without hearing so) does not go
 * out at all. The node's rules see an event as it goes out: at once where the history answers at
 * once (in-process, where no other node can take the hub over), after the append where it answers
 * later (Redis), so that a node resuming from a stall does not fire rules on values older than the
 * ones another node has published.
 */
export class EventPublisher {
  private inFlight = 0;
  private idle: Array<() => void> = [];
  private failures = 0;
  private stale = 0;
  /**
   * events whose append failed go out after the directory's answer, and events published after
   * them wait their turn: the queue's tail, and how many steps it holds that have not finished
   */
  private unplacedTail: Promise<void> = Promise.resolve();
  private queued = 0;
  /** per home with an append under way (a history that answers later): the latest one's end */
  private readonly appending = new Map<string, Promise<void>>();
  /** the history's lost notes (`noteLost`), by home, while under way */
  private readonly noting = new Map<string, Promise<void>>();
  /** the directory's answers, by hub and session, while their lookup is under way */
  private readonly asking = new Map<string, Promise<boolean>>();
  private readonly laterSession: EventPublisherOptions['laterSession'];
  private readonly laterSessionWaitMs: number;
  private readonly lostNoteWaitMs: number;
  /** while lost notes fail: when events stop waiting for them (performance.now() ms); null while they are made */
  private lostNotesUntil: number | null = null;

  constructor(
    private readonly bus: Bus,
    private readonly history: EventHistory | undefined,
    private readonly log: Logger,
    /**
     * the node's rules; `parent` (tracing on): the hub session's step the event came from; `offset`:
     * the event's in its home's history, when stored (the rules mark how far they evaluated)
     */
    private readonly onEvent: (event: AppEventMessage, parent?: Span, offset?: number) => void,
    options: EventPublisherOptions = {},
  ) {
    this.laterSession = options.laterSession;
    this.laterSessionWaitMs = options.laterSessionWaitMs ?? 250;
    this.lostNoteWaitMs = options.lostNoteWaitMs ?? 5_000;
  }

  /** Events the history could not store (published without a position). */
  get historyFailures(): number {
    return this.failures;
  }

  /** Events of sessions taken over, which the history refused or the directory told of: not published. */
  get staleEvents(): number {
    return this.stale;
  }

  /** `epoch`: the epoch of the hub's session that publishes the event. */
  readonly publish = (event: AppEventMessage, epoch: number, parent?: Span): void => {
    const subject = subjects.hubEvents(event.home, event.hub);
    // every report makes a state event: written by hand, the others by msgpackr
    const bare = event.kind === 'state' ? encodeStateEvent(event) : encodeBus(event);
    if (!this.history) {
      this.onEvent(event, parent);
      this.bus.publish(subject, bare);
      return;
    }
    if (this.history.appendNow) {
      let pos: Position;
      try {
        pos = this.history.appendNow(event.home, bare);
      } catch (err) {
        this.onEvent(event, parent);
        this.bus.publish(subject, this.refused(event, bare, err));
        return;
      }
      this.onEvent(event, parent, pos.offset);
      this.bus.publish(subject, withPosition(bare, pos));
      return;
    }
    this.inFlight++;
    // appends of one home resolve in call order, so publishes keep the order of the events
    const appended: Promise<void> = this.history.append(event.home, bare, { hub: event.hub, epoch }).then(
      (pos) => {
        // behind an event whose append failed, waiting for the directory: it goes out first
        if (this.queued > 0) return this.inOrder(() => this.placed(event, subject, bare, pos, parent));
        this.placed(event, subject, bare, pos, parent);
      },
      (err: unknown) => {
        if (err instanceof StaleSessionError) return this.dropped(event, err);
        return this.unplaced(event, bare, err, epoch, parent);
      },
    ).catch((err: unknown) => this.log.error({ err, homeId: event.home }, 'event publish failed'))
      .finally(() => {
      if (--this.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve();
      if (this.appending.get(event.home) === appended) this.appending.delete(event.home);
    });
    this.appending.set(event.home, appended);
  };

  /**
   * Resolves once every event of the home published so far is stored where the history keeps it
   * (committed on disk in the embedded default; appended in Redis, or given up on and published
   * without a position, in cluster mode); rejects when the embedded store's write failed. A hub's
   * device event is acknowledged only then: a report's state is in the shadow, an event only here.
   */
  durable(homeId: string): Promise<void> {
    if (!this.history) return Promise.resolve();
    if (this.history.durable) return this.history.durable(homeId);
    return this.appending.get(homeId) ?? Promise.resolve();
  }

  private placed(event: AppEventMessage, subject: string, bare: Uint8Array, pos: Position, parent: Span | undefined): void {
    this.onEvent(event, parent, pos.offset);
    this.bus.publish(subject, withPosition(bare, pos));
  }

  /**
   * An event whose append failed: out without a position, unless a later session of its hub holds
   * it. The directory is asked at once; this event, and every one after it until the queue is
   * empty, goes out in publish order as the answers come.
   */
  private unplaced(event: AppEventMessage, bare: Uint8Array, err: unknown, epoch: number, parent: Span | undefined): Promise<void> {
    const later = this.laterSession ? this.askLaterSession(event.hub, epoch) : false;
    const noted = err instanceof NotedLostError ? undefined : this.noteLost(event.home);
    return this.inOrder(async () => {
      if (await later) return this.dropped(event, new StaleSessionError({ hub: event.hub, epoch }));
      await noted;
      this.onEvent(event, parent);
      this.bus.publish(subjects.hubEvents(event.home, event.hub), this.refused(event, bare, err));
    });
  }

  /** Runs `step` after the steps queued before it. */
  private inOrder(step: () => void | Promise<void>): Promise<void> {
    this.queued++;
    const turn = this.unplacedTail.then(step).finally(() => this.queued--);
    this.unplacedTail = turn.catch(() => {});
    return turn;
  }

  /**
   * The directory's answer, or false when it fails or is not in within `laterSessionWaitMs` of the
   * first ask. One lookup and one timer per hub and session while the lookup is out: events of that
   * session failing meanwhile share them (once past the wait, they get false at once).
   */
  private askLaterSession(hubId: string, epoch: number): Promise<boolean> {
    const key = `${hubId} ${epoch}`;
    let answer = this.asking.get(key);
    if (answer) return answer;
    answer = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.laterSessionWaitMs);
      this.laterSession!(hubId, epoch)
        .catch(() => false)
        .then((later) => {
          clearTimeout(timer);
          resolve(later);
          // kept until the lookup ends, not the wait: a hung Redis is asked once, not every 250 ms
          this.asking.delete(key);
        });
    });
    this.asking.set(key, answer);
    return answer;
  }

  /**
   * Has the history note that an event of the home goes out without a position, so that apps
   * recovering from before it reload; resolves once noted, tried again every 100 ms while Redis is
   * away, until `lostNoteWaitMs` after the first failure (the history keeps owing it). The event
   * waits for the note: published first, an app reconnecting to a node whose feed starts after it
   * could read the history's position before the note and be told it recovered (a race a chaos run
   * hit three times in 25). One call per home while it is out.
   */
  private noteLost(homeId: string): Promise<void> | undefined {
    const history = this.history;
    if (!history?.noteLost) return undefined;
    let noted = this.noting.get(homeId);
    if (noted) return noted;
    noted = new Promise<void>((resolve) => {
      let retry: NodeJS.Timeout | undefined;
      let finished = false;
      const done = (): void => {
        finished = true;
        clearTimeout(retry);
        clearTimeout(hung);
        resolve();
      };
      const attempt = (): void => {
        history.noteLost!(homeId).then(
          () => {
            this.lostNotesUntil = null;
            done();
          },
          () => {
            if (finished) return;
            const now = performance.now();
            this.lostNotesUntil ??= now + this.lostNoteWaitMs;
            if (now >= this.lostNotesUntil) return done();
            retry = setTimeout(attempt, Math.min(LOST_NOTE_RETRY_MS, this.lostNotesUntil - now));
          },
        );
      };
      // a hung Redis answers neither way: the wait ends all the same
      const hung = setTimeout(done, Math.max(this.laterSessionWaitMs, (this.lostNotesUntil ?? performance.now() + this.lostNoteWaitMs) - performance.now()));
      attempt();
    }).finally(() => this.noting.delete(homeId));
    this.noting.set(homeId, noted);
    return noted;
  }

  /** Counts (and now and then logs) an event the history refused; returns it without a position. */
  private refused(event: AppEventMessage, bare: Uint8Array, err: unknown): Uint8Array {
    if (this.failures++ % 1000 === 0) this.log.warn({ err, homeId: event.home, failures: this.failures }, 'history append failed: event published without a position');
    return bare;
  }

  /** Counts (and now and then logs) an event of a session taken over. */
  private dropped(event: AppEventMessage, err: StaleSessionError): void {
    if (this.stale++ % 1000 === 0) this.log.warn({ err, homeId: event.home, hubId: event.hub, stale: this.stale }, 'event of a session taken over: not published');
  }

  /** Resolves once every event published so far has gone to the bus (before the ports close). */
  settled(): Promise<void> {
    return this.inFlight === 0 ? Promise.resolve() : new Promise((resolve) => this.idle.push(resolve));
  }
}
