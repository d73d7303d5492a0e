import type { AppEventMessage } from '../../proto/app.js';
import { subjects } from '../../proto/subjects.js';
import type { Logger } from '../log/logger.js';
import type { Bus } from '../ports/bus/bus.js';
import { StaleSessionError, type EventHistory, type Position } from '../ports/history/history.js';
import { encodeBus } from '../protocol/codec.js';
import { withPosition } from '../protocol/app-events.js';
import { encodeStateEvent } from '../protocol/state-event.js';
import type { Span } from '../trace/tracing.js';

/**
 * A hub's events leave here: into the home's history (which gives each its position), then onto
 * the bus with that position, in the order they were published. An event the history refuses
 * (its backend unreachable) still goes out, without a position: live subscribers get it, a
 * recovery will not. One it refuses because a later session of the hub has published (this
 * session was taken over without hearing so) does not go out at all. The node's rules see an
 * event as it goes out: at once where the history answers at once (in-process, where no other node
 * can take the hub over), after the append where it answers later (Redis), so that a node resuming
 * from a stall does not fire rules on values older than the ones another node has published.
 */
export class EventPublisher {
  private inFlight = 0;
  private idle: Array<() => void> = [];
  private failures = 0;
  private stale = 0;

  constructor(
    private readonly bus: Bus,
    private readonly history: EventHistory | undefined,
    private readonly log: Logger,
    /** the node's rules; `parent` (tracing on): the hub session's step the event came from */
    private readonly onEvent: (event: AppEventMessage, parent?: Span) => void,
  ) {}

  /** Events the history could not store (published without a position). */
  get historyFailures(): number {
    return this.failures;
  }

  /** Events of sessions taken over, which the history refused: not published. */
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
      this.onEvent(event, parent);
      let pos: Position;
      try {
        pos = this.history.appendNow(event.home, bare);
      } catch (err) {
        this.bus.publish(subject, this.refused(event, bare, err));
        return;
      }
      this.bus.publish(subject, withPosition(bare, pos));
      return;
    }
    this.inFlight++;
    // appends of one home resolve in call order, so publishes keep the order of the events
    this.history.append(event.home, bare, { hub: event.hub, epoch }).then(
      (pos) => {
        this.onEvent(event, parent);
        this.bus.publish(subject, withPosition(bare, pos));
      },
      (err: unknown) => {
        if (err instanceof StaleSessionError) return this.dropped(event, err);
        this.onEvent(event, parent);
        this.bus.publish(subject, this.refused(event, bare, err));
      },
    ).catch((err: unknown) => this.log.error({ err, homeId: event.home }, 'event publish failed'))
      .finally(() => {
      if (--this.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve();
    });
  };

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
