import type { Position, RecoveryFailure } from '../../../proto/app.js';
import { TierError } from '../../errors.js';

export type { Position, RecoveryFailure };

/** One stored event: its offset in the home's history and the event's bytes as appended. */
export interface HistoryEntry {
  readonly offset: number;
  readonly data: Uint8Array;
}

export type HistoryRead =
  | { ok: true; epoch: string; entries: HistoryEntry[] }
  | { ok: false; reason: RecoveryFailure; pos: Position };

/** Who published an event: a hub's session, by its epoch (grows at every new session of the hub). */
export interface EventSource {
  readonly hub: string;
  readonly epoch: number;
}

/**
 * An append the history refused, storing nothing, that it noted as lost: a recovery from a
 * position at or before the home's newest offset of that moment is `too_old` (`HistoryPosition`).
 */
export class NotedLostError extends TierError {
  override name = 'NotedLostError';
  constructor(message: string) {
    super('unavailable', message);
  }
}

/** An event refused because a later session of its hub has put events in the home's history. */
export class StaleSessionError extends TierError {
  override name = 'StaleSessionError';
  constructor(source: EventSource) {
    super('session_taken_over', `hub ${source.hub}: session ${source.epoch} was taken over; its event is not stored`);
  }
}

export interface HistoryRetention {
  /** events kept per home (at least this many of the newest; Redis trims approximately, keeping a few more) */
  readonly maxEvents: number;
  /** events older than this are not delivered, whether or not they are trimmed yet */
  readonly maxAgeMs: number;
}

/**
 * Every home's events in order, each at a position `{epoch, offset}` (proto/app.ts).
 *
 * - `append` gives the event the home's next offset (the last one plus one; the first is 1) and
 *   resolves with its position once `read` on any node sharing the history returns it. The bytes
 *   are stored as given (the event without its position). Appends of one home from one caller
 *   resolve in call order, with growing offsets.
 * - The epoch changes only when the history's continuity is lost: a store emptied or recreated, a
 *   home's history expired as a whole, an embedded store that did not stop cleanly (appends it
 *   acknowledged may not have reached the disk). Offsets of another epoch are never compared.
 * - `read(home, since, upTo)` returns, in order, every entry with `since.offset < offset ≤ upTo`
 *   (upTo capped at the newest), or why it cannot: `epoch_changed` when `since.epoch` is not the
 *   current epoch or `since.offset` is past the newest offset, `too_old` when one of those entries
 *   is trimmed, older than `maxAgeMs`, or they are more than `limit`. A failure carries the current
 *   position.
 * - `position` is the newest position (offset 0 before the first event of the home), with `lost`
 *   where the adapter keeps it (`noteLost`).
 * - Retention: at most about `maxEvents` per home and none older than `maxAgeMs` are delivered;
 *   storage per home is bounded by the count. An adapter whose store outlives the process removes
 *   entries past the age too (at the home's next append, or a sweep or expiry), keeping its offsets.
 * - `remove` drops a home's entries but not its offsets: the next append continues them in the same
 *   epoch, so a position taken before still compares (a read from before the removal is `too_old`).
 * - `source`: an adapter shared by several nodes (Redis) refuses an event, storing nothing, with
 *   `StaleSessionError` when the home's history already holds an event of a later session of the
 *   same hub: a session taken over without hearing so (its node stalled, then resumed) cannot put
 *   its events after its successor's, where apps would take them for the newest. In-process
 *   adapters (memory, the embedded store) ignore it: every session of a hub is in that process,
 *   which tells the one taken over at once.
 * - Ids are opaque: `__proto__`, `constructor` and the like are homes like any other.
 */
/**
 * Where a home's history stands. `lost`: the newest offset at which an event of the home went out
 * without a position (its append failed) since the epoch began, -1 or absent if none: an app last
 * handed an event at or before it may have missed that one, which no read returns.
 */
export interface HistoryPosition extends Position {
  lost?: number;
}

export interface EventHistory {
  readonly retention: HistoryRetention;
  append(homeId: string, data: Uint8Array, source?: EventSource): Promise<Position>;
  /**
   * `append` for an adapter that knows the position at once (in the process: memory, the embedded
   * store): the caller publishes in the same turn, without a promise per event.
   */
  appendNow?(homeId: string, data: Uint8Array): Position;
  /**
   * For an adapter whose appends are durable later than they are readable (the embedded store
   * writes a home's events a second at a time): resolves once every event appended to the home so
   * far is committed, rejects if the write failed. A device event is acknowledged to its hub only
   * then. Absent: an append is as durable as the adapter gets once it resolves.
   */
  durable?(homeId: string): Promise<void>;
  /**
   * How far the node's rules evaluated each home's events, kept with the history (EvaluatedMarks),
   * so that after an unclean stop the events past it are evaluated at the next start (and, in a
   * history shared by nodes, by the node that claims a dead node's marks). Absent (memory: the
   * events go with the process): rules are not replayed.
   */
  readonly marks?: EvaluatedMarks;
  read(homeId: string, since: Position, upTo: number, limit: number): Promise<HistoryRead>;
  /**
   * For an adapter whose new epoch may continue an earlier one (the embedded store after an unclean
   * stop: the events it committed are kept, the offsets of its lost last second given again): `since`
   * of such an earlier epoch as the current epoch's position naming the same event, when every event
   * the app was given up to it is stored as given; null otherwise (the app reloads). Absent: never.
   */
  carried?(homeId: string, since: Position): Promise<Position | null>;
  position(homeId: string): Promise<HistoryPosition>;
  /**
   * For an adapter shared by several nodes (Redis): notes that an event of the home goes out
   * without a position (its append failed, stored or not), so that `position().lost` is at least
   * the home's newest offset now. Called before that event is published, so an app recovering
   * later is told to reload rather than told it recovered everything. An append refused with
   * `NotedLostError` was noted by the adapter. An adapter that keeps a stream for services (Redis
   * `<prefix>events`) adds a `lost` entry there with each note, at the same newest offset: such
   * an event has no offset, so a service would see no gap. Absent (in-process adapters): the
   * node's feeds see every such event themselves.
   */
  noteLost?(homeId: string): Promise<void>;
  remove(homeId: string): Promise<void>;
  /**
   * For an adapter that keeps a stream for services (Redis `<prefix>events`): a home's erasure
   * there. Deletes the home's entries from it and adds an `erased` entry, which tells each service
   * to erase what it keeps of the home; answers how many entries went. Absent (in-process
   * adapters): there is no such stream (services read the app socket, and see the home's hubs go).
   */
  forget?(homeId: string): Promise<number>;
  close(): Promise<void>;
}

/** One stored event past a home's mark: its offset, its bytes as appended, and when it was appended (ms). */
export interface UnevaluatedEntry {
  readonly offset: number;
  readonly data: Uint8Array;
  readonly at: number;
}

export interface UnevaluatedHome {
  readonly homeId: string;
  /** in offset order */
  readonly entries: readonly UnevaluatedEntry[];
  /** what the store took from a dead node for them: handed back to `replayed` once they are; absent: nothing taken */
  readonly taken?: string;
}

/**
 * How far the node's rules have evaluated each home's history, so that events acknowledged to their
 * hub but not evaluated when the process died are evaluated at the next start (src/rules/replay.ts).
 * A home's mark is the offset through which its events were evaluated.
 *
 * - `note` is called for every event the rules are done with, in offset order per home; it costs a
 *   map entry, never a write of its own: the adapter stores the newest mark of each home with a
 *   commit it makes anyway. `evaluated` (a rule was evaluated on the event, so a replay could run
 *   actions): with the next one (the embedded history's next write, at most 100 ms later); else
 *   within seconds (replaying an event no rule listens to costs a lookup).
 *   A home whose first events are committed before any mark of it gets one just before them in the
 *   same commit, so an event stored is never without a mark below it.
 * - `unevaluated` answers, once per start and only when the last process did not stop cleanly (or
 *   stopped owing, below), the events stored past each home's mark, oldest first; after a clean
 *   stop, or a second call, none.
 * - `owe`: a clean stop left stored events the rules had not evaluated (dropped from a home's
 *   backlog, stored after the rules closed): their marks stay before them and the next start (in a
 *   cluster, the node that claims the marks) replays them as after an unclean stop.
 *   A mark past the home's newest stored event (events acknowledged to no one, lost with the
 *   process) is brought back to it, so the offsets given again from there are not skipped later.
 * - Marks and events live and go together: a store that starts over empty has no marks, and the
 *   events of a home that has none (written before marks existed) are not replayed.
 * - Shared by several nodes (Redis): a node's marks cover the events it appended, `unevaluated`
 *   answers those of its own last process and of nodes found dead, and `claimOrphans` those of
 *   nodes found dead since; each dead node's marks go to one node, which keeps them as its own
 *   until its rules are done with them (its death replays them again: at least once). Such a
 *   replay may be noted after newer events of the home: a mark never moves back.
 */
export interface EvaluatedMarks {
  note(homeId: string, offset: number, evaluated: boolean): void;
  unevaluated(): Promise<UnevaluatedHome[]>;
  /**
   * The rules stop with events they are not done with (their marks stay before them): kept, so that
   * the next start replays past the marks as after an unclean stop. Called by the rules' close,
   * before the history closes. Absent: not kept (the events go with the process).
   */
  owe?(): Promise<void>;
  /** A store shared by a cluster: takes over the marks of nodes whose liveness lapsed, answered as `unevaluated` does. */
  claimOrphans?(): Promise<UnevaluatedHome[]>;
  /**
   * The home's replay of events `unevaluated` or `claimOrphans` found with `taken` is through, the
   * marks of its runs noted (a run past its first delay is saved): what was taken from a dead node
   * for them may go. A replay dropped or cut short never calls it: what it took stays, for the next
   * owner. Absent: a node's own marks say it all.
   */
  replayed?(homeId: string, taken: string): void;
  /**
   * Every home `unevaluated` found a mark of (each home the history keeps events of), with its mark
   * and newest stored offset: where acknowledged events the stop lost may be missing (a report's,
   * src/rules/replay-reports.ts). Answered once, after `unevaluated`; else empty. Absent: not told.
   */
  marked?(): readonly MarkedHome[];
  /** Every entry the history keeps of the home, oldest first, with its time (the events before its mark too). */
  stored?(homeId: string): UnevaluatedEntry[];
}

/** A home with a mark, as found at an unclean start. */
export interface MarkedHome {
  readonly homeId: string;
  /** the offset through which its rules had evaluated its stored events (its newest, or below) */
  readonly mark: number;
  /** its newest stored offset */
  readonly top: number;
}
