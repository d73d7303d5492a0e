import { statfs } from 'node:fs/promises';
import { Gauge, type Registry } from 'prom-client';

/**
 * The embedded default's DATA_DIR filesystem, read at scrape time: a node stops at the first write
 * its disk refuses (`data error`, src/ports/lmdb-commit-failures.ts), so the space left is what an
 * alert watches before that (HubtierDataDiskFilling). 0 and 0 in cluster mode and in memory (the
 * alert's ratio is then no number, and never fires); a read that fails (the directory's volume gone:
 * the node stops for that too) leaves the last values.
 */
export function registerDiskMetrics(registers: Registry[], dataDir: () => string | undefined): void {
  const gauge = (name: string, help: string, bytes: (s: { bavail: number; blocks: number; bsize: number }) => number) =>
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        const dir = dataDir();
        if (dir === undefined) return;
        const s = await statfs(dir).catch(() => null);
        if (s) this.set(bytes(s));
      },
    });
  gauge('tier_data_dir_available_bytes', "Space left to the node on DATA_DIR's filesystem (statfs bavail); the node stops at the first write the disk refuses", (s) => s.bavail * s.bsize);
  gauge('tier_data_dir_size_bytes', "Size of DATA_DIR's filesystem (statfs blocks)", (s) => s.blocks * s.bsize);
}
