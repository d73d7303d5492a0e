/**
 * Over 400 lines: the Redis shadow store with its write batching and reconnect handling, which share
 * state per batch; the scripts and the field logic already live in shadow-store-redis-layout.
 */
import type { Redis } from 'ioredis';
import type { Attrs } from '../../../proto/frames.js';
import { KeyedTurns } from '../../actors/keyed-turns.js';
import { TierError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import type { BatchObserver, CallObserver } from '../ports.js';
import { closeRedis, connectRedis, RedisKeys, type RedisTlsFiles } from '../redis.js';
import { backoff, monotonicMs } from '../../actors/clock.js';
import {
  applyField,
  applyReported,
  CLEAR_DESIRED,
  countWrites,
  REMOVE_SHADOW,
  LOAD_SESSION,
  fieldsOfReply,
  FENCED_HSET,
  FENCED_HSET_COMMAND,
  fieldsOf,
  WRITE_DEVICES,
  type FencedPipeline,
  type HubBatch,
  type ReportedEntry,
  cursorOf,
  plainCursor,
  DESIRED_REVISION,
  SET_DESIRED,
  shadowOf,
} from './shadow-store-redis-layout.js';
import { checkDesired, checkDesiredIn, desiredGrows, emptyDevice, mergeAttrs, notifyStored, staleInBatch, type CursorListener, type DesiredLimits, type DeviceRead, type DeviceShadow, type HubShadow, type SeqCursor, type SessionStart, type ShadowStore } from './shadow-store.js';

export interface RedisShadowStoreOptions {
  log: Logger;
  /** key names and their prefix */
  keys?: RedisKeys;
  /** @default 50 (ms): how long `writeReported`/`writeCursor` are collected before one pipeline writes them */
  batchWindowMs?: number;
  /** @default 10_000 (ms): how long `flush()` waits for an unreachable Redis before it rejects */
  flushTimeoutMs?: number;
  /** @default 2_000 (ms): the cap of the retry backoff while Redis fails */
  maxRetryMs?: number;
  /** told of each batch written (hubs in it, pipeline round trip) */
  batches?: BatchObserver;
}

/** Optimistic attempts of one `setDesired` before it gives up with `busy`. */
const MAX_DESIRED_ATTEMPTS = 50;

/** What a desired write read: the device, whether its desired field exists, and the field it compares. */
interface DesiredRead {
  device: DeviceShadow;
  stored: boolean;
  /** the device is the hub's (a field of it stored, or a report of it queued) */
  known?: boolean;
  field: string;
  /** the field's value as read (`''`: absent) */
  value: string;
}

/**
 * Shadows in Redis. One hash per hub, `<prefix>{h:<hubId>}:shadow` (one Redis Cluster slot), with
 * four fields per device and the hub's cursor:
 *
 *   r:<deviceId>  reported side, JSON `{"a":{attrs},"v":reportedVersion,"at":reportedAt}`
 *   d:<deviceId>  desired side, JSON `{"a":{attrs},"v":desiredVersion}`
 *   k:<deviceId>  kind, m:<deviceId> model (plain strings)
 *   cursor        JSON `{"boot":…,"seq":…}`
 *   ep, dr        the fencing epoch; the count of desired writes (DESIRED_REVISION)
 *
 * The sides are separate fields so the hot path writes `reported` with a plain HSET and never
 * reads or overwrites `desired`, which only `setDesired` writes.
 *
 * - `writeReported`/`writeCursor` are queued in this process, the latest per hub/device (cursor per
 *   hub) winning, and written every `batchWindowMs` as one pipeline of one HSET per hub (atomic per
 *   hub). **Loss window:** a crash loses the writes of the last `batchWindowMs` (default 50 ms) plus
 *   whatever could not be written while Redis was unreachable; none of them was acknowledged to a
 *   hub, since the session acks on the cursor listener, which hears only of written batches.
 * - While Redis fails, queued writes are kept (never dropped) and retried with capped backoff and at
 *   once when the connection is back; a write queued meanwhile is never overwritten by an older
 *   retry. `healthy` is false and `pendingWrites` counts what waits. Memory stays bounded: one entry
 *   per hub and device this node writes.
 * - `setDesired` reads, merges in this process (the same `mergeAttrs` as the memory store) and writes
 *   with a compare-and-set script, retrying when another writer came first: atomic per device, and
 *   with `limits` per hub (the check and the write: the hash's `dr` field counts desired writes,
 *   and a checked write compares it); durable (acknowledged by Redis) when it resolves. A node of
 *   an earlier version writes without raising `dr`: during a rolling update its writes can race
 *   past a check.
 * - `writeDevices` is one Lua script per hub. `load`/`loadCursor`/`loadSession` overlay this
 *   process's queued and in-flight writes on what Redis holds, but for those of a session older
 *   than the hub's stored fence (the hub moved to another node meanwhile: they will be refused);
 *   `loadSession` is one script.
 * - Single writer per hub, fenced: the hash's `ep` field holds the largest session epoch written,
 *   and a batch of an older session (a node back from a partition) is refused, never overwriting
 *   the new holder's writes; its cursor listener is not told, so those frames are never acked.
 *   So is a write queued after a newer session's in the same batch (a takeover within it), and a
 *   newer session's first write drops what an older one queued, rather than carrying it past the fence.
 */
export class RedisShadowStore implements ShadowStore {
  readonly batchWindowMs: number;
  private readonly keys: RedisKeys;
  private readonly log: Logger;
  private readonly flushTimeoutMs: number;
  private readonly batches: BatchObserver | undefined;
  private readonly maxRetryMs: number;

  /** writes not yet sent */
  private queued = new Map<string, HubBatch>();
  /** per hub, this process's checked `setDesired`s, one at a time */
  private readonly desiredTurns = new KeyedTurns();
  /** the batch on the wire and its completion (which never rejects) */
  private inflight: { batch: Map<string, HubBatch>; done: Promise<void> } | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** writes so far; every queued entry carries the number of the oldest write it covers */
  private order = 0;
  /** consecutive failed batches (0: the last batch was written) */
  private failures = 0;
  private waiters: Array<() => void> = [];
  private closing: Promise<void> | null = null;
  /** set once `close` gave up flushing: no further attempts */
  private stopped = false;
  private warnedClosed = false;
  /** a flush gave up on an unreachable Redis: `close` logs the writes lost instead of waiting again */
  private flushTimedOut = false;
  private readonly onReady = (): void => {
    if (this.failures > 0 && !this.inflight) void this.sendNow();
  };

  /** Takes ownership of `client`: `close()` flushes, then quits it. */
  constructor(
    private readonly client: Redis,
    options: RedisShadowStoreOptions,
  ) {
    this.log = options.log;
    this.keys = options.keys ?? new RedisKeys();
    this.batchWindowMs = options.batchWindowMs ?? 50;
    this.flushTimeoutMs = options.flushTimeoutMs ?? 10_000;
    this.maxRetryMs = options.maxRetryMs ?? 2_000;
    this.batches = options.batches;
    if (!(this.batchWindowMs >= 0 && Number.isFinite(this.batchWindowMs))) throw new RangeError(`batchWindowMs must be ≥ 0, got ${this.batchWindowMs}`);
    client.on('ready', this.onReady);
    if (!(FENCED_HSET_COMMAND in client)) client.defineCommand(FENCED_HSET_COMMAND, { numberOfKeys: 1, lua: FENCED_HSET });
  }

  static async connect(url: string, options: RedisShadowStoreOptions & { name: string; observe?: CallObserver; tls?: RedisTlsFiles }): Promise<RedisShadowStore> {
    return new RedisShadowStore(await connectRedis(url, { name: options.name, log: options.log, observe: options.observe, tls: options.tls }), options);
  }

  /** False while Redis is unreachable or the last batch failed: readiness should report it. */
  get healthy(): boolean {
    return this.failures === 0 && this.client.status === 'ready';
  }

  /** Device and cursor writes queued or in flight, not yet acknowledged by Redis. */
  /** Batches refused because a newer session of their hub had written (see `writeReported`). */
  staleBatches = 0;

  get pendingWrites(): number {
    let n = countWrites(this.queued);
    if (this.inflight) n += countWrites(this.inflight.batch);
    return n;
  }

  /** Of `pendingWrites`, those sent to Redis and not yet answered. */
  get inFlightWrites(): number {
    return this.inflight ? countWrites(this.inflight.batch) : 0;
  }

  writeReported(hubId: string, deviceId: string, device: DeviceShadow, epoch = 0): void {
    if (this.refuseAfterClose()) return;
    const batch = this.batchOf(hubId, epoch);
    if (!batch) return;
    const order = ++this.order;
    const before = batch.devices.get(deviceId);
    batch.devices.set(deviceId, {
      a: { ...device.reported },
      v: device.reportedVersion,
      at: device.reportedAt,
      k: device.kind,
      order: before ? before.order : order,
    });
    this.schedule();
  }

  writeCursor(hubId: string, cursor: SeqCursor, epoch = 0, stored?: CursorListener): void {
    if (this.refuseAfterClose()) return;
    const batch = this.batchOf(hubId, epoch);
    if (!batch) return;
    const order = batch.cursor ? batch.cursor.order : ++this.order;
    // one object a write (once per acknowledgement): the stored fields, the tag only when there is one
    const { boot, seq, tag } = cursor;
    batch.cursor = tag === undefined ? { boot, seq, order, stored } : { boot, seq, tag, order, stored };
    this.schedule();
  }

  /** While Redis cannot be read, this process's newest pending cursor answers (null when none). */
  async loadCursor(hubId: string): Promise<SeqCursor | null> {
    const pending = this.pendingOf(hubId);
    let stored: Array<string | null>;
    try {
      stored = await this.client.hmget(this.key(hubId), 'cursor', 'ep');
    } catch (err) {
      const local = latestCursor(pending, 0);
      if (local === null) throw err;
      return local;
    }
    return latestCursor(pending, fenceOf(stored[1])) ?? cursorOf(stored[0] ?? null);
  }

  /**
   * One script (the fence raised, then HGETALL): the hub's hash holds the cursor beside the
   * devices. This process's pending writes of older sessions are not laid over it: the raised
   * fence refuses them (or a newer session's first write drops them, `batchOf`), so the new
   * session must not start from them.
   */
  async loadSession(hubId: string, epoch = 0): Promise<SessionStart> {
    // taken before the read, as `load` and `loadCursor` take them
    const pending = this.pendingOf(hubId);
    const fields = fieldsOfReply(await LOAD_SESSION.run(this.client, [this.key(hubId)], [String(epoch)]));
    const fence = fenceOf(fields.ep);
    return { shadow: shadowOf(fields, overlayOf(pending, fence)), cursor: latestCursor(pending, fence) ?? cursorOf(fields.cursor ?? null) };
  }

  async load(hubId: string, read?: Pick<DeviceRead, 'spent'>): Promise<HubShadow> {
    // taken before the read: a batch that lands meanwhile is then in Redis or in this snapshot
    const pending = this.pendingOf(hubId);
    const fields = await this.client.hgetall(this.key(hubId));
    const started = performance.now();
    const shadow = shadowOf(fields, overlayOf(pending, fenceOf(fields.ep)));
    if (read?.spent) read.spent.ms += performance.now() - started;
    return shadow;
  }

  async loadDevices(hubId: string, deviceIds: readonly string[], read?: DeviceRead): Promise<HubShadow> {
    const ids = [...new Set(deviceIds)];
    const pending = this.pendingOf(hubId);
    const names = ids.flatMap((id) => (read?.reportedOnly === true ? [`r:${id}`, `k:${id}`, `m:${id}`] : [`r:${id}`, `d:${id}`, `k:${id}`, `m:${id}`]));
    const values = await this.client.hmget(this.key(hubId), 'ep', ...names);
    const started = performance.now();
    const fields: Record<string, string> = Object.create(null) as Record<string, string>;
    for (let i = 0; i < names.length; i++) if (values[i + 1] != null) fields[names[i]!] = values[i + 1]!;
    const wanted = new Set(ids);
    const shadow = shadowOf(fields, overlayOf(pending, fenceOf(values[0] ?? undefined)).filter(([id]) => wanted.has(id)));
    if (read?.spent) read.spent.ms += performance.now() - started;
    return shadow;
  }

  async setDesired(hubId: string, deviceId: string, patch: Attrs, limits?: DesiredLimits): Promise<DeviceShadow> {
    if (limits === undefined) return this.writeDesired(hubId, deviceId, patch, undefined);
    // this process's checked writes of a hub take turns: racing, all but one would read again
    return this.desiredTurns.run(hubId, () => this.writeDesired(hubId, deviceId, patch, limits));
  }

  /**
   * Reads, merges in this process (the same `mergeAttrs` as the memory store) and writes with
   * SET_DESIRED, reading again when another writer came first. Unchecked, or checked and growing
   * nothing, it reads the device alone and compares its field; checked and growing, it reads the
   * whole hub and compares the hub's desired revision, which every desired write (of any node) raises.
   */
  private async writeDesired(hubId: string, deviceId: string, patch: Attrs, limits: DesiredLimits | undefined): Promise<DeviceShadow> {
    const key = this.key(hubId);
    for (let attempt = 1; attempt <= MAX_DESIRED_ATTEMPTS; attempt++) {
      const read = limits === undefined ? await this.readDevice(key, hubId, deviceId) : await this.readChecked(key, hubId, deviceId, patch, limits);
      const device = read.device;
      const desired = { ...device.desired };
      const changed = mergeAttrs(desired, patch);
      if (changed) {
        device.desired = desired;
        device.desiredVersion++;
      } else if (read.stored) {
        return device; // nothing to write
      }
      // a first patch creates the device even when it changes nothing, as the memory store does
      const next = JSON.stringify({ a: device.desired, v: device.desiredVersion });
      if ((await SET_DESIRED.run(this.client, [key], [read.field, read.value, `d:${deviceId}`, next])) === 1) return device;
    }
    throw new TierError('busy', `desired state of ${hubId}/${deviceId} kept changing under ${MAX_DESIRED_ATTEMPTS} attempts`);
  }

  /** One device as stored, this process's queued reports over it; compared by its desired field. */
  private async readDevice(key: string, hubId: string, deviceId: string): Promise<DesiredRead> {
    const pending = this.pendingOf(hubId);
    const [r, d, k, m, ep] = await this.client.hmget(key, `r:${deviceId}`, `d:${deviceId}`, `k:${deviceId}`, `m:${deviceId}`, 'ep');
    const overlay = overlayOf(pending, fenceOf(ep)).filter(([id]) => id === deviceId);
    const device = emptyDevice();
    if (r != null) applyField(device, 'r', r);
    if (d != null) applyField(device, 'd', d);
    if (k != null) device.kind = k;
    if (m != null) device.model = m;
    for (const [, e] of overlay) applyReported(device, e);
    return { device, stored: d != null, known: r != null || d != null || k != null || m != null || overlay.length > 0, field: `d:${deviceId}`, value: d ?? '' };
  }

  /**
   * Checked against `limits` (throws the refusal): a write that adds no device and no desired bytes
   * is answered from the device alone and compared by its field, as an unchecked one (it cannot take
   * the hub past a limit whatever else is written meanwhile); one that grows reads the whole hub. Read
   * whole for every write, a hub at its limits cost 8 ms of the main thread a write, and one home's
   * rules at their action budget 89 % of a node (review "cluster-cost").
   */
  private async readChecked(key: string, hubId: string, deviceId: string, patch: Attrs, limits: DesiredLimits): Promise<DesiredRead> {
    const one = await this.readDevice(key, hubId, deviceId);
    const before = one.known === true ? one.device.desired : undefined;
    if (desiredGrows(deviceId, before, patch)) return this.readWhole(key, hubId, deviceId, patch, limits);
    const whole = (): never => {
      throw new Error('desiredGrows said the device alone answers');
    };
    const refusal = checkDesiredIn({ devices: whole, desiredOf: () => before, othersBytes: whole }, hubId, deviceId, patch, limits);
    if (refusal) throw refusal;
    return one;
  }

  /** The whole hub, checked against `limits` (throws the refusal); compared by the hub's desired revision. */
  private async readWhole(key: string, hubId: string, deviceId: string, patch: Attrs, limits: DesiredLimits): Promise<DesiredRead> {
    const pending = this.pendingOf(hubId);
    const fields = await this.client.hgetall(key);
    const shadow = shadowOf(fields, overlayOf(pending, fenceOf(fields.ep)));
    const refusal = checkDesired(shadow, hubId, deviceId, patch, limits);
    if (refusal) throw refusal;
    return { device: shadow[deviceId] ?? emptyDevice(), stored: fields[`d:${deviceId}`] !== undefined, field: DESIRED_REVISION, value: fields[DESIRED_REVISION] ?? '' };
  }

  async writeDevices(hubId: string, devices: Array<{ d: string; k: string; m?: string }>, left: string[], full: boolean, epoch = 0): Promise<boolean> {
    // a failed in-flight batch is queued again: wait for it, so the writes of removed devices are
    // dropped below rather than written back after the removal
    while (this.inflight) await this.inflight.done;
    const batch = this.queued.get(hubId);
    // a newer session of the hub on this node has queued writes: leave them be
    if (batch && staleInBatch(epoch, batch.epoch)) throw new TierError('session_taken_over');
    // a device only queued so far (reported, not yet in Redis) that the list removes is a change too
    let droppedQueued = false;
    if (batch) {
      const keep = full ? new Set(devices.map((d) => d.d)) : null;
      const gone = new Set(left);
      for (const id of [...batch.devices.keys()]) {
        if ((keep !== null && !keep.has(id)) || gone.has(id)) droppedQueued = batch.devices.delete(id) || droppedQueued;
      }
      // a queued write carries the kind the actor had then; the new list's kind is newer
      for (const d of devices) {
        const e = batch.devices.get(d.d);
        if (e?.k !== undefined) batch.devices.set(d.d, { ...e, k: d.k });
      }
      if (batch.devices.size === 0 && batch.cursor === undefined) this.queued.delete(hubId);
    }
    const args: string[] = [String(epoch), full ? '1' : '0', String(devices.length)];
    for (const d of devices) args.push(d.d, d.k, d.m === undefined ? '0' : '1', d.m ?? '');
    args.push(...left);
    const changes = Number(await WRITE_DEVICES.run(this.client, [this.key(hubId)], args));
    if (changes < 0) throw new TierError('session_taken_over');
    return droppedQueued || changes > 0;
  }

  async clearDesired(hubId: string): Promise<number> {
    return Number(await CLEAR_DESIRED.run(this.client, [this.key(hubId)], []));
  }

  async remove(hubId: string): Promise<void> {
    // an in-flight batch may be queued again on failure: wait for it, then drop what is queued
    while (this.inflight) await this.inflight.done;
    this.queued.delete(hubId);
    await REMOVE_SHADOW.run(this.client, [this.key(hubId)], []);
  }

  /**
   * Resolves when every write made before the call is acknowledged by Redis (or replaced by a later
   * write that is). Rejects after `flushTimeoutMs` while Redis stays unreachable; the writes stay
   * queued and are still retried.
   */
  async flush(): Promise<void> {
    const target = this.order;
    const deadline = monotonicMs() + this.flushTimeoutMs;
    while (this.oldestPending() <= target) {
      if (this.inflight) await this.inflight.done;
      else if (this.failures === 0) await this.sendNow();
      else {
        const left = deadline - monotonicMs();
        if (left <= 0) {
          this.flushTimedOut = true;
          throw new TierError('unavailable', `${this.pendingWrites} shadow writes not durable after ${this.flushTimeoutMs} ms: redis unreachable`);
        }
        await this.nextSettle(left);
      }
    }
  }

  /** Flushes (bounded by `flushTimeoutMs`), then quits the client; what could not be written is logged as lost. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    let answered = false;
    try {
      // a drain whose flush already waited out the timeout is not made to wait a second time
      if (this.flushTimedOut) throw new TierError('unavailable', `${this.pendingWrites} shadow writes not durable: redis unreachable`);
      await this.flush();
      answered = true;
    } catch (err) {
      this.log.error({ err, lost: this.pendingWrites }, 'shadow writes lost at close: redis unreachable');
    }
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.client.off('ready', this.onReady);
    // Redis did not take the writes: a QUIT would wait for it too
    await closeRedis(this.client, answered ? undefined : 0);
  }

  private refuseAfterClose(): boolean {
    if (this.closing === null) return false;
    if (!this.warnedClosed) this.log.warn('shadow write after close dropped');
    this.warnedClosed = true;
    return true;
  }

  /**
   * The hub's queued batch (opening one); null for a write the batch's epoch makes stale. A write
   * of a newer session drops what an older one queued: raised to the newer epoch, those writes
   * would pass the fence over what another node's session stored meanwhile (found by a hostile
   * review, 2026-12-06: an acknowledged report overwritten). Never acknowledged, the hub resends them.
   */
  private batchOf(hubId: string, epoch: number): HubBatch | null {
    let batch = this.queued.get(hubId);
    if (!batch) {
      batch = { devices: new Map(), cursor: undefined, epoch };
      this.queued.set(hubId, batch);
    } else if (epoch > batch.epoch) {
      if (batch.epoch > 0) this.dropStale(hubId, batch);
      batch.epoch = epoch;
    } else if (staleInBatch(epoch, batch.epoch)) {
      this.staleBatches++;
      this.log.debug({ hubId, epoch, queued: batch.epoch }, 'stale shadow write refused by the epoch fence');
      return null;
    }
    return batch;
  }

  /** Empties a batch of an older session; its cursor's listener is never told. */
  private dropStale(hubId: string, batch: HubBatch): void {
    if (batch.devices.size === 0 && batch.cursor === undefined) return;
    this.staleBatches++;
    this.log.debug({ hubId, epoch: batch.epoch }, 'queued shadow writes of an older session dropped by the epoch fence');
    batch.devices.clear();
    batch.cursor = undefined;
  }

  /** This process's unacknowledged writes of a hub as of now, oldest first (in flight, then queued). */
  private pendingOf(hubId: string): PendingBatch[] {
    const out: PendingBatch[] = [];
    for (const b of [this.inflight?.batch.get(hubId), this.queued.get(hubId)]) {
      if (b) out.push({ epoch: b.epoch, devices: [...b.devices], cursor: b.cursor && plainCursor(b.cursor) });
    }
    return out;
  }

  private oldestPending(): number {
    let min = Infinity;
    for (const m of this.inflight ? [this.inflight.batch, this.queued] : [this.queued]) {
      for (const b of m.values()) {
        for (const e of b.devices.values()) if (e.order < min) min = e.order;
        if (b.cursor && b.cursor.order < min) min = b.cursor.order;
      }
    }
    return min;
  }

  /** Arms the timer for the next batch: the batch window, or the retry backoff while Redis fails. */
  private schedule(): void {
    if (this.timer || this.inflight || this.queued.size === 0 || this.stopped) return;
    const delay = this.failures === 0 ? this.batchWindowMs : backoff(this.failures, this.maxRetryMs);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.sendNow();
    }, delay);
    this.timer.unref();
  }

  /** Sends what is queued now (unless a batch is on the wire); resolves when it settled. */
  private sendNow(): Promise<void> {
    if (this.inflight) return this.inflight.done;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.queued.size === 0) return Promise.resolve();
    const batch = this.queued;
    this.queued = new Map();
    const done = this.write(batch);
    this.inflight = { batch, done };
    return done;
  }

  private async write(batch: Map<string, HubBatch>): Promise<void> {
    const hubs = [...batch.keys()];
    const pipeline = this.client.pipeline();
    for (const hubId of hubs) {
      const b = batch.get(hubId)!;
      const args: string[] = [String(b.epoch)];
      for (const [field, value] of fieldsOf(b)) args.push(field, value);
      (pipeline as unknown as FencedPipeline)[FENCED_HSET_COMMAND](this.key(hubId), ...args);
    }
    let failed: string[] = [];
    let error: unknown;
    try {
      const started = performance.now();
      const results = await pipeline.exec();
      if (results === null) throw new Error('pipeline discarded');
      this.batches?.flushed(hubs.length, (performance.now() - started) / 1000);
      results.forEach(([err, written], i) => {
        if (err) {
          error ??= err;
          failed.push(hubs[i]!);
        } else if (written !== 0) {
          const cursor = batch.get(hubs[i]!)!.cursor;
          if (cursor?.stored) notifyStored(cursor.stored, hubs[i]!, cursor.seq, this.log);
        } else {
          // a newer session of the hub (another node) wrote after this one: this batch is stale
          this.staleBatches++;
          this.log.debug({ hubId: hubs[i], epoch: batch.get(hubs[i]!)!.epoch }, 'stale shadow batch refused by the epoch fence');
        }
      });
    } catch (err) {
      error = err;
      failed = hubs;
    }
    this.inflight = null;
    for (const hubId of failed) this.requeue(hubId, batch.get(hubId)!);
    if (failed.length > 0) {
      this.failures++;
      if (this.failures === 1) this.log.warn({ err: error, hubs: failed.length, pending: this.pendingWrites }, 'shadow writes failed; keeping them and retrying');
      else this.log.debug({ err: error, failures: this.failures, pending: this.pendingWrites }, 'shadow writes failed again');
    } else if (this.failures > 0) {
      this.log.info({ failures: this.failures, pending: this.pendingWrites }, 'shadow writes succeed again');
      this.failures = 0;
    }
    this.schedule();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Puts a failed hub batch back; what was queued since is newer and wins; an older session's writes are dropped. */
  private requeue(hubId: string, old: HubBatch): void {
    const now = this.queued.get(hubId);
    if (!now) {
      this.queued.set(hubId, old);
      return;
    }
    if (staleInBatch(old.epoch, now.epoch)) return this.dropStale(hubId, old);
    if (old.epoch > now.epoch) {
      if (now.epoch > 0) this.dropStale(hubId, now);
      now.epoch = old.epoch;
    }
    for (const [id, e] of old.devices) {
      const newer = now.devices.get(id);
      if (!newer) now.devices.set(id, e);
      else if (e.order < newer.order) now.devices.set(id, { ...newer, order: e.order });
    }
    if (old.cursor) {
      if (!now.cursor) now.cursor = old.cursor;
      else if (old.cursor.order < now.cursor.order) now.cursor = { ...now.cursor, order: old.cursor.order, stored: now.cursor.stored ?? old.cursor.stored };
    }
  }

  /** Resolves when the next batch settles, or after `ms`. */
  private nextSettle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.waiters.push(done);
    });
  }

  private key(hubId: string): string {
    return this.keys.hub(hubId, 'shadow');
  }
}

/** A snapshot of one pending batch of a hub (`pendingOf`). */
interface PendingBatch {
  readonly epoch: number;
  readonly devices: ReadonlyArray<[string, ReportedEntry]>;
  readonly cursor: SeqCursor | undefined;
}

/** The fence a hub's hash holds (its `ep` field), 0 for none. */
function fenceOf(ep: string | null | undefined): number {
  return ep == null ? 0 : Number(ep);
}

/** Batches the stored fence has not passed: an older session's are refused when sent, so never read. */
function current(pending: readonly PendingBatch[], fence: number): PendingBatch[] {
  return pending.filter((b) => !staleInBatch(b.epoch, fence));
}

/** The reported writes to lay over what Redis holds, oldest first. */
function overlayOf(pending: readonly PendingBatch[], fence: number): Array<[string, ReportedEntry]> {
  return current(pending, fence).flatMap((b) => b.devices);
}

/** The newest pending cursor (queued over in flight), or null. */
function latestCursor(pending: readonly PendingBatch[], fence: number): SeqCursor | null {
  let out: SeqCursor | null = null;
  for (const b of current(pending, fence)) if (b.cursor) out = b.cursor;
  return out;
}
