/** A home's events to the apps of this node. Over 400 lines: one feed's order, gap fills and catch-ups share its state. */
import type { AppReloadMessage, Position, RecoveryFailure, SubResult } from '../../proto/app.js';
import { subjects } from '../../proto/subjects.js';
import type { FeedSubscriber } from '../actors/app-session.js';
import type { Logger } from '../log/logger.js';
import type { Bus, BusLink, BusSubscription } from '../ports/bus/bus.js';
import type { EventHistory, HistoryEntry } from '../ports/history/history.js';
import { encodeApp } from '../protocol/codec.js';
import { appEventBytes, appEventJson, positionOf, withPosition } from '../protocol/app-events.js';

/** The two calls a feed makes on the uWS app (a fake in tests). */
export interface TopicPublisher {
  numSubscribers(topic: string): number;
  publish(topic: string, message: Uint8Array | string, isBinary: boolean): boolean;
}

/** Epochs a feed remembers having left; ms before a feed whose history position could not be read tries again. */
const RETIRED_EPOCHS = 4;
const RESTART_MS = 1_000;

/** uWS topic of a home's events in one encoding. */
export function feedTopic(enc: 'json' | 'msgpack', homeId: string): string {
  return `${enc === 'json' ? 'j' : 'm'}/${homeId}`;
}

/** Events read from the history per round of a recovery. */
const RECOVERY_PAGE = 500;
/** A recovery gives up (too_old) after sending this many times the history's size. */
const RECOVERY_ROUNDS = 4;

interface Feed {
  readonly homeId: string;
  /** the home's uWS topics (`feedTopic`), made once rather than per event */
  readonly topics: { readonly msgpack: string; readonly json: string };
  /** app subscribers of the home on this node */
  count: number;
  sub: BusSubscription;
  /** resolves when the feed knows where the home's history stands */
  ready: Promise<void>;
  /**
   * starting: reading where the history stands (events wait); ordered: events go out in offset
   * order; unordered: no history, or its position could not be read (events pass through as they
   * come, and the start is retried)
   */
  state: 'starting' | 'ordered' | 'unordered';
  epoch: string | null;
  /** epochs this feed left behind (newest first): their late events are dropped */
  retired: string[];
  /** every event up to this offset has gone to the topics, in order; later ones follow in order */
  delivered: number;
  /** the highest offset that reached this node, held or not: everything up to it is to be delivered */
  seen: number;
  /** events past a gap, by offset, until the gap is filled */
  pending: Map<number, Uint8Array>;
  /** the newest offset of `epoch` at which an event went out without a position, as far as it knows (-1: none) */
  lost: number;
  /** events without a position it sent out: one during a subscriber's catch-up is one it missed */
  unplaced: number;
  /** events that arrived before the feed was ready */
  early: Uint8Array[];
  /** history reads of this feed run one at a time */
  reads: Promise<void>;
  /** a gap fill is scheduled or running */
  filling: boolean;
  closed: boolean;
}

export interface HomeFeedsOptions {
  /** absent: no history, events pass through as they come and carry no position */
  history?: EventHistory | undefined;
  /** @default 1_024: events held per feed past a gap or before it is ready; beyond, re-read from the history */
  maxPending?: number;
  /** @default 2 (ms): a gap waits this long for the missing event, usually in flight from another node */
  gapWaitMs?: number;
  /**
   * @default [100, 200, 400, 800, 1_600, 3_200] (ms): while the history cannot be read (a Redis
   * restart), a gap's fill is tried again after each of these waits before its subscribers are
   * told to reload; live events may fill it meanwhile
   */
  historyRetryMs?: readonly number[];
  /** events one recovery may deliver; more: `too_old` */
  maxRecovery?: number;
  /** told how many sockets each published `evt` or `reload` reached (the node's app frame counter) */
  framesOut?: (op: 'evt' | 'reload', frames: number) => void;
  /** the bus's connection (NATS): after a reconnect each feed reads what it missed (`caughtUp`) */
  link?: BusLink | undefined;
}

/**
 * The node's interest in homes' events. The first app subscriber of a home subscribes this node to
 * `evt.<shard>.<homeId>.*`, the last one leaving unsubscribes. With a history, a feed puts the
 * home's events in offset order before they reach the uWS topics: a duplicate is dropped, a gap
 * (events of one home published by two nodes arrive out of order, or one was lost) waits briefly
 * and is then filled from the history. That order is what lets a subscriber join at an exact
 * position: the missed events from the history, then the topic, with nothing twice or missing.
 * Bus bytes go to msgpack subscribers as they are and are converted once (not per subscriber) for
 * JSON subscribers; uWS topic publish fans each out.
 */
export class HomeFeeds {
  private readonly feeds = new Map<string, Feed>();
  private readonly history: EventHistory | undefined;
  private readonly maxPending: number;
  private readonly gapWaitMs: number;
  private readonly historyRetryMs: readonly number[];
  private readonly maxRecovery: number;
  private readonly framesOut: ((op: 'evt' | 'reload', frames: number) => void) | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly app: TopicPublisher,
    private readonly log: Logger,
    options: HomeFeedsOptions = {},
  ) {
    this.history = options.history;
    this.maxPending = options.maxPending ?? 1024;
    this.gapWaitMs = options.gapWaitMs ?? 2;
    this.historyRetryMs = options.historyRetryMs ?? [100, 200, 400, 800, 1_600, 3_200];
    this.maxRecovery = options.maxRecovery ?? this.history?.retention.maxEvents ?? 0;
    this.framesOut = options.framesOut;
    options.link?.onReconnect(() => void this.caughtUp());
  }

  /**
   * After the bus reconnected: events published while it was away never reach this node, and a
   * feed found its gap only at the home's next event, which a quiet home may not send for hours
   * (its apps stale meanwhile, review "slowreaders"). Each ordered feed reads where its home's
   * history stands and fills from there; a gap past the history is the reload it would have been.
   */
  async caughtUp(): Promise<void> {
    const history = this.history;
    if (!history) return;
    // as a feed's start: every subscription registered where publishers' messages are routed first
    await this.bus.flush().catch(() => undefined);
    const unread = { homes: 0, err: undefined as unknown };
    const reads: Array<Promise<void>> = [];
    for (const feed of this.feeds.values()) {
      if (feed.state !== 'ordered') continue;
      const epoch = feed.epoch;
      const done = (feed.reads = feed.reads.then(() => this.reposition(feed, epoch, history, unread)));
      reads.push(done);
    }
    await Promise.all(reads);
    // one line for the reconnect, not one per home: the subscribers of those were told to reload
    if (unread.homes > 0) this.log.warn({ err: unread.err, homes: unread.homes }, 'history position unavailable after the bus reconnected: subscribers told to reload');
  }

  /** One feed after a reconnect: where its home's history stands, read with the fill's retries; unreadable: its subscribers reload. */
  private async reposition(feed: Feed, epoch: string | null, history: EventHistory, unread: { homes: number; err: unknown }): Promise<void> {
    for (let away = 0; ; away++) {
      const pos = await history.position(feed.homeId).catch((err: unknown) => ((unread.err = err), null));
      if (feed.closed || feed.state !== 'ordered' || feed.epoch !== epoch) return;
      if (pos !== null) {
        if (pos.epoch !== feed.epoch) return this.reload(feed, 'epoch_changed', { epoch: pos.epoch, offset: pos.offset });
        feed.seen = Math.max(feed.seen, pos.offset);
        if (feed.seen > feed.delivered) this.scheduleFill(feed);
        return;
      }
      if (away >= this.historyRetryMs.length) {
        unread.homes++;
        return this.reload(feed, 'unavailable', this.at(feed));
      }
      // unref'd: a node shutting down does not wait for it (the feed is closed by then)
      await new Promise((resolve) => setTimeout(resolve, this.historyRetryMs[away]).unref());
    }
  }

  acquire(homeId: string): void {
    const existing = this.feeds.get(homeId);
    if (existing) {
      existing.count++;
      return;
    }
    const feed: Feed = {
      homeId,
      topics: { msgpack: feedTopic('msgpack', homeId), json: feedTopic('json', homeId) },
      count: 1,
      sub: this.bus.subscribe(subjects.homeEvents(homeId), (msg) => this.onEvent(feed, msg.data)),
      ready: Promise.resolve(),
      state: this.history ? 'starting' : 'unordered',
      epoch: null,
      retired: [],
      delivered: 0,
      seen: 0,
      pending: new Map(),
      lost: -1,
      unplaced: 0,
      early: [],
      reads: Promise.resolve(),
      filling: false,
      closed: false,
    };
    this.feeds.set(homeId, feed);
    if (this.history) feed.ready = this.start(feed, this.history);
  }

  release(homeId: string): void {
    const feed = this.feeds.get(homeId);
    if (!feed) return;
    if (--feed.count === 0) {
      feed.closed = true;
      feed.sub.unsubscribe();
      this.feeds.delete(homeId);
    }
  }

  /** Homes this node is subscribed to. */
  get size(): number {
    return this.feeds.size;
  }

  /**
   * Brings a new subscriber of an acquired home to the feed: without `since` it joins at once at
   * the feed's position; with `since`, the events after it are read from the history and sent
   * (paced by the socket's buffer, so a long recovery never trips the backpressure limit) until
   * the reads reach what the feed has delivered, and it joins in the turn that saw them meet.
   * False: not answered, the subscription having ended first (unsub, revocation, close). `carry`:
   * the app takes a `since` of an epoch the history continues as the current one's (answered so).
   */
  async catchUp(homeId: string, since: Position | undefined, sub: FeedSubscriber, carry = false): Promise<boolean> {
    const feed = this.feeds.get(homeId);
    if (!feed) return false;
    await feed.ready;
    if (feed.closed || !sub.open) return false;
    const join = (result: SubResult) => (sub.answer(result), sub.join(), true);
    if (!this.history || feed.state !== 'ordered') return join(since ? { home: homeId, pos: null, recovered: false, reason: 'unavailable' } : { home: homeId, pos: null });
    if (!since) return join({ home: homeId, pos: this.at(feed) });
    const fail = (reason: RecoveryFailure) => join({ home: homeId, pos: this.at(feed), recovered: false, reason });
    if (since.epoch !== feed.epoch) {
      // an app that takes a position carried over (`carry`) from an epoch the history continues
      const carried = carry ? await this.history.carried?.(homeId, since).catch(() => null) : null;
      if (feed.closed || !sub.open) return false;
      if (!carried || carried.epoch !== feed.epoch) return fail('epoch_changed');
      since = carried;
    }
    if (feed.delivered - since.offset > this.maxRecovery) return fail('too_old');
    // an event that went out without a position after `since` is in no read: the app reloads
    const unplaced = feed.unplaced;
    const lost = await this.lostMark(feed);
    if (feed.closed || !sub.open) return false;
    if (lost === null) return fail('unavailable');
    const missedUnplaced = () => since.offset <= Math.max(lost, feed.lost) || feed.unplaced !== unplaced;
    let last = since.offset;
    let answered = false;
    // after the answer said recovered, a later failure is told by a reload to this socket alone
    const stop = (reason: RecoveryFailure) => {
      if (!answered) return fail(reason);
      sub.reload(reason, this.at(feed));
      sub.join();
      return true;
    };
    for (let sent = 0; ; ) {
      if (feed.closed || !sub.open) return answered;
      if (feed.epoch !== since.epoch) return stop('epoch_changed');
      if (missedUnplaced()) return stop('too_old');
      if (last === feed.delivered) {
        if (!answered) sub.answer({ home: homeId, pos: since, recovered: true });
        sub.join();
        return true;
      }
      // an app slower than the home's events would never catch up
      if (sent > RECOVERY_ROUNDS * this.maxRecovery) return stop('too_old');
      const ahead = last > feed.delivered;
      // ahead: the app saw events through another node that have not reached this feed yet; the
      // feed is brought there (nobody new is on its topics), and the app gets nothing twice
      const upTo = ahead ? last : Math.min(feed.delivered, last + RECOVERY_PAGE);
      const read = await this.read(feed, ahead ? feed.delivered : last, upTo, RECOVERY_PAGE);
      if (feed.closed || !sub.open) return answered;
      if (!read || !read.ok) return stop(read ? read.reason : 'unavailable');
      const reached = read.entries.length > 0 ? read.entries[read.entries.length - 1]!.offset : ahead ? feed.delivered : last;
      if (ahead) {
        // a position past the history's newest offset was never given in this epoch
        if (reached < last) return stop('epoch_changed');
        this.deliverRead(feed, read.entries, read.epoch);
        this.drain(feed);
        continue;
      }
      if (read.epoch !== since.epoch) return stop('epoch_changed');
      if (missedUnplaced()) return stop('too_old');
      // the history lost what the feed delivered (same epoch): an empty read looped for ever until 2026-12-06
      if (reached <= last) return stop('too_old');
      if (!answered) {
        sub.answer({ home: homeId, pos: since, recovered: true });
        answered = true;
      }
      const events = read.entries.map((e) => withPosition(e.data, { epoch: read.epoch, offset: e.offset }));
      const taken = sub.send(events, 0);
      if (taken < events.length) {
        let rest = 0;
        for (let i = taken; i < events.length; i++) rest += events[i]!.byteLength;
        if (!(sub.keep?.(rest) ?? true)) {
          // past what the socket's recoveries may hold: read again once it drained (held through
          // the wait, pages of sub/unsub pairs on a socket that stopped reading took gigabytes,
          // review "recovery"; read again always, 64 homes recovering on a socket read 7 times
          // what they sent, review "diff26")
          sent += taken;
          if (taken > 0) last = read.entries[taken - 1]!.offset;
          await sub.drained();
          if (!sub.open) return true;
          continue;
        }
        try {
          for (let i = taken; i < events.length; i += sub.send(events, i)) {
            await sub.drained();
            if (!sub.open) return true;
          }
        } finally {
          sub.keep?.(-rest);
        }
      }
      sent += events.length;
      last = reached;
    }
  }

  /** The newest offset of the feed's epoch at which the history noted an event lost (-1: none), null if unreadable. */
  private lostMark(feed: Feed): Promise<number | null> {
    return this.history!.position(feed.homeId).then(
      (pos) => (pos.epoch === feed.epoch ? (pos.lost ?? -1) : -1),
      (err: unknown) => (this.log.warn({ err, homeId: feed.homeId }, 'history position unavailable'), null),
    );
  }

  private read(feed: Feed, after: number, upTo: number, limit: number) {
    return this.history!.read(feed.homeId, { epoch: feed.epoch!, offset: after }, upTo, limit).catch((err: unknown) => {
      this.log.warn({ err, homeId: feed.homeId }, 'history read failed');
      return null;
    });
  }

  /** Where the home's feed stands: its events after this offset are still to come (null: unordered or not acquired). */
  position(homeId: string): Position | null {
    const feed = this.feeds.get(homeId);
    return feed?.state === 'ordered' ? this.at(feed) : null;
  }

  private at(feed: Feed): Position {
    return { epoch: feed.epoch!, offset: feed.delivered };
  }

  /** Subscribes first (flushed, so every later event reaches this node), then reads where the history stands. */
  private async start(feed: Feed, history: EventHistory): Promise<void> {
    const restart = feed.state === 'unordered';
    try {
      await this.bus.flush();
      const pos = await history.position(feed.homeId);
      if (feed.closed) return;
      feed.state = 'ordered';
      // events went out unordered (the position may hold some not yet here): subscribers reload there (since 2026-12-06)
      if (restart) return this.reload(feed, 'unavailable', { epoch: pos.epoch, offset: pos.offset });
      // the history's own note is read at each catch-up (lostMark); what the feed saw of another epoch goes
      if (feed.epoch !== null && feed.epoch !== pos.epoch) feed.lost = -1;
      feed.epoch = pos.epoch;
      feed.delivered = pos.offset;
    } catch (err) {
      if (feed.closed) return;
      // events pass through unordered meanwhile; subscribers are told recovery is unavailable
      this.log.warn({ err, homeId: feed.homeId }, 'history position unavailable: events of the home go out unordered until it is back');
      feed.state = 'unordered';
      setTimeout(() => {
        if (!feed.closed && feed.state === 'unordered') feed.ready = this.start(feed, history);
      }, RESTART_MS).unref();
    }
    const early = feed.early;
    feed.early = [];
    for (const data of early) this.onEvent(feed, data);
    // events dropped past the bound while starting are read back
    if (feed.state === 'ordered' && feed.seen > feed.delivered) this.scheduleFill(feed);
  }

  private onEvent(feed: Feed, data: Uint8Array): void {
    if (feed.closed) return;
    const pos = feed.state === 'unordered' ? null : positionOf(data);
    // an event the history could not take goes out live, at most once, unordered; an app that
    // recovers from before it later is told to reload
    if (pos === null) {
      if (feed.state !== 'unordered') {
        feed.unplaced++;
        feed.lost = Math.max(feed.lost, feed.seen);
      }
      return this.fanOut(feed, data);
    }
    if (feed.state === 'starting') {
      // before the feed knows its position; dropped beyond the bound (the gap fill reads them back)
      if (feed.early.length < this.maxPending) feed.early.push(data);
      else feed.seen = Math.max(feed.seen, pos.offset);
      return;
    }
    if (pos.epoch !== feed.epoch) {
      if (feed.retired.includes(pos.epoch)) return;
      // the history lost continuity: subscribers reload, then go on from just before this event
      this.reload(feed, 'epoch_changed', { epoch: pos.epoch, offset: pos.offset - 1 });
    }
    feed.seen = Math.max(feed.seen, pos.offset);
    if (pos.offset <= feed.delivered) return;
    if (pos.offset === feed.delivered + 1) {
      this.fanOut(feed, data);
      feed.delivered = pos.offset;
      this.drain(feed);
      return;
    }
    if (feed.pending.size < this.maxPending) feed.pending.set(pos.offset, data);
    this.scheduleFill(feed);
  }

  private drain(feed: Feed): void {
    for (let next = feed.pending.get(feed.delivered + 1); next; next = feed.pending.get(feed.delivered + 1)) {
      feed.pending.delete(feed.delivered + 1);
      this.fanOut(feed, next);
      feed.delivered++;
    }
  }

  private scheduleFill(feed: Feed): void {
    if (feed.filling) return;
    feed.filling = true;
    setTimeout(() => {
      feed.reads = feed.reads.then(() => this.fill(feed));
    }, this.gapWaitMs);
  }

  /** Reads the gap between what was delivered and the first event held past it (or the highest seen). */
  private async fill(feed: Feed): Promise<void> {
    feed.filling = false;
    // failed reads in a row: the history is away. Its gap is likely an event whose append reached
    // Redis as it died (published without a position), which a read finds once it is back
    let away = 0;
    while (!feed.closed && feed.state === 'ordered' && (feed.pending.size > 0 || feed.seen > feed.delivered)) {
      const until = feed.pending.size > 0 ? Math.min(...feed.pending.keys()) - 1 : feed.seen;
      if (until <= feed.delivered) {
        for (const offset of feed.pending.keys()) if (offset <= feed.delivered) feed.pending.delete(offset);
        this.drain(feed);
        continue;
      }
      const epoch = feed.epoch!;
      const upTo = Math.min(until, feed.delivered + RECOVERY_PAGE);
      const read = await this.read(feed, feed.delivered, upTo, RECOVERY_PAGE);
      if (feed.closed || feed.epoch !== epoch) return;
      if (read === null && away < this.historyRetryMs.length && feed.delivered < upTo) {
        // unref'd: a node shutting down does not wait for it (the feed is closed by then)
        await new Promise((resolve) => setTimeout(resolve, this.historyRetryMs[away++]).unref());
        continue;
      }
      away = 0;
      const before = feed.delivered;
      if (read?.ok) this.deliverRead(feed, read.entries, read.epoch);
      // filled, by the read or by live events that came while it was out (another node's, late):
      // nothing is missing, and a reload there would move the feed back over what it delivered
      if (feed.delivered >= upTo || (read?.ok && feed.delivered > before)) {
        // go on from there
      } else if (read?.ok) {
        // positions the history does not have (another publisher's): skipped, not read forever
        this.reload(feed, 'too_old', { epoch, offset: upTo });
      } else if (read?.reason === 'epoch_changed') this.reload(feed, 'epoch_changed', read.pos);
      // the gap cannot be filled: subscribers reload, the feed goes on after it
      else this.reload(feed, read ? read.reason : 'unavailable', { epoch, offset: upTo });
      this.drain(feed);
    }
  }

  /** Publishes entries read from the history that follow what the feed delivered. */
  private deliverRead(feed: Feed, entries: readonly HistoryEntry[], epoch: string): void {
    for (const e of entries) {
      if (e.offset !== feed.delivered + 1) continue;
      this.fanOut(feed, withPosition(e.data, { epoch, offset: e.offset }));
      feed.delivered = e.offset;
    }
  }

  /** Tells the home's subscribers to reload; the feed continues from `pos`. */
  private reload(feed: Feed, reason: RecoveryFailure, pos: Position): void {
    if (pos.epoch !== feed.epoch) {
      // what was held belongs to the old history; late events of it are dropped, not taken for a new change
      feed.pending.clear();
      feed.seen = pos.offset;
      if (feed.epoch !== null) feed.retired = [feed.epoch, ...feed.retired.slice(0, RETIRED_EPOCHS - 1)];
      feed.lost = -1;
    }
    feed.epoch = pos.epoch;
    feed.delivered = pos.offset;
    feed.seen = Math.max(feed.seen, pos.offset);
    for (const offset of feed.pending.keys()) if (offset <= pos.offset) feed.pending.delete(offset);
    const msg: AppReloadMessage = { op: 'reload', home: feed.homeId, reason, pos };
    this.send(feed, encodeApp(msg), msg);
  }

  private fanOut(feed: Feed, data: Uint8Array): void {
    this.send(feed, data, null);
  }

  /** An event's bus bytes (`reload` null) or a reload message, to the home's subscribers in their encodings. */
  private send(feed: Feed, data: Uint8Array, reload: AppReloadMessage | null): void {
    try {
      const { msgpack, json } = feed.topics;
      const binary = this.app.numSubscribers(msgpack);
      const textual = this.app.numSubscribers(json);
      if (binary > 0) this.app.publish(msgpack, reload ? data : appEventBytes(data), true);
      if (textual > 0) this.app.publish(json, reload ? JSON.stringify(reload) : appEventJson(data), false);
      // uWS fans a publish out to every subscribed socket: one frame each
      if (binary + textual > 0) this.framesOut?.(reload ? 'reload' : 'evt', binary + textual);
    } catch (err) {
      this.log.error({ err, homeId: feed.homeId }, 'event fan-out failed');
    }
  }
}
