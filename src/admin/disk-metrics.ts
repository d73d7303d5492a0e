import { Gauge, type Registry } from 'prom-client';
import { diskSpace } from '../ports/disk-room.js';

/**
 * The embedded default's DATA_DIR filesystem, read at scrape time (disk-room.ts: one statvfs): a
 * node stops below TIER_DISK_RESERVE_MB of room, or at the first write its disk refuses (`data
 * error`, src/ports/lmdb.ts), so the space left is what an alert watches before that (HubtierDataDiskFilling). 0 and 0 in cluster mode and in memory (the
 * alert's ratio is then no number, and never fires); a read that fails (the directory's volume gone:
 * the node stops for that too) leaves the last values.
 */
export function registerDiskMetrics(registers: Registry[], dataDir: () => string | undefined): void {
  const gauge = (name: string, help: string, bytes: (s: { free: number; size: number }) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const dir = dataDir();
        if (dir === undefined) return;
        let s: { free: number; size: number };
        try {
          s = diskSpace(dir);
        } catch {
          return;
        }
        this.set(bytes(s));
      },
    });
  gauge('tier_data_dir_available_bytes', "Space left to the node on DATA_DIR's filesystem (statvfs bavail); the node stops below TIER_DISK_RESERVE_MB of room", (s) => s.free);
  gauge('tier_data_dir_size_bytes', "Size of DATA_DIR's filesystem (statvfs blocks)", (s) => s.size);
}
