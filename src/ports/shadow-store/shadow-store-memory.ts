import type { Attrs } from '../../../proto/frames.js';
import { TierError } from '../../errors.js';
import { checkDesired, copyAttrs, emptyDevice, mergeAttrs, newShadow, NO_DESIRED, type CursorListener, type DesiredLimits, type DeviceRead, type DeviceShadow, type HubShadow, type SeqCursor, type SessionStart, type ShadowStore } from './shadow-store.js';

/**
 * Shadows held in this process (`DATA_DIR=:memory:`, tests). Writes are applied at once (batch
 * window 0); everything is lost when the process ends, which a throwaway node accepts.
 * Stored objects are copies: callers may keep mutating what they passed in.
 */
export class MemoryShadowStore implements ShadowStore {
  readonly batchWindowMs = 0;
  private readonly hubs = new Map<string, HubShadow>();
  private readonly cursors = new Map<string, SeqCursor>();
  /**
   * Per hub, the largest session epoch that wrote or opened: writes apply at once, but a session
   * taken over (its frames still queued behind a slow one) must not write after the new one read.
   */
  private readonly fences = new Map<string, number>();

  writeCursor(hubId: string, cursor: SeqCursor, epoch = 0, stored?: CursorListener): void {
    if (this.stale(hubId, epoch)) return;
    this.cursors.set(hubId, { ...cursor });
    stored?.cursorStored(hubId, cursor.seq);
  }

  /** Raises the hub's fence to `epoch`; true for a write of a session older than it (refused). */
  private stale(hubId: string, epoch: number): boolean {
    if (epoch === 0) return false;
    const fence = this.fences.get(hubId) ?? 0;
    if (epoch < fence) return true;
    if (epoch > fence) this.fences.set(hubId, epoch);
    return false;
  }

  async loadCursor(hubId: string): Promise<SeqCursor | null> {
    const c = this.cursors.get(hubId);
    return c ? { ...c } : null;
  }

  async loadSession(hubId: string, epoch = 0): Promise<SessionStart> {
    this.stale(hubId, epoch);
    return { shadow: await this.load(hubId), cursor: await this.loadCursor(hubId) };
  }

  async load(hubId: string, read?: Pick<DeviceRead, 'spent'>): Promise<HubShadow> {
    const started = performance.now();
    const hub = this.hubs.get(hubId);
    const out = newShadow();
    if (hub) for (const id in hub) out[id] = copyDevice(hub[id]!);
    if (read?.spent) read.spent.ms += performance.now() - started;
    return out;
  }

  async loadDevices(hubId: string, deviceIds: readonly string[], read?: DeviceRead): Promise<HubShadow> {
    const started = performance.now();
    const hub = this.hubs.get(hubId);
    const out = newShadow();
    if (hub) for (const id of deviceIds) if (Object.hasOwn(hub, id)) out[id] = copyDevice(hub[id]!);
    if (read?.spent) read.spent.ms += performance.now() - started;
    return out;
  }

  writeReported(hubId: string, deviceId: string, device: DeviceShadow, epoch = 0): void {
    if (this.stale(hubId, epoch)) return;
    const hub = this.hub(hubId);
    const stored = (hub[deviceId] ??= emptyDevice());
    // the desired side belongs to setDesired; only the reported side is written here
    stored.reported = { ...device.reported };
    stored.reportedVersion = device.reportedVersion;
    stored.reportedAt = device.reportedAt;
    if (device.kind !== undefined) stored.kind = device.kind;
  }

  /** The check and the write are one step: nothing else runs between them in this process. */
  async setDesired(hubId: string, deviceId: string, patch: Attrs, limits?: DesiredLimits): Promise<DeviceShadow> {
    const refusal = limits === undefined ? null : checkDesired(this.hubs.get(hubId) ?? newShadow(), hubId, deviceId, patch, limits);
    if (refusal) throw refusal;
    const hub = this.hub(hubId);
    const device = (hub[deviceId] ??= emptyDevice());
    const desired = { ...device.desired };
    if (mergeAttrs(desired, patch)) {
      device.desired = desired;
      device.desiredVersion++;
    }
    return copyDevice(device);
  }

  async clearDesired(hubId: string): Promise<number> {
    let cleared = 0;
    for (const device of Object.values(this.hubs.get(hubId) ?? {})) {
      if (Object.keys(device.desired).length === 0) continue;
      device.desired = NO_DESIRED;
      device.desiredVersion++;
      cleared++;
    }
    return cleared;
  }

  /** The fence rises by one: a closing session of the removed hub cannot bring its shadow back. */
  async remove(hubId: string): Promise<void> {
    this.hubs.delete(hubId);
    this.cursors.delete(hubId);
    this.fences.set(hubId, (this.fences.get(hubId) ?? 0) + 1);
  }

  async writeDevices(hubId: string, devices: Array<{ d: string; k: string; m?: string }>, left: string[], full: boolean, epoch = 0): Promise<boolean> {
    if (this.stale(hubId, epoch)) throw new TierError('session_taken_over');
    const hub = this.hub(hubId);
    let changed = false;
    const drop = (id: string) => {
      if (hub[id] === undefined) return;
      delete hub[id];
      changed = true;
    };
    if (full) {
      const keep = new Set(devices.map((d) => d.d));
      for (const id in hub) if (!keep.has(id)) drop(id);
    }
    for (const id of left) drop(id);
    for (const d of devices) {
      let device = hub[d.d];
      if (device === undefined) {
        device = hub[d.d] = emptyDevice();
        changed = true;
      }
      if (device.kind !== d.k || (d.m !== undefined && device.model !== d.m)) changed = true;
      device.kind = d.k;
      if (d.m !== undefined) device.model = d.m;
    }
    return changed;
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {}

  private hub(hubId: string): HubShadow {
    let hub = this.hubs.get(hubId);
    if (!hub) {
      hub = newShadow();
      this.hubs.set(hubId, hub);
    }
    return hub;
  }
}

function copyDevice(d: DeviceShadow): DeviceShadow {
  return { ...d, reported: { ...d.reported }, desired: copyAttrs(d.desired) };
}
