import { GCProfiler } from 'node:v8';

/** What V8's collector did over a stretch of this process's work, per operation. */
export interface GcPerOp {
  /** scavenges (young-generation collections) in the stretch */
  scavenges: number;
  /** µs the main thread spent in scavenges, per operation */
  scavengeUs: number;
  /** µs in the other collections (mark-compact, incremental marking steps), per operation */
  otherUs: number;
  /** bytes scavenges moved into the old generation, per operation: what outlived two scavenges */
  promotedBytes: number;
}

interface SpaceStats {
  spaceName: string;
  spaceUsedSize: number;
}

const oldUsed = (spaces: SpaceStats[]): number => spaces.find((s) => s.spaceName === 'old_space')?.spaceUsedSize ?? 0;

/**
 * Starts recording collections (`v8.GCProfiler`); the function it answers stops and divides by
 * `ops`. Promoted bytes are the old space's growth across each scavenge: a scavenge frees nothing
 * there, so what it gains is what the scavenge moved in.
 */
export function gcMeter(): (ops: number) => GcPerOp {
  const profiler = new GCProfiler();
  profiler.start();
  return (ops) => {
    const stats = profiler.stop()?.statistics ?? [];
    let scavenges = 0;
    let scavengeUs = 0;
    let otherUs = 0;
    let promoted = 0;
    for (const gc of stats) {
      if (gc.gcType === 'Scavenge') {
        scavenges++;
        scavengeUs += gc.cost;
        promoted += Math.max(0, oldUsed(gc.afterGC.heapSpaceStatistics as SpaceStats[]) - oldUsed(gc.beforeGC.heapSpaceStatistics as SpaceStats[]));
      } else otherUs += gc.cost;
    }
    return { scavenges, scavengeUs: scavengeUs / ops, otherUs: otherUs / ops, promotedBytes: promoted / ops };
  };
}
