import { monotonicMs } from '../../actors/clock.js';
import { labelsOf, type HubExpect, type HubInfo, type HubLabels, type HubPage, type HubPatch, type HubPlacement, type HubQuery, type HubRecord, type HubRegistry } from './hub-registry.js';

/**
 * A record as read at `at` (`monotonicMs`: a small integer, not a heap number per hub), its
 * fields on the entry itself and without secrets (the node would otherwise hold every hub's sealed
 * secret, ~100 B each, for commands that never read it); `homeId` undefined: no such hub.
 * One object a cached hub: a spread copy of the record beside the entry cost 40 B more, V8 giving
 * such a copy four fields in the object and the rest a property array of their own.
 */
class Entry {
  readonly homeId: string | undefined;
  readonly model: string | undefined;
  readonly enabled: boolean;
  readonly createdAt: number;
  readonly secretVersion: number | undefined;
  /** the cache's own copy, never the caller's object */
  readonly labels: HubLabels | undefined;
  readonly firmware: string | undefined;

  constructor(
    readonly hubId: string,
    r: HubInfo | null,
    readonly at: number,
  ) {
    this.homeId = r?.homeId;
    this.model = r?.model;
    this.enabled = r?.enabled ?? false;
    this.createdAt = r?.createdAt ?? 0;
    this.secretVersion = r?.secretVersion === 1 ? undefined : r?.secretVersion;
    this.labels = labelsOf(r?.labels);
    this.firmware = r?.firmware;
  }

  /** The record for a caller, who may change it: the fields it has, labels a copy of their own. */
  info(): HubInfo | null {
    if (this.homeId === undefined) return null;
    const out: HubInfo = { hubId: this.hubId, homeId: this.homeId, model: this.model, enabled: this.enabled, createdAt: this.createdAt };
    if (this.secretVersion !== undefined) out.secretVersion = this.secretVersion;
    if (this.labels !== undefined) out.labels = { ...this.labels };
    if (this.firmware !== undefined) out.firmware = this.firmware;
    return out;
  }
}

/**
 * A per-node read cache in front of a remote registry for `lookup`: every command looks a hub up,
 * and a Redis round trip each time would put Redis on the command path. `get` (the handshake
 * check, with the secrets) always reads the registry, and leaves the record, without its secrets,
 * for the lookups that follow. (A handshake needs Redis for its nonce anyway, so a cached secret
 * would spare it nothing during an outage.) Records are fresh for
 * `ttlMs` (so a disabled hub reaches every node within that time; `get` sees a new secret at once); while the
 * registry is unreachable, a record up to `staleMs` old is served instead of failing, so commands
 * to known hubs survive a short Redis outage. Unknown ids are cached too (briefly),
 * so probing random ids does not reach Redis each time. Writes go through and drop the entry;
 * `forget` drops it when another node wrote (the fleet's change notice on the bus), so a disabled,
 * moved or re-keyed hub is seen by every node within the notice's delivery, not the ttl. Lists are
 * not cached.
 */
export class CachingHubRegistry implements HubRegistry {
  private readonly entries = new Map<string, Entry>();
  /**
   * The hubs with a read in flight, and the drops of each (writes, `forget`s) since: a read keeps its
   * answer only if its hub had none meanwhile (it may have read the record before the write, and
   * kept, that answer would stand for the ttl: a moved hub's old home for 30 s). Per hub: one count
   * for the node let a rollout's notices keep every lookup from being cached.
   */
  private readonly reading = new Map<string, { readers: number; drops: number }>();

  constructor(
    private readonly inner: HubRegistry,
    /** @default 30_000 (ms) */
    private readonly ttlMs = 30_000,
    /** @default 600_000 (ms) */
    private readonly staleMs = 600_000,
    /** @default 100_000: entries kept; the oldest go first */
    private readonly maxEntries = 100_000,
    /** @default monotonicMs: on the wall clock, a step back kept a disabled hub's entry valid until it caught up */
    private readonly now: () => number = monotonicMs,
    /** false while the registry's Redis is reported not answering (its PING): a stale entry is answered at once */
    private readonly answering: () => boolean = () => true,
  ) {}

  get inTurn(): boolean {
    return this.inner.inTurn;
  }

  async create(record: HubRecord): Promise<void> {
    this.drop(record.hubId);
    try {
      await this.inner.create(record);
    } finally {
      this.drop(record.hubId);
    }
  }

  async get(hubId: string): Promise<HubRecord | null> {
    const read = this.beginRead(hubId);
    let record: HubRecord | null;
    try {
      record = await this.inner.get(hubId);
    } finally {
      this.endRead(hubId);
    }
    if (read.undisturbed()) this.keep(hubId, record, this.now());
    return record;
  }

  async lookup(hubId: string): Promise<HubInfo | null> {
    const hit = this.entries.get(hubId);
    const now = this.now();
    // unknown ids are re-checked sooner: a hub provisioned on another node shows up within a second
    const ttl = hit?.homeId === undefined ? Math.min(1_000, this.ttlMs) : this.ttlMs;
    if (hit && now - hit.at < ttl) return hit.info();
    const usable = hit !== undefined && hit.homeId !== undefined && now - hit.at < this.staleMs;
    if (usable && !this.answering()) {
      // a hung Redis: every read would wait its 2 s timeout before the stale answer (twice for an
      // app's command: its commands missed their timeouts); one read per hub refreshes behind it
      if (!this.reading.has(hubId)) this.read(hubId, hit, now).catch(() => {});
      return hit.info();
    }
    return this.read(hubId, usable ? hit : undefined, now);
  }

  /** The registry's answer, kept unless the hub changed meanwhile; `stale` answered when the read fails. */
  private async read(hubId: string, stale: Entry | undefined, now: number): Promise<HubInfo | null> {
    let record: HubInfo | null;
    const read = this.beginRead(hubId);
    try {
      record = await this.inner.lookup(hubId);
    } catch (err) {
      if (stale) return stale.info();
      throw err;
    } finally {
      this.endRead(hubId);
    }
    if (read.undisturbed()) this.keep(hubId, record, now);
    return record;
  }

  async setEnabled(hubId: string, enabled: boolean): Promise<boolean> {
    return (await this.update(hubId, { enabled })) !== null;
  }

  list(query: HubQuery): Promise<HubPage> {
    return this.inner.list(query);
  }

  listHome(homeId: string, limit: number, after?: string): Promise<HubRecord[]> {
    return this.inner.listHome(homeId, limit, after);
  }

  async update(hubId: string, patch: HubPatch, expect?: HubExpect): Promise<HubRecord | null> {
    this.drop(hubId);
    try {
      return await this.inner.update(hubId, patch, expect);
    } finally {
      this.drop(hubId);
    }
  }

  async rotateSecret(hubId: string, secret: string, graceUntil: number, key?: string): Promise<HubRecord | null> {
    this.drop(hubId);
    try {
      return await this.inner.rotateSecret(hubId, secret, graceUntil, key);
    } finally {
      this.drop(hubId);
    }
  }

  async remove(hubId: string): Promise<boolean> {
    this.drop(hubId);
    try {
      return await this.inner.remove(hubId);
    } finally {
      this.drop(hubId);
    }
  }

  /** `record` as read at `now` (its secrets left out, labels copied); the oldest entry goes past maxEntries. */
  private keep(hubId: string, record: HubInfo | null, now: number): void {
    this.entries.delete(hubId);
    this.entries.set(hubId, new Entry(hubId, record, now));
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  /** A read of `hubId` begins; `undisturbed()` then says whether no drop of the hub came since. */
  private beginRead(hubId: string): { undisturbed(): boolean } {
    let read = this.reading.get(hubId);
    if (!read) this.reading.set(hubId, (read = { readers: 0, drops: 0 }));
    read.readers++;
    const at = read.drops;
    const same = read;
    return { undisturbed: () => same.drops === at };
  }

  private endRead(hubId: string): void {
    const read = this.reading.get(hubId);
    if (read && --read.readers === 0) this.reading.delete(hubId);
  }

  private drop(hubId: string): void {
    const read = this.reading.get(hubId);
    if (read) read.drops++;
    this.entries.delete(hubId);
  }

  forget(hubId: string): void {
    this.drop(hubId);
    this.inner.forget(hubId);
  }

  forgetAll(): void {
    for (const read of this.reading.values()) read.drops++;
    this.entries.clear();
    this.inner.forgetAll();
  }

  /** Always the store's answer: a re-check must not trust what the cache kept. */
  placements(hubIds: readonly string[]): Promise<Array<HubPlacement | null>> {
    return this.inner.placements(hubIds);
  }

  async close(): Promise<void> {
    await this.inner.close();
  }
}
