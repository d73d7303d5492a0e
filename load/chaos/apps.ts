import WebSocket from 'ws';
import { HubtierClient, type AppEventMessage, type ReloadInfo } from '../../src/client/index.js';
import { deviceKey } from './chaos-hub.js';
import { bump, counts, sum } from './ledger.js';
import type { SendOrder } from './send-order.js';

/**
 * The apps of a chaos run: each a `HubtierClient` (the repository's client library, as an app
 * uses it) subscribed to some of the homes, connected through the run's balancer: when its node
 * goes it reconnects, lands on a node that is up and recovers what it missed from its last
 * positions there. What an app is promised, checked here:
 * - every event once, in its home's order: the positions it is handed follow each other (the
 *   epoch's next offset) unless it was told to reload first (`gaps`, `repeats` otherwise);
 * - every acknowledged report reaches it: each device's counter values up to the last acknowledged
 *   all arrived by the end (`missed`, checked by `missedAcked`), from the last value the hub had
 *   sent when the app was last told to reload (what came before a reload may be gone with it);
 * - no old value after a new one, among events with a position: a device's counter value handed
 *   over after a larger one may be a report sent again (at least once), never one the hub last
 *   sent before it first sent the larger (`staleAfterNew`: a session the hub had left publishing
 *   late, see `SendOrder`). Events without a position are unordered by design (README);
 * - an event handed over without a position is not handed over again with one (`placedAgain`).
 * Reloads are expected where the history's continuity is lost (the embedded node after a kill -9:
 * it published positions it may not have stored) and counted by reason.
 */

export interface AppsReport {
  apps: number;
  homes: number;
  /** events with a position delivered to the apps */
  delivered: number;
  /** events delivered without one (the history could not take them: they go out live, once) */
  unpositioned: number;
  /**
   * positions the client library moved past without handing their event over again: one it had
   * handed over without a position (`onSkip`); checked for order as delivered ones are
   */
  skipped: number;
  /**
   * state events of a counter value already delivered, at another position: a report published
   * twice (resent after its session ended before the ack; events leave before the store decides).
   * At least once, as documented: counted, not a failure.
   */
  reportsTwice: number;
  /** a delivered position that was not the one after the last, without a reload between */
  gaps: number;
  /** a delivered position at or before the last one of the same epoch */
  repeats: number;
  /** positioned state events of a value the hub last sent before it first sent a larger positioned one already delivered */
  staleAfterNew: number;
  /**
   * state events handed over without a position and then again, the same event, with one (the
   * history stored it as Redis died; the client library hands it over once)
   */
  placedAgain: number;
  /**
   * reloads the apps were told to do, by reason. `too_old` in cluster mode: an app that was away
   * while an event of its home went out without a position (its append failed in a Redis fault),
   * which the history noted, is told to reload rather than that it recovered everything
   */
  reloads: Record<string, number>;
  /** homes told to reload at least once */
  homesReloaded: number;
  /** acknowledged reports whose state event no app saw (past the last reload's floor) */
  missed: number;
  /** devices with such a miss */
  devicesWithMiss: number;
  /**
   * the first 20 misses: hub, device, counter value, when it was first sent (s into the traffic),
   * and the answers to its home's `sub` within 10 s of that (when, and whether they said recovered)
   */
  missedSample: Array<{ hub: string; device: string; n: number; sentS: number | null; subscribedS: Array<[number, boolean | undefined]> }>;
  /** subscriptions the server refused */
  refused: Record<string, number>;
  /** the apps' connections through the balancer, by the node each reached (the first ones and every reconnect) */
  connectionsByNode: Record<string, number>;
}

interface HomeWatch {
  last: { epoch: string; offset: number } | null;
  reloaded: boolean;
  /** counter values `n` seen, by `deviceKey` */
  seen: Map<string, Set<number>>;
  /** values at or below these (by `deviceKey`) need not arrive: sent before the last reload */
  floor: Map<string, number>;
  /** the largest counter value delivered, by `deviceKey` */
  top: Map<string, number>;
  /** state events delivered without a position, by `eventKey` */
  unplaced: Set<string>;
  /** when each answer to the home's sub came (s, SendOrder's clock), and whether it said recovered */
  subscribedS: Array<[number, boolean | undefined]>;
}

/** Acknowledged counter values no app saw (`AppWatch.missedAcked`), with the first ones. */
interface Missed {
  missed: number;
  devices: number;
  sample: AppsReport['missedSample'];
}

/** A state event's identity: its device's version, with the value and time it carried. */
const eventKey = (key: string, evt: { version: number; ts: number }, n: number) => `${key}#${evt.version}#${evt.ts}#${n}`;

/** For a home, the counter value each of its devices was last sent, by `deviceKey`: a reload's floor. */
export type SentOf = (home: string) => Map<string, number>;

export class AppWatch {
  private readonly clients: HubtierClient[] = [];
  private readonly homes = new Map<string, HomeWatch>();
  private delivered = 0;
  private unpositioned = 0;
  private skipped = 0;
  private reportsTwice = 0;
  private gaps = 0;
  private repeats = 0;
  private staleAfterNew = 0;
  private placedAgain = 0;
  private readonly reloads = counts();
  private readonly refused = counts();

  private constructor(
    private readonly sentOf: SentOf,
    private readonly order: SendOrder,
  ) {}

  /**
   * `homes` spread over `apps` clients (at most one a home), each connecting to `url` (the run's
   * balancer: a node that is up, another one after each reconnect as it falls); resolves when every
   * subscription is answered.
   */
  static async start(url: string, adminToken: string, homes: string[], apps: number, sentOf: SentOf, order: SendOrder): Promise<AppWatch> {
    const w = new AppWatch(sentOf, order);
    const ready: Array<Promise<unknown>> = [];
    apps = Math.min(apps, homes.length);
    for (let j = 0; j < apps; j++) {
      // backoff compressed as the hubs' is, to keep a run short
      const client = new HubtierClient({ url, token: adminToken, WebSocket, backoff: { initialMs: 200, maxMs: 2_000 } });
      w.clients.push(client);
      for (let h = j; h < homes.length; h += apps) ready.push(w.watch(client, homes[h]!));
    }
    await Promise.all(ready);
    return w;
  }

  /** Reloads so far, all reasons but `too_old`: read before and after a fault. */
  get reloadCount(): number {
    return sum(this.reloads) - this.lossReloadCount;
  }

  /** `too_old` reloads so far (see `AppsReport.reloads`). */
  get lossReloadCount(): number {
    return this.reloads.too_old ?? 0;
  }

  /** Resolves once no event has arrived for `quietMs` (at most `maxMs`): the last reports' events are delivered. */
  async settle(quietMs: number, maxMs: number): Promise<void> {
    const until = Date.now() + maxMs;
    let last = -1;
    while (this.delivered !== last && Date.now() < until) {
      last = this.delivered;
      await new Promise((r) => setTimeout(r, quietMs));
    }
  }

  /**
   * Acknowledged counter values no app saw: `acked` lists, per home, each device's largest value
   * the server acknowledged, by `deviceKey`.
   */
  missedAcked(acked: Map<string, Map<string, number>>): Missed {
    let missed = 0;
    let devices = 0;
    const sample: AppsReport['missedSample'] = [];
    for (const [home, byDevice] of acked) {
      const watch = this.homes.get(home);
      if (!watch) continue;
      for (const [key, top] of byDevice) {
        const seen = watch.seen.get(key);
        let m = 0;
        for (let n = (watch.floor.get(key) ?? 0) + 1; n <= top; n++) {
          if (seen?.has(n)) continue;
          m++;
          const [hub, device] = key.split('\u0000') as [string, string];
          const sentS = this.order.sentAtS(key, n) ?? null;
          const near = watch.subscribedS.filter(([s]) => sentS === null || Math.abs(s - sentS) < 10);
          if (sample.length < 20) sample.push({ hub, device, n, sentS, subscribedS: near });
        }
        if (m > 0) devices++;
        missed += m;
      }
    }
    return { missed, devices, sample };
  }

  report(missed: Missed, connectionsByNode: Record<string, number>): AppsReport {
    return {
      apps: this.clients.length,
      homes: this.homes.size,
      delivered: this.delivered,
      unpositioned: this.unpositioned,
      skipped: this.skipped,
      reportsTwice: this.reportsTwice,
      gaps: this.gaps,
      repeats: this.repeats,
      staleAfterNew: this.staleAfterNew,
      placedAgain: this.placedAgain,
      reloads: { ...this.reloads },
      homesReloaded: [...this.homes.values()].filter((h) => h.reloaded).length,
      missed: missed.missed,
      devicesWithMiss: missed.devices,
      missedSample: missed.sample,
      refused: { ...this.refused },
      connectionsByNode: { ...connectionsByNode },
    };
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.clients.map((c) => c.close()));
  }

  private watch(client: HubtierClient, home: string): Promise<unknown> {
    const watch: HomeWatch = { last: null, reloaded: false, seen: new Map(), floor: new Map(), top: new Map(), unplaced: new Set(), subscribedS: [] };
    this.homes.set(home, watch);
    const sub = client.subscribe(home, {
      onEvent: (evt) => this.onEvent(watch, evt),
      onSkip: (pos) => {
        this.skipped++;
        this.follow(watch, pos);
      },
      onReload: (info: ReloadInfo) => {
        bump(this.reloads, info.reason);
        watch.reloaded = true;
        watch.last = info.pos;
        watch.floor = this.sentOf(home);
      },
      onError: (err) => bump(this.refused, err.code),
      onSubscribed: (r) => void watch.subscribedS.push([this.order.nowS(), r.recovered]),
    });
    // a refusal is counted by onError and fails the run; it does not stop the others
    return sub.ready.then(
      (r) => void (watch.last ??= r.pos),
      () => {},
    );
  }

  /** The next position the app was handed (an event, or a skip): the one after the last, or a gap or repeat. */
  private follow(watch: HomeWatch, pos: { epoch: string; offset: number }): void {
    const last = watch.last;
    if (last !== null && pos.epoch === last.epoch && pos.offset <= last.offset) this.repeats++;
    else if (last !== null && (pos.epoch !== last.epoch || pos.offset !== last.offset + 1)) this.gaps++;
    watch.last = pos;
  }

  private onEvent(watch: HomeWatch, evt: AppEventMessage): void {
    if (evt.pos) {
      this.delivered++;
      this.follow(watch, evt.pos);
    } else this.unpositioned++;
    if (evt.kind !== 'state') return;
    const n = evt.attrs.n;
    if (typeof n !== 'number') return;
    const key = deviceKey(evt.hub, evt.device);
    let seen = watch.seen.get(key);
    if (!seen) watch.seen.set(key, (seen = new Set()));
    if (seen.has(n)) this.reportsTwice++;
    else seen.add(n);
    // among events with a position: one without (the history could not take it) goes out live,
    // unordered, and a gap's fill may hand over an older positioned event after it
    if (!evt.pos) {
      watch.unplaced.add(eventKey(key, evt, n));
      return;
    }
    if (watch.unplaced.size > 0 && watch.unplaced.has(eventKey(key, evt, n))) this.placedAgain++;
    const top = watch.top.get(key);
    if (top === undefined || n > top) watch.top.set(key, n);
    else if (n < top && this.order.stale(key, n, top)) this.staleAfterNew++;
  }
}
