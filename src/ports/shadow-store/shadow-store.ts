import type { AttrValue, Attrs } from '../../../proto/frames.js';
import { TierError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';

/** One sub-device's shadow. */
export interface DeviceShadow {
  /** device kind from the hub's device list (sensor.door, switch, ...), if known */
  kind?: string | undefined;
  model?: string | undefined;
  reported: Attrs;
  /** increases by one on every change of `reported` */
  reportedVersion: number;
  /** ms since the Unix epoch of the last report */
  reportedAt: number;
  desired: Attrs;
  /** increases by one on every change of `desired` */
  desiredVersion: number;
}

/**
 * A hub's devices by id. Always made by `newShadow()`: a null-prototype object, so a device named
 * like an `Object.prototype` member (`toString`, `valueOf`) is just a device, never a built-in.
 */
export type HubShadow = Record<string, DeviceShadow>;

/**
 * The prototype of every shadow: empty, frozen, itself without a prototype. A shadow made from it
 * has no inherited names, like `Object.create(null)`, yet V8 keeps it a fast object whose layout
 * is shared across hubs (a null-prototype object is a hash table: +0.8 KB per session measured).
 */
const SHADOW_PROTO: object = Object.freeze(Object.create(null) as object);

/** An empty map keyed by ids, like a shadow (no Object.prototype behind it: ids are client-chosen). */
export function newIdMap<T>(): Record<string, T> {
  return Object.create(SHADOW_PROTO) as Record<string, T>;
}

/** An empty shadow. */
export function newShadow(): HubShadow {
  return newIdMap();
}

/** Told when a hub's cursor (and every write of the hub queued before it) is durable. */
export interface CursorListener {
  cursorStored(hubId: string, seq: number): void;
}

/** Tells a listener; its throw must not fail the batch (the write is durable whatever it does). */
export function notifyStored(listener: CursorListener, hubId: string, seq: number, log: Logger): void {
  try {
    listener.cursorStored(hubId, seq);
  } catch (err) {
    log.error({ err, hubId }, 'cursor listener failed');
  }
}

/**
 * Where a hub's inbound sequence stands: the boot id of its latest hello and the last sequence
 * number accepted under it, -1 for none yet (written at a hello with another boot id).
 */
export interface SeqCursor {
  boot: string;
  seq: number;
  /**
   * The tag of this numbering of the boot id in its events' `src` (event-source.ts): made anew each
   * time the numbering starts again for a boot id (a hub back on an earlier one), kept while it goes
   * on, so a resend after a failover makes the same `src` and a reused boot id another. Absent in
   * cursors written before 2026-12-07 (the tag is then the boot id's alone).
   */
  tag?: string;
}

/**
 * Per hub, per sub-device: reported and desired attribute maps, each with a version.
 *
 * - `writeReported` comes from the hot path (the hub actor, the single writer of `reported` while
 *   it holds the session): it is queued and written in batches. It returns at once; a node crash
 *   loses at most the writes of the last `batchWindowMs`, plus whatever is queued while the
 *   backend is unreachable (kept and retried, never dropped while the process lives); never
 *   those of a frame the hub saw acknowledged (see `writeCursor`). It never touches the desired
 *   side or the model; the kind is written when the device given has one and kept otherwise (the
 *   sessions give none: the embedded store then writes without reading). Writes carry the
 *   session's epoch (see `writeReported`).
 * - `setDesired` is a read-modify-write that is durable (acknowledged by the backend) when it
 *   resolves; a nil value removes the key; the version increases only on a change. It returns the
 *   device's new shadow. Given `limits`, it checks the hub's whole shadow against them
 *   (`checkDesired`) in the same atomic step as the write, against every other `setDesired` of the
 *   hub, from any process: concurrent writers cannot pass a limit together. A write that would
 *   pass one rejects with `TierError` `limit_exceeded` (its `field` named) and writes nothing.
 * - `flush()` may reject after a bounded wait while the backend is unreachable (the writes stay
 *   queued); `close()` flushes with the same bound and then drops what is left, logging it.
 * - `load` (and `loadCursor`, `loadSession`) return the latest durable state plus the queued
 *   writes of this process, but for those of a session older than the hub's fence (the hub was
 *   taken over meanwhile): they are refused when written, or dropped by a newer session's write.
 * - `delta` semantics: desired keys whose value differs from reported (see `desiredDelta`).
 */
/**
 * How a shadow is read: a rule's state (`loadDevices`) needs only the reported side, and a rule's
 * or an API read's home is charged the main thread's time of it (`spent`, which every store adds).
 */
export interface DeviceRead {
  /** the desired side may be left empty: not read */
  reportedOnly?: boolean;
  /** added the main thread's time of the read, in ms (reading and decoding, not waiting) */
  spent?: { ms: number };
}

export interface ShadowStore {
  /** the most a crash can lose of `writeReported`, ms (0: written through) */
  readonly batchWindowMs: number;
  /** `read.spent.ms`: added the main thread's time of the read (an API read is charged to its home) */
  load(hubId: string, read?: Pick<DeviceRead, 'spent'>): Promise<HubShadow>;
  /**
   * What `load` answers of these devices only (those the hub has): a rule's state reads the few it
   * names, at a cost that does not grow with the hub's other devices (a hub of 512 devices read
   * whole took 11-28 ms of the main thread an evaluation).
   */
  loadDevices(hubId: string, deviceIds: readonly string[], read?: DeviceRead): Promise<HubShadow>;
  /**
   * `epoch`: the writing session's directory epoch. Every adapter refuses a write whose epoch is
   * below the largest written or opened (`loadSession`) for the hub: a stale holder's late batch
   * cannot overwrite a newer holder's state, nor a write queued after a newer session's in the same
   * batch; 0 writes unfenced. A refused batch or write is dropped (counted where batched).
   * `device` is read during the call only (its reported side, version, time and kind are copied):
   * the caller may change it afterwards. Its desired side is ignored.
   */
  writeReported(hubId: string, deviceId: string, device: DeviceShadow, epoch?: number): void;
  /**
   * Queued, batched and fenced like `writeReported`; a crash may lose the last window. `stored`
   * is told once the cursor and every `writeReported` of the hub queued before it are durable
   * (at once where writes are; never for a batch refused by the epoch fence). The hub session
   * acknowledges frames only then: an acknowledgement means stored. Cursors written in one batch
   * window coalesce: `stored` hears the latest. Its `tag` is stored with it and answered by
   * `loadCursor`/`loadSession` (a cursor written without one has none), also across a later
   * device or desired write of the hub that does not write a cursor.
   */
  writeCursor(hubId: string, cursor: SeqCursor, epoch?: number, stored?: CursorListener): void;
  loadCursor(hubId: string): Promise<SeqCursor | null>;
  /**
   * What a hub session opens with: `load` and `loadCursor` together (one read where the backend
   * keeps both in one place). The embedded store remembers the devices it read until the hub's
   * first `writeDevices`, so a reconnecting hub's unchanged list is checked without reading
   * again: the caller may keep the shadow, but must not change its devices' kinds or models.
   * `epoch`: the opening session's directory epoch (0: unfenced). The hub's fence rises to it when
   * the call is made, before the read: a write of an older session that was not yet written is
   * refused and its listener never told, so every write a listener heard of is in the shadow
   * returned (a taken-over session cannot acknowledge what the new one's copy lacks).
   */
  loadSession(hubId: string, epoch?: number): Promise<SessionStart>;
  setDesired(hubId: string, deviceId: string, patch: Attrs, limits?: DesiredLimits): Promise<DeviceShadow>;
  /**
   * Replaces the device list: kinds are set, devices not in `devices` are removed when `full`.
   * Resolves once the list is stored (durable where the store is), whether or not it changed:
   * true when it changed what the store holds (a device added or removed, a kind or model set to
   * another value), false for a list it already held (as a hub sends on every reconnect).
   * `epoch`: fenced as `writeReported` (0: unfenced): a list of a session older than the hub's
   * fence rejects with `session_taken_over` and changes nothing, so a taken-over session's late
   * list cannot put back the devices the newer one's hub has since removed.
   */
  writeDevices(hubId: string, devices: Array<{ d: string; k: string; m?: string }>, left: string[], full: boolean, epoch?: number): Promise<boolean>;
  /**
   * Empties the desired side of every device of the hub in one atomic step (the hub moved to
   * another home: the old home's intents must not reach the new one); resolves when durable with
   * the number of devices it emptied. Each such device's desired version rises by one, as for any
   * change, so a session's cached copy is older; reported sides, kinds and models stay. Any
   * `setDesired` of the hub, from any process, comes wholly before or after it.
   */
  clearDesired(hubId: string): Promise<number>;
  /**
   * Removes every device and the cursor of a hub (the hub was deleted); resolves when durable.
   * Writes of the hub this process queued before are dropped or removed with the rest, and the
   * epoch fence rises by one: a late batch of a session whose epoch is not newer than any written
   * is refused, so a closing session cannot bring the shadow back.
   */
  remove(hubId: string): Promise<void>;
  /** Writes everything queued; resolves when durable. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** A hub session's start: its shadow and its cursor (null: none stored). */
export interface SessionStart {
  shadow: HubShadow;
  cursor: SeqCursor | null;
}

/**
 * The desired side of every device that has none: one frozen object shared by all shadows, since
 * most devices never get a desired state. Every writer replaces `desired`, never mutates it.
 */
export const NO_DESIRED: Attrs = Object.freeze({}) as Attrs;

export function emptyDevice(): DeviceShadow {
  // kind and model present from the start: adding them later would give every device object an
  // out-of-object property store in V8 (and a different hidden class per order of arrival)
  return { kind: undefined, model: undefined, reported: {}, reportedVersion: 0, reportedAt: 0, desired: NO_DESIRED, desiredVersion: 0 };
}

/** The reported side of a device as `writeReported` reads it (no kind: the store keeps the one it has). */
export function reportedSide(reported: Attrs, reportedVersion: number, reportedAt: number): DeviceShadow {
  return { kind: undefined, model: undefined, reported, reportedVersion, reportedAt, desired: NO_DESIRED, desiredVersion: 0 };
}

/** A copy of an attribute map; the shared empty desired map stays shared. */
export function copyAttrs(a: Attrs): Attrs {
  return a === NO_DESIRED ? a : { ...a };
}

/**
 * Whether a write of session `epoch` into a hub's batch that a newer session's write has raised to
 * `queued` (a takeover within the batch) is stale: the fence would refuse it in a batch of its own,
 * and merged it would overwrite the newer's. Epoch 0 writes unfenced.
 */
export function staleInBatch(epoch: number, queued: number): boolean {
  return epoch > 0 && epoch < queued;
}

/**
 * Whether a reported value is the desired one. A hub that holds a fraction in a C `float` reports
 * 21.3 as 21.299999237060547 (PROTOCOL.md §1 lets it write float32): compared exactly, its delta
 * never cleared and every reconnect sent the setpoint again (review "msgpack"). Integers compare
 * exactly: float32 rounds them past 2^24.
 */
export function reportedMeets(got: unknown, want: unknown): boolean {
  if (got === want) return true;
  return typeof got === 'number' && typeof want === 'number' && !Number.isInteger(want) && (Math.fround(want) === got || Math.fround(got) === want);
}

/** Desired attributes whose value the device has not reported yet. */
export function desiredDelta(device: Pick<DeviceShadow, 'desired' | 'reported'>): Attrs | null {
  let out: Attrs | null = null;
  for (const key in device.desired) {
    const want = device.desired[key]!;
    if (!Object.hasOwn(device.reported, key) || !reportedMeets(device.reported[key], want)) (out ??= {})[key] = want;
  }
  return out;
}

/** The delta of every device of a hub, devices without one left out. */
export function hubDelta(shadow: HubShadow): Record<string, Attrs> {
  const out = Object.create(null) as Record<string, Attrs>;
  for (const id in shadow) {
    const d = desiredDelta(shadow[id]!);
    if (d) out[id] = d;
  }
  return out;
}

/**
 * Applies a patch (nil removes) and tells whether anything changed. Keys are own keys only.
 * `before`: gets the value each changed key had (null: none), as a state event's `prev`.
 */
export function mergeAttrs(target: Attrs, patch: Attrs, before?: Attrs): boolean {
  let changed = false;
  for (const key in patch) {
    const v = patch[key]!;
    if (v === null) {
      if (Object.hasOwn(target, key)) {
        if (before) setOwn(before, key, target[key]!);
        delete target[key];
        changed = true;
      }
    } else if (!Object.hasOwn(target, key) || target[key] !== v) {
      if (before) setOwn(before, key, Object.hasOwn(target, key) ? target[key]! : null);
      setOwn(target, key, v);
      changed = true;
    }
  }
  return changed;
}

function setOwn(target: Attrs, key: string, v: AttrValue): void {
  // the protocol refuses a `__proto__` key, but a store keeps what it is given: as data
  if (key === '__proto__') Object.defineProperty(target, key, { value: v, writable: true, enumerable: true, configurable: true });
  else target[key] = v;
}

/** What desired state may make one hub hold (HubLimits has these fields); see `checkDesired`. */
export interface DesiredLimits {
  /** devices in the hub's shadow, reported or desired */
  devices: number;
  /** desired attributes per device */
  attrsPerDevice: number;
  /** characters of a string value */
  valueBytes: number;
  /** bytes of the hub's desired side: device ids, keys and values, numbers and booleans as 8 */
  desiredBytes: number;
}

/**
 * Whether patching `deviceId`'s desired side with `patch` keeps `shadow` (the hub as stored) within
 * `limits`: the refusal (`limit_exceeded`, its field named as the HTTP API names it), or null.
 */
export function checkDesired(shadow: HubShadow, hubId: string, deviceId: string, patch: Attrs, limits: DesiredLimits): TierError | null {
  const view: DesiredView = {
    devices: () => Object.keys(shadow).length,
    desiredOf: (id) => shadow[id]?.desired,
    othersBytes: (id) => {
      let bytes = 0;
      for (const other in shadow) if (other !== id) bytes += desiredBytes(other, shadow[other]!.desired);
      return bytes;
    },
  };
  return checkDesiredIn(view, hubId, deviceId, patch, limits);
}

/** What a desired write's limits read of its hub, each part only when the write needs it. */
export interface DesiredView {
  /** how many devices the hub has */
  devices(): number;
  /** a device's desired side; undefined: not a device of the hub */
  desiredOf(deviceId: string): Attrs | undefined;
  /** the desired bytes of every device but `deviceId` */
  othersBytes(deviceId: string): number;
}

/**
 * Whether a desired write needs the rest of the hub to be checked: only when it adds the device
 * (`before` undefined: the device count) or grows its desired bytes (the hub's total). Otherwise the
 * device alone answers every limit (`checkDesiredIn` never asks the view for the rest).
 */
export function desiredGrows(deviceId: string, before: Attrs | undefined, patch: Attrs): boolean {
  if (before === undefined) return true;
  const next = { ...before };
  mergeAttrs(next, patch);
  return desiredBytes(deviceId, next) > desiredBytes(deviceId, before);
}

/** `checkDesired` over a view of the hub: a store that reads the whole hub only to count it need not. */
export function checkDesiredIn(view: DesiredView, hubId: string, deviceId: string, patch: Attrs, limits: DesiredLimits): TierError | null {
  for (const key in patch) {
    const v = patch[key];
    if (typeof v === 'string' && v.length > limits.valueBytes) return desiredLimit(`desired.${key}`, `string values are limited to ${limits.valueBytes} characters`);
  }
  const desired = view.desiredOf(deviceId);
  if (desired === undefined && view.devices() >= limits.devices) return desiredLimit('deviceId', `hub ${hubId} has ${limits.devices} devices, the most allowed`);
  // a hub already past a limit (lowered since) may still shrink: only growth past one is refused
  const before = desired ?? NO_DESIRED;
  const next = { ...before };
  mergeAttrs(next, patch);
  const keys = Object.keys(next).length;
  if (keys > limits.attrsPerDevice && keys > Object.keys(before).length) return desiredLimit('desired', `more than ${limits.attrsPerDevice} attributes on device ${deviceId}`);
  const grown = desiredBytes(deviceId, next);
  if (grown <= desiredBytes(deviceId, before)) return null;
  if (grown + view.othersBytes(deviceId) > limits.desiredBytes) return desiredLimit('desired', `the desired state of hub ${hubId} would exceed ${limits.desiredBytes} (ids, keys and strings counted in UTF-16 code units, other values as 8)`);
  return null;
}

/** Bytes of one device's desired side as `DesiredLimits.desiredBytes` counts them (0 when empty). */
export function desiredBytes(deviceId: string, desired: Attrs): number {
  let n = 0;
  for (const key in desired) n += key.length + valueBytes(desired[key]!);
  return n === 0 ? 0 : n + deviceId.length;
}

/**
 * Bytes of an attribute value as every shadow limit counts them (reported and desired): a string
 * by its length (UTF-16 code units, one per ASCII character; text beyond ASCII takes up to 3 bytes
 * of UTF-8 a unit), any other value 8.
 */
export function valueBytes(v: AttrValue): number {
  return typeof v === 'string' ? v.length : 8;
}

function desiredLimit(field: string, what: string): TierError {
  return new TierError('limit_exceeded', `${field}: ${what}`, { field });
}
