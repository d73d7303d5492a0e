/** The DATA_DIR filesystem gauges an alert watches before a full disk stops an embedded node. */
import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { registerDiskMetrics } from '../../src/admin/disk-metrics.js';
import { diskSpace } from '../../src/ports/disk-room.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function values(dataDir: () => string | undefined): Promise<Record<string, number>> {
  const registry = new Registry();
  registerDiskMetrics([registry], () => {
    const dir = dataDir();
    return dir === undefined ? undefined : { dir, reserve: 64 * 1024 * 1024, space: () => diskSpace(dir) };
  });
  const metrics = await registry.getMetricsAsJSON();
  return Object.fromEntries(metrics.map((m) => [m.name, m.values[0]?.value ?? NaN]));
}

describe('DATA_DIR disk gauges', () => {
  it("read the directory's filesystem at scrape time: the space left to the node and its size", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hubtier-disk-'));
    dirs.push(dir);
    const got = await values(() => dir);
    const s = statfsSync(dir);
    expect(got.tier_data_dir_size_bytes).toBe(s.blocks * s.bsize);
    expect(got.tier_data_dir_available_bytes).toBeGreaterThan(0);
    expect(got.tier_data_dir_available_bytes).toBeLessThanOrEqual(got.tier_data_dir_size_bytes!);
    expect(got.tier_data_dir_reserve_bytes).toBe(64 * 1024 * 1024);
  });

  it('are 0 without a directory on disk (cluster mode, memory), and a failed read is not an error of the scrape', async () => {
    expect(await values(() => undefined)).toEqual({ tier_data_dir_available_bytes: 0, tier_data_dir_size_bytes: 0, tier_data_dir_reserve_bytes: 0 });
    expect(await values(() => join(tmpdir(), 'hubtier-no-such-dir-' + process.pid))).toEqual({ tier_data_dir_available_bytes: 0, tier_data_dir_size_bytes: 0, tier_data_dir_reserve_bytes: 64 * 1024 * 1024 });
  });
});
