import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log/logger.js';

/**
 * What the node's memory cgroup (a pod's limit) says, for admission control: the limit, and the
 * memory charged that the kernel cannot take back (anonymous and shared memory, kernel memory such
 * as each socket's 1.5 KB). Page cache (LMDB's mapped pages) is left out: under the limit the
 * kernel reclaims it before it kills (BENCHMARKS.md, "What a pod's memory limit sees").
 */
export interface MemoryReading {
  /** bytes the cgroup may hold (Infinity: no limit) */
  limit: number;
  /** bytes charged that the kernel cannot reclaim without swap */
  unreclaimable: number;
}

/** A limit at or above this is the kernel's "none" (cgroup v1 writes 2^63 rounded to a page). */
const NO_LIMIT = 2 ** 62;

/** One `key value` line of a memory.stat, as a number (0 when absent). */
function stat(text: string, key: string): number {
  return Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
}

function readNumber(path: string): number {
  const text = readFileSync(path, 'latin1').trim();
  return text === 'max' ? Infinity : Number(text);
}

/**
 * The memory cgroup this process runs in, v1 (a `memory` controller line in /proc/self/cgroup) or
 * v2 (the `0::` line), under `root` (/sys/fs/cgroup). In a container with its own cgroup
 * namespace the path reads `/` and the container's cgroup is mounted at the root itself.
 */
export class CgroupMemory {
  private constructor(
    readonly version: 1 | 2,
    readonly dir: string,
    /** v2: the directories from the mount's root down to the cgroup, whose memory.max all bind */
    private readonly chain: string[],
  ) {}

  /** The process's memory cgroup, or why there is none to read. */
  static find(root = '/sys/fs/cgroup', ownCgroups = (): string => readFileSync('/proc/self/cgroup', 'utf8')): CgroupMemory | { unavailable: string } {
    let lines: string;
    try {
      lines = ownCgroups();
    } catch (err) {
      return { unavailable: `no /proc/self/cgroup (${(err as Error).message})` };
    }
    const v1 = /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/m.exec(lines)?.[1];
    if (v1 !== undefined) {
      const dir = [join(root, 'memory', v1), join(root, 'memory')].find((d) => existsSync(join(d, 'memory.stat')));
      if (dir) return new CgroupMemory(1, dir, [dir]);
    }
    const v2 = /^0::(.*)$/m.exec(lines)?.[1];
    if (v2 !== undefined) {
      const own = join(root, v2);
      const dir = existsSync(join(own, 'memory.stat')) ? own : existsSync(join(root, 'memory.stat')) ? root : undefined;
      if (dir) {
        const chain = [dir];
        for (let d = dir; d.length > root.length; ) chain.push((d = join(d, '..')));
        return new CgroupMemory(2, dir, chain);
      }
    }
    return { unavailable: `no memory cgroup of this process under ${root}` };
  }

  read(): MemoryReading {
    const text = readFileSync(join(this.dir, 'memory.stat'), 'latin1');
    if (this.version === 1) {
      // the hierarchy's own figure: the least limit of this cgroup and its parents
      const limit = stat(text, 'hierarchical_memory_limit');
      const kmem = existsSync(join(this.dir, 'memory.kmem.usage_in_bytes')) ? readNumber(join(this.dir, 'memory.kmem.usage_in_bytes')) : 0;
      return {
        limit: limit >= NO_LIMIT || limit === 0 ? Infinity : limit,
        unreclaimable: stat(text, 'total_rss') + stat(text, 'total_shmem') + kmem,
      };
    }
    let limit = Infinity;
    for (const d of this.chain) {
      const max = join(d, 'memory.max');
      if (existsSync(max)) limit = Math.min(limit, readNumber(max));
    }
    // kernels before 5.18 have no `kernel` line: its parts then
    const kernel = stat(text, 'kernel') || stat(text, 'slab') + stat(text, 'kernel_stack') + stat(text, 'pagetables') + stat(text, 'percpu');
    return { limit, unreclaimable: stat(text, 'anon') + stat(text, 'shmem') + kernel + stat(text, 'sock') };
  }
}

/**
 * The node's memory as admission control asks for it: read on demand, at most every `everyMs`
 * (a read is two small files, about 0.1 ms here), so an idle node reads nothing. A read that fails
 * (the cgroup gone) reads as no limit.
 */
export class MemoryGauge {
  private last: MemoryReading = { limit: Infinity, unreclaimable: 0 };
  private lastAt = -Infinity;

  constructor(
    private readonly source: () => MemoryReading,
    private readonly everyMs = 200,
    private readonly now: () => number = performance.now.bind(performance),
  ) {}

  reading(): MemoryReading {
    const now = this.now();
    if (now - this.lastAt >= this.everyMs) {
      this.lastAt = now;
      try {
        this.last = this.source();
      } catch {
        this.last = { limit: Infinity, unreclaimable: 0 };
      }
    }
    return this.last;
  }
}

/**
 * The gauge admission control sheds on (TIER_SHED_MEMORY), or null when shedding is off or the
 * node has no memory cgroup to read (it then says so once: nothing is refused for memory).
 */
export function startMemoryGauge(fraction: number, log: Logger, find = () => CgroupMemory.find()): MemoryGauge | null {
  if (fraction === 0) return null;
  const cgroup = find();
  if ('unavailable' in cgroup) {
    log.info({ reason: cgroup.unavailable }, 'no memory cgroup: hub handshakes are not refused for memory');
    return null;
  }
  const gauge = new MemoryGauge(() => cgroup.read());
  const { limit, unreclaimable } = gauge.reading();
  log.info({ cgroup: cgroup.dir, version: cgroup.version, limit: Number.isFinite(limit) ? limit : null, unreclaimable, shedAbove: Number.isFinite(limit) ? Math.round(limit * fraction) : null }, 'memory cgroup found: hub handshakes are refused busy near its limit');
  return gauge;
}
