/**
 * The hubs' entries of the embedded shadow store (`[HUB, hubId]`: epoch, cursor, number) as its
 * writes leave them, the epoch and number of hubs written lately remembered, and the numbers given
 * to hubs at their first device record (see HUB in shadow-store-lmdb-layout.ts).
 */
import type { Database } from 'lmdb';
import { HUB, hubEntry, hubKey, LEGACY_START, NEXT_HUB, type Key, type Stored, type StoredHub } from './shadow-store-lmdb-layout.js';

/** Hubs whose entry's epoch and number are remembered at most. */
const MAX_REMEMBERED = 1_024;

/** What a hub's entry holds for the fence and the records' keys; n < 0: no number yet. */
export interface KnownHub {
  epoch: number;
  n: number;
}

/** The next number to give a hub: the one stored under `[HUB, NEXT_HUB]`, and above the last numbered record's. */
export function nextHubNumber(db: Database<Stored, Key>): number {
  let next = db.get([HUB, NEXT_HUB]);
  if (typeof next !== 'number') next = 0;
  for (const key of db.getKeys({ start: LEGACY_START, reverse: true, limit: 1 })) {
    if (Array.isArray(key) && typeof key[0] === 'number') next = Math.max(next, key[0] + 1);
  }
  return next;
}

/**
 * The entries of the hubs written lately, as the store's transactions left them (the store is their
 * only writer): the fence and the records' keys read them here, not the entry (a read and a decode
 * per hub and batch: about 1.4 µs of a report's 19 on the main thread at speed). Set where a
 * batch's puts are issued, in a transaction or out of one when nothing else of the hub is
 * uncommitted, so it is what the entry holds once they commit; emptied after a failed commit (an
 * epoch left ahead of its entry meanwhile only refuses sessions older than the one that wrote it;
 * a number given in it is not given again).
 */
export class HubEntries {
  private readonly remembered = new Map<string, KnownHub>();
  /**
   * Epochs of sessions opened (`loadSession`) and not yet written: the fence holds them from the
   * open on, so a taken-over session cannot write what the new one's copy lacks. One number per
   * hub opened, dropped once a commit wrote that epoch.
   */
  private readonly opening = new Map<string, number>();
  /** the number the next hub gets (stored under `[HUB, NEXT_HUB]` as each is given) */
  private next: number;

  constructor(private readonly db: Database<Stored, Key>) {
    this.next = nextHubNumber(db);
  }

  /** The hub's epoch and number if written lately. */
  known(hubId: string): KnownHub | undefined {
    return this.remembered.get(hubId);
  }

  /** The hub's entry as stored (as the transaction sees it, in one). */
  read(hubId: string): StoredHub | undefined {
    return this.db.get(hubKey(hubId)) as StoredHub | undefined;
  }

  /** The epoch the hub's fence holds (remembered, or read from its entry); 0 for a hub without one. */
  epochOf(hubId: string): number {
    return this.remembered.get(hubId)?.epoch ?? this.read(hubId)?.[0] ?? 0;
  }

  /** A session of `epoch` opens: from now on writes of older sessions are stale. */
  open(hubId: string, epoch: number): void {
    if (epoch > (this.opening.get(hubId) ?? 0)) this.opening.set(hubId, epoch);
  }

  /** The epoch of the newest session opened and not yet written (0: none). */
  openedEpoch(hubId: string): number {
    return this.opening.size === 0 ? 0 : (this.opening.get(hubId) ?? 0);
  }

  /**
   * After a commit of the hub's batch of `written` (its epoch): an opened epoch not above it is the
   * stored fence's to keep (a batch the fence refused had a newer epoch stored already).
   */
  settle(hubId: string, written: number): void {
    if (this.opening.size === 0) return;
    const opened = this.opening.get(hubId);
    if (opened !== undefined && written >= opened) this.opening.delete(hubId);
  }

  /** The hub's number, if it has one (remembered, or read from its entry). */
  numberOf(hubId: string): number | undefined {
    const n = this.remembered.get(hubId)?.n ?? this.read(hubId)?.[3];
    return n === undefined || n < 0 ? undefined : n;
  }

  /** In a transaction: the hub's number, given now (its entry written with it) if it has none. */
  numberFor(hubId: string): number {
    const remembered = this.remembered.get(hubId)?.n;
    if (remembered !== undefined && remembered >= 0) return remembered;
    const h = this.read(hubId);
    if (h !== undefined && h[3] >= 0) return h[3];
    const n = this.give();
    // the cursor's tag kept: dropped, a numbering begun again took its boot id's first tag (review diff16)
    void this.db.put(hubKey(hubId), hubEntry(h?.[0] ?? 0, h?.[1] ?? null, h?.[2] ?? 0, n, h?.[4]));
    this.remember(hubId, h?.[0] ?? 0, n);
    return n;
  }

  /** A number no hub has had; the next one is put before the entry that will hold this one. */
  give(): number {
    const n = this.next++;
    void this.db.put([HUB, NEXT_HUB], this.next);
    return n;
  }

  remember(hubId: string, epoch: number, n: number): void {
    const known = this.remembered.get(hubId);
    if (known) {
      known.epoch = epoch;
      known.n = n;
      return;
    }
    if (this.remembered.size >= MAX_REMEMBERED) this.remembered.delete(this.remembered.keys().next().value!);
    this.remembered.set(hubId, { epoch, n });
  }

  /** The hub was removed (its fence raised above every epoch written): nothing of it is kept here, an epoch opened and never written neither. */
  forget(hubId: string): void {
    this.remembered.delete(hubId);
    // hubs deleted before they wrote had left one entry each for the process's life (a churn review: 22,000 of 22,000)
    this.opening.delete(hubId);
  }

  /** After a failed commit: what it wrote was not kept. */
  forgetAll(): void {
    this.remembered.clear();
  }

  /** Hubs remembered (bounded by MAX_REMEMBERED). */
  get size(): number {
    return this.remembered.size;
  }
}
