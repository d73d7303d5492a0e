import { Gauge, type Registry } from 'prom-client';

/** The embedded default's DATA_DIR and a reading of its filesystem (the composition root's: src/ports/disk-room.ts). */
export interface DataDisk {
  dir: string;
  /** bytes of room below which the node stops (TIER_DISK_RESERVE_MB) */
  reserve: number;
  /** bytes free to the node and the filesystem's size; throws when the directory cannot be read */
  space(): { free: number; size: number };
}

/**
 * The embedded default's DATA_DIR filesystem, read at scrape time (one statvfs): a
 * node stops below TIER_DISK_RESERVE_MB of room, or at the first write its disk refuses (`data
 * error`, src/ports/lmdb.ts), so the space left is what an alert watches before that (HubtierDataDiskFilling). 0 and 0 in cluster mode and in memory (the
 * alert's ratio is then no number, and never fires); a read that fails (the directory's volume gone:
 * the node stops for that too) leaves the last values.
 */
export function registerDiskMetrics(registers: Registry[], disk: () => DataDisk | undefined): void {
  const gauge = (name: string, help: string, bytes: (s: { free: number; size: number }) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const d = disk();
        if (d === undefined) return;
        let s: { free: number; size: number };
        try {
          s = d.space();
        } catch {
          return;
        }
        this.set(bytes(s));
      },
    });
  gauge('tier_data_dir_available_bytes', "Space left to the node on DATA_DIR's filesystem (statvfs bavail); the node stops below TIER_DISK_RESERVE_MB of room", (s) => s.free);
  gauge('tier_data_dir_size_bytes', "Size of DATA_DIR's filesystem (statvfs blocks)", (s) => s.size);
  // on a volume under ten reserves the node stops before 10 % is left: the alert also reads this
  new Gauge({ name: 'tier_data_dir_reserve_bytes', help: 'Room on DATA_DIR below which the node stops (TIER_DISK_RESERVE_MB); 0 in cluster mode', registers, collect() { this.set(disk()?.reserve ?? 0); } });
}
