/**
 * The Redis import's comparison of a hub's shadow in a backup with the one in Redis
 * (src/data-redis-import.ts): what Redis lacks of it, or why Redis's has moved on.
 */
import type { DeviceShadow, HubShadow, SeqCursor } from './ports/shadow-store/shadow-store.js';

/** A hub's shadow as the backup holds it. */
export interface FileShadow {
  devices: Map<string, DeviceShadow>;
  cursor: SeqCursor | null;
}

/** The parts of a shadow Redis lacks: device ids per side, and whether the cursor. */
export interface MissingParts {
  /** kind and model (written together) */
  kinds: string[];
  /** reported side with its version and time */
  reported: string[];
  desired: string[];
  cursor: boolean;
}

/**
 * What Redis's shadow (`have`, `cursor`) lacks of the file's, each part either absent there or as
 * the file holds it; or, when Redis holds anything else (a device not in the file, another kind, a
 * report, a desired state set, another cursor), why it has moved on: the hub has lived in the
 * cluster, so a part Redis lacks may be one the cluster removed.
 */
export function missingOf(file: FileShadow, have: HubShadow, cursor: SeqCursor | null): MissingParts | string {
  if (cursor !== null && !sameData(cursor, file.cursor)) return `cursor ${cursor.boot}:${cursor.seq}`;
  for (const id of Object.keys(have)) if (!file.devices.has(id)) return `device ${id} not in the file`;
  const missing: MissingParts = { kinds: [], reported: [], desired: [], cursor: cursor === null && file.cursor !== null };
  for (const [id, want] of file.devices) {
    const got = have[id];
    if (got?.kind !== undefined) {
      if (got.kind !== want.kind || got.model !== want.model) return `device ${id} of kind ${got.kind}`;
    } else if (want.kind !== undefined) missing.kinds.push(id);
    if (got !== undefined && reports(got)) {
      if (got.reportedVersion !== want.reportedVersion || !sameData(got.reported, want.reported)) return `device ${id} at version ${got.reportedVersion}`;
    } else if (reports(want)) missing.reported.push(id);
    if (got !== undefined && got.desiredVersion > 0) {
      if (!sameData(got.desired, want.desired)) return `device ${id}'s desired state, version ${got.desiredVersion}`;
    } else if (Object.keys(want.desired).length > 0) missing.desired.push(id);
  }
  return missing;
}

function reports(device: DeviceShadow): boolean {
  return device.reportedVersion > 0 || Object.keys(device.reported).length > 0;
}

/**
 * The same data, read back from Redis or from the file: prototypes ignored (the adapters build
 * null-prototype maps from hostile ids), a property set to undefined the same as one absent.
 */
export function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false;
  const defined = (o: object) => Object.entries(o).filter(([, v]) => v !== undefined);
  const x = defined(a);
  const y = new Map(defined(b));
  return x.length === y.size && x.every(([k, v]) => y.has(k) && sameData(v, y.get(k)));
}
