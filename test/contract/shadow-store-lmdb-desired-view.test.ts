/**
 * The embedded store checks a desired write's limits over a view that reads only what the check
 * needs (`desiredView`); it answers as the whole-hub check it replaced (checkDesired over the hub's
 * scan) after random writes, records the normal paths do not leave among them (a desired record
 * without its own record, an own record removed). Written by review diff10.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { LmdbShadowStore } from '../../src/ports/shadow-store/shadow-store-lmdb.js';
import { checkDesired, checkDesiredIn, emptyDevice, type DesiredLimits } from '../../src/ports/shadow-store/shadow-store.js';
import { tempDataStore } from '../contract/fixtures/data-store.js';

let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
const IDS = ['a', 'bb', 'ccc', 'd', 'eeee', 'f'];
const KEYS = ['x', 'yy', 'zzz', 'w'];
const VALS = [1, 'v', 'longer', true, null];

describe('LmdbShadowStore desiredView', () => {
  it('agrees after random writes (hubs: numbered, listed only, unknown)', async () => {
    const tmp = await tempDataStore('os');
    const store = new LmdbShadowStore(tmp.data, { log: createLogger('silent') });
    const s = store as unknown as { scan(h: string): { shadow: Record<string, unknown> }; desiredView(h: string): Parameters<typeof checkDesiredIn>[0]; hubs: { numberOf(h: string): number | undefined } };
    const db = tmp.data.db<unknown>('shadows');
    const mismatches: string[] = [];
    let checks = 0;
    const refusals: Record<string, number> = {};
    for (let step = 0; step < 1500; step++) {
      const hub = pick(['h1', 'h1', 'h1', 'h2', 'h3']);
      const op = Math.floor(rnd() * 8);
      const id = pick(IDS);
      try {
        if (op === 0) await store.writeDevices(hub, IDS.filter(() => rnd() < 0.4).map((d) => ({ d, k: pick(['light', 'fan']) })), rnd() < 0.2 ? [pick(IDS)] : [], rnd() < 0.3);
        else if (op === 1) {
          const dev = emptyDevice();
          dev.reported = { [pick(KEYS)]: pick([1, 'x']) };
          dev.reportedVersion = step + 1;
          store.writeReported(hub, id, dev);
          await store.flush();
        } else if (op === 2 || op === 3) await store.setDesired(hub, id, { [pick(KEYS)]: pick(VALS) });
        else if (op === 4 && rnd() < 0.2) await store.clearDesired(hub);
        else if (op === 5) {
          // a desired record without its own record (an own record removed, or written alone)
          const n = s.hubs.numberOf(hub);
          if (n !== undefined) {
            if (rnd() < 0.5) await db.remove([n, id] as never);
            else await db.put([n, id, 'x'] as never, [[pick(KEYS), 'orphan'], 3] as never);
          }
        } else if (op === 6 && rnd() < 0.05) await store.remove(hub);
      } catch {
        // a refused write (none expected without limits): go on
      }
      for (const h of ['h1', 'h2', 'h3', 'never']) {
        for (let k = 0; k < 4; k++) {
          const limits: DesiredLimits = { devices: pick([2, 3, 4, 6]), attrsPerDevice: pick([1, 2, 3]), valueBytes: 16, desiredBytes: pick([10, 20, 40, 80]) };
          const dev = pick([...IDS, 'newdev']);
          const patch = { [pick(KEYS)]: pick(VALS), ...(rnd() < 0.3 ? { [pick(KEYS)]: pick(VALS) } : {}) };
          const whole = checkDesired(s.scan(h).shadow as never, h, dev, patch, limits);
          const view = checkDesiredIn(s.desiredView(h), h, dev, patch, limits);
          checks++;
          if (whole) refusals[whole.message.split(":")[0]!] = (refusals[whole.message.split(":")[0]!] ?? 0) + 1;
          if ((whole?.message ?? null) !== (view?.message ?? null)) mismatches.push(`step ${step} hub ${h} dev ${dev} patch ${JSON.stringify(patch)} limits ${JSON.stringify(limits)}: whole=${whole?.message ?? 'ok'} view=${view?.message ?? 'ok'}`);
        }
      }
    }
    await store.close();
    await tmp.remove();
    expect(mismatches.slice(0, 10)).toEqual([]);
    // the comparisons reached each kind of refusal, not only answers of ok
    expect(Object.keys(refusals).sort()).toEqual(['desired', 'deviceId']);
    expect(checks).toBe(1500 * 16);
  }, 120_000);
});
