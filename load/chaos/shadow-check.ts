import { sleep } from '../lib/async.js';
import { field, type AdminClient } from '../wire/admin.js';
import { deviceId, type ChaosHub } from './chaos-hub.js';
import type { ChaosNode } from './cluster.js';

/** How a chaos run reads a hub's shadow back and counts the acknowledged reports it lacks. */

/** Re-reads of a shadow that lacks acknowledged reports: a write may still land (a drain's flush). */
const REREAD_MS = [300, 1_500];

/**
 * Reads the hub's shadow and counts, per device, the acknowledged reports beyond the shadow's
 * counter that no earlier check counted (`missing`, to `commit` once the caller counts them). A
 * shortfall is read again (bounded) before it counts. Null when the shadow could not be read.
 */
export async function verifyShadow(hub: ChaosHub, read: () => Promise<number[] | null>): Promise<{ lost: number; late: number; missing: number[] } | null> {
  let first: number | null = null;
  let missing: number[] = [];
  for (let attempt = 0; attempt <= REREAD_MS.length; attempt++) {
    if (attempt > 0) await sleep(REREAD_MS[attempt - 1]!);
    const shadow = await read();
    if (!shadow) continue;
    missing = hub.acked.map((a, dev) => Math.max(0, a - Math.max(shadow[dev]!, hub.accounted[dev]!)));
    const total = missing.reduce((x, y) => x + y, 0);
    first ??= total;
    if (total === 0) break;
  }
  if (first === null) return null;
  const lost = missing.reduce((x, y) => x + y, 0);
  return { lost, late: first - lost, missing };
}

/**
 * Waits before each try of a shadow read: a read refused while Redis restarts (503 for about its 2 s
 * outage) is tried again past it; three tries at once all fell inside one (a run's "shadows could not
 * be read" with nothing wrong).
 */
const READ_TRIES_MS = [0, 250, 500, 1_000, 2_000, 4_000];

/** The counter `n` of every device of the hub, read through `pick()`'s node (`READ_TRIES_MS`); null when none answered. */
export async function readCounters(hub: ChaosHub, pick: () => ChaosNode | undefined, admin: (node: ChaosNode) => AdminClient): Promise<number[] | null> {
  for (const wait of READ_TRIES_MS) {
    if (wait > 0) await sleep(wait);
    const node = pick();
    if (!node) continue;
    try {
      const res = await admin(node).shadow(hub.id, 5_000);
      const devices = field(res, 'devices') as Record<string, { reported?: { n?: unknown } }> | undefined;
      if (res.status !== 200 || typeof devices !== 'object' || devices === null) continue;
      return hub.acked.map((_, dev) => {
        const n = devices[deviceId(dev)]?.reported?.n;
        return typeof n === 'number' ? n : 0;
      });
    } catch {
      // that node did not answer: another one
    }
  }
  return null;
}
