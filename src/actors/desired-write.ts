/**
 * A desired change as the API and the rules make it: written for a hub of `homeId`, then the hub's
 * record read again, and only then told to the session holding the hub. A move changes the record
 * before it clears the desired side, a delete before it removes the shadow: a write that landed
 * after either (its caller checked the home a moment before) sees it here, is undone (the keys it
 * set removed, or the deleted hub's shadow removed again) and refused, and never reaches the hub.
 * The old home's intent does not reach the new one, nor a deleted hub's shadow come back. A value
 * under one of its keys that the new home set in the same moment, or that a move with keepDesired
 * kept, is removed with it: the value before the write is not known here.
 */
import type { Attrs } from '../../proto/frames.js';
import { TierError } from '../errors.js';
import type { Bus } from '../ports/bus/bus.js';
import type { HubRegistry } from '../ports/hub-registry/hub-registry.js';
import type { DesiredLimits, DeviceShadow, ShadowStore } from '../ports/shadow-store/shadow-store.js';
import { publishDesired } from './commands.js';

export interface DesiredWriteDeps {
  shadows: Pick<ShadowStore, 'setDesired' | 'remove'>;
  /** read from the registry itself, not a cache: a cached home could be the one the hub left */
  registry: Pick<HubRegistry, 'get'>;
  bus: Bus;
}

export async function writeDesired(deps: DesiredWriteDeps, hubId: string, homeId: string, deviceId: string, patch: Attrs, limits?: DesiredLimits): Promise<DeviceShadow> {
  const device = await deps.shadows.setDesired(hubId, deviceId, patch, limits);
  const now = (await deps.registry.get(hubId))?.homeId ?? null;
  if (now === null) {
    await deps.shadows.remove(hubId);
    throw new TierError('not_found', `hub ${hubId} was deleted while the change was written: nothing was kept`);
  }
  if (now !== homeId) {
    // only what this write set: the new home's own writes, and what a move with keepDesired kept, stay
    const undo: Attrs = {};
    for (const key in patch) undo[key] = null;
    await deps.shadows.setDesired(hubId, deviceId, undo);
    throw new TierError('hub_moved', `hub ${hubId} moved to another home while the change was written: nothing was kept`);
  }
  publishDesired(deps.bus, hubId, deviceId, device);
  return device;
}
