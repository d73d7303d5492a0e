import type { CursorListener } from './shadow-store.js';
import type { FlatAttrs } from './shadow-store-lmdb-layout.js';

/** The reported side of one device as queued (a copy taken at `writeReported`). */
export interface QueuedDevice {
  /** the key list's number (StoredNames) with `a` the values in its order; -1: `a` is flat */
  n: number;
  a: FlatAttrs;
  v: number;
  at: number;
  k: string | undefined;
}

/** A written batch's attributes, once let go (never written to). */
const NO_ATTRS: FlatAttrs = Object.freeze([]) as unknown as FlatAttrs;

/**
 * What one hub wrote into a batch that lmdb has not run yet: the latest per device, the latest
 * cursor. A batch usually holds one report of a hub, so its first device and its cursor are fields
 * here, not a map and objects of their own: an entry lives until its commit is durable (its devices'
 * data until the transaction has put it), long enough for the collector to copy it out of the young
 * generation, and often to promote it.
 */
export class QueuedHub {
  /** the first device written (undefined: none), its reported side beside it */
  deviceId: string | undefined = undefined;
  n = -1;
  a: FlatAttrs = NO_ATTRS;
  v = 0;
  at = 0;
  k: string | undefined = undefined;
  /** the devices written after the first, once there is a second */
  more: Map<string, QueuedDevice> | null = null;
  /** the cursor written (boot undefined: none) and who is told once it is durable */
  boot: string | undefined = undefined;
  seq = 0;
  tag: string | undefined = undefined;
  stored: CursorListener | undefined = undefined;
  /** set in the transaction once the hub's batch passed the fence: its cursor is told when durable */
  written = false;
  constructor(public epoch: number) {}

  setDevice(deviceId: string, n: number, a: FlatAttrs, v: number, at: number, k: string | undefined): void {
    if (this.deviceId === undefined || this.deviceId === deviceId) {
      this.deviceId = deviceId;
      this.n = n;
      this.a = a;
      this.v = v;
      this.at = at;
      this.k = k;
    } else (this.more ??= new Map()).set(deviceId, { n, a, v, at, k });
  }

  /** Once the transaction has put the devices (lmdb-js has encoded them): only the cursor stays. */
  letDevicesGo(): void {
    this.a = NO_ATTRS;
    this.more = null;
  }
}

/**
 * Per hub, its batches and transactions issued or open and not yet committed (or failed). A batch
 * whose hubs have no other is written as plain puts: what the fence and its reads see of those
 * hubs is then what the batch writes over, whatever lmdb-js has queued before it.
 */
export class UncommittedHubs {
  private readonly counts = new Map<string, number>();

  add(hubId: string): void {
    this.counts.set(hubId, (this.counts.get(hubId) ?? 0) + 1);
  }

  /** The hubs' batch or transaction is committed, or failed. */
  release(hubIds: Iterable<string>): void {
    for (const id of hubIds) {
      const n = this.counts.get(id)!;
      if (n > 1) this.counts.set(id, n - 1);
      else this.counts.delete(id);
    }
  }

  /** True when each hub named has one write uncommitted: the batch asking. */
  onlyOne(hubIds: Iterable<string>): boolean {
    for (const id of hubIds) if (this.counts.get(id) !== 1) return false;
    return true;
  }
}
