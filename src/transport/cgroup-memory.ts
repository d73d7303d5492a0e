import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import type { Logger } from '../log/logger.js';

/**
 * What the node's memory cgroup (a pod's limit) says, for admission control: the limit, and the
 * memory charged that the kernel cannot take back (anonymous and shared memory, kernel memory such
 * as each socket's 1.5 KB). Page cache (LMDB's mapped pages) is left out: under the limit the
 * kernel reclaims it before it kills (BENCHMARKS.md, "What a pod's memory limit sees").
 */
export interface CgroupReading {
  /** bytes the cgroup may hold (Infinity: no limit) */
  limit: number;
  /** bytes charged that the kernel cannot reclaim without swap */
  unreclaimable: number;
}

/**
 * The cgroup's reading with V8's old generation beside it. Node sizes the heap's limit from the
 * cgroup's, at about half of it (1 GiB in a 2 GiB pod): a node whose memory is its heap reaches
 * that limit first, and dies of "heap out of memory" (exit 134) while the cgroup still reads 60-70 %
 * (review "memlimit"). The old generation is what fills: V8's `heap_size_limit` also counts the
 * young generation's reserve, which never fills, and a line drawn against it sat above the point
 * of death in any heap under about 340 MiB (review "diff12").
 */
export interface MemoryReading extends CgroupReading {
  /** bytes of the old generation in use (V8's heap less its young generation), garbage not yet collected included */
  heapUsed: number;
  /** what of the old generation's limit (`--max-old-space-size`, else V8's choice) the node may count on: V8_USABLE_SHARE of it */
  heapLimit: number;
}

/** No cgroup to read, or its read failed: no limit there. */
const NO_CGROUP: CgroupReading = { limit: Infinity, unreclaimable: 0 };

const MiB = 2 ** 20;

/**
 * The most V8's old generation may hold, from its `heap_size_limit`: what `--max-old-space-size`
 * says when given (the young generation is then sized apart, from the machine), else what V8's own
 * rule leaves: limit = old + 3 semi-spaces, a semi-space old/256 up to 256 MiB of old generation and
 * old/128 above, between 1 and 16 MiB (3 MiB in a 512 MiB pod, 24 in a 2 GiB one, 48 on a large
 * machine). Taken as a fixed 48 MiB it put the line 30 % low in small pods (review "diff13").
 */
export function oldGenerationLimit(heapSizeLimit: number, flags: readonly string[] = nodeFlags()): number {
  let oldMiB: number | undefined;
  for (const flag of flags) {
    const m = /^--max[-_]old[-_]space[-_]size=(\d+)$/.exec(flag);
    if (m) oldMiB = Number(m[1]);
  }
  if (oldMiB !== undefined) return Math.min(oldMiB * MiB, heapSizeLimit);
  const semiOf = (old: number) => Math.ceil(Math.min(16 * MiB, Math.max(MiB, old / (old <= 256 * MiB ? 256 : 128))) / (256 * 1024)) * 256 * 1024;
  for (let semi = MiB; semi <= 16 * MiB; semi += 256 * 1024) {
    if (semiOf(heapSizeLimit - 3 * semi) === semi) return heapSizeLimit - 3 * semi;
  }
  // a rule of another V8, or a semi-space set by flag: the least young generation
  return heapSizeLimit - 3 * MiB;
}

function nodeFlags(): string[] {
  return [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
}

/**
 * The share of the old generation's limit a node may count on: V8 ends the process ("Ineffective
 * mark-compacts near heap limit") after four mark-compacts in a row that find the old generation
 * at 80 % of its limit or more and leave the program under 40 % of the time. A node taking hubs
 * of large shadows does just that, and died at 82 % while the line stood at 85 % (a CI failure).
 */
export const V8_USABLE_SHARE = 0.8;

/** What of an old generation's limit a node may count on (see V8_USABLE_SHARE). */
export function usableHeap(oldLimit: number): number {
  return Math.floor(oldLimit * V8_USABLE_SHARE);
}

/** fixed for the process's life: read once */
export const HEAP_LIMIT = usableHeap(oldGenerationLimit(getHeapStatistics().heap_size_limit));

/** The old generation's use (V8's heap less the young generation, used and reserved), and what of it the node may count on. */
export function heapReading(): Pick<MemoryReading, 'heapUsed' | 'heapLimit'> {
  const heap = getHeapStatistics();
  let young = 0;
  for (const space of getHeapSpaceStatistics()) if (space.space_name === 'new_space' || space.space_name === 'new_large_object_space') young += space.space_used_size;
  return { heapUsed: heap.used_heap_size - young, heapLimit: HEAP_LIMIT };
}

/** Which limit the node is past `fraction` of: its cgroup's (what the kernel cannot reclaim) or its heap's; null: neither. */
export function memoryPressure(r: MemoryReading, fraction: number): 'cgroup' | 'heap' | null {
  if (r.unreclaimable > r.limit * fraction) return 'cgroup';
  if (r.heapUsed > r.heapLimit * fraction) return 'heap';
  return null;
}

/** A limit at or above this is the kernel's "none" (cgroup v1 writes 2^63 rounded to a page). */
const NO_LIMIT = 2 ** 62;

/** A cgroup file of `key value` lines (memory.stat, memory.oom_control) as numbers by key. */
export function parseKeyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const at = line.indexOf(' ');
    if (at > 0) out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
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
    /** the files read besides memory.stat: v1 the kernel memory's usage (where kmem is counted), v2 the memory.max of the cgroup and of each parent up to the mount's root (all bind) */
    private readonly files: string[],
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
      if (dir) return new CgroupMemory(1, dir, [join(dir, 'memory.kmem.usage_in_bytes')].filter(existsSync));
    }
    const v2 = /^0::(.*)$/m.exec(lines)?.[1];
    if (v2 !== undefined) {
      const own = join(root, v2);
      const dir = existsSync(join(own, 'memory.stat')) ? own : existsSync(join(root, 'memory.stat')) ? root : undefined;
      if (dir) {
        const chain = [dir];
        for (let d = dir; d.length > root.length; ) chain.push((d = join(d, '..')));
        return new CgroupMemory(2, dir, chain.map((d) => join(d, 'memory.max')).filter(existsSync));
      }
    }
    return { unavailable: `no memory cgroup of this process under ${root}` };
  }

  read(): CgroupReading {
    const keyed = parseKeyed(readFileSync(join(this.dir, 'memory.stat'), 'latin1'));
    const stat = (key: string): number => keyed.get(key) || 0;
    if (this.version === 1) {
      // the hierarchy's own figure: the least limit of this cgroup and its parents
      const limit = stat('hierarchical_memory_limit');
      const kmem = this.files.length > 0 ? readNumber(this.files[0]!) : 0;
      return {
        limit: limit >= NO_LIMIT || limit === 0 ? Infinity : limit,
        unreclaimable: stat('total_rss') + stat('total_shmem') + kmem,
      };
    }
    const limit = Math.min(Infinity, ...this.files.map(readNumber));
    // kernels before 5.18 have no `kernel` line: its parts then
    const kernel = stat('kernel') || stat('slab') + stat('kernel_stack') + stat('pagetables') + stat('percpu');
    return { limit, unreclaimable: stat('anon') + stat('shmem') + kernel + stat('sock') };
  }
}

/**
 * The node's memory as admission control asks for it: read on demand, at most every `everyMs`
 * (a read is two small files, about 0.1 ms here), so an idle node reads nothing. A read that fails
 * (the cgroup gone, EMFILE at the open-file limit) reads as no limit and is told to `onError`.
 */
export class MemoryGauge {
  private last: MemoryReading = { ...NO_CGROUP, heapUsed: 0, heapLimit: Infinity };
  private lastAt = -Infinity;

  constructor(
    /** the cgroup's reading; null: none to read (the heap alone is read) */
    private readonly source: (() => CgroupReading) | null,
    private readonly everyMs = 200,
    private readonly now: () => number = performance.now.bind(performance),
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  readonly reading = (): MemoryReading => {
    const now = this.now();
    if (now - this.lastAt >= this.everyMs) {
      this.lastAt = now;
      let cgroup = NO_CGROUP;
      try {
        if (this.source) cgroup = this.source();
      } catch (err) {
        this.onError(err);
      }
      this.last = { ...cgroup, ...heapReading() };
    }
    return this.last;
  };
}

/**
 * The gauge admission control sheds on (TIER_SHED_MEMORY), or null when shedding is off. Without a
 * memory cgroup to read (it then says so once) the heap's limit alone is watched.
 */
export function startMemoryGauge(fraction: number, log: Logger, find = () => CgroupMemory.find(), onError?: (err: unknown) => void): MemoryGauge | null {
  if (fraction === 0) return null;
  const cgroup = find();
  const gauge = new MemoryGauge('unavailable' in cgroup ? null : () => cgroup.read(), undefined, undefined, onError);
  const { limit, unreclaimable, heapLimit } = gauge.reading();
  const heap = { heapLimit, heapShedAbove: Math.round(heapLimit * fraction) };
  if ('unavailable' in cgroup) log.info({ reason: cgroup.unavailable, ...heap }, 'no memory cgroup: hub handshakes are refused busy near the heap limit only');
  else log.info({ cgroup: cgroup.dir, version: cgroup.version, limit: Number.isFinite(limit) ? limit : null, unreclaimable, shedAbove: Number.isFinite(limit) ? Math.round(limit * fraction) : null, ...heap }, 'memory cgroup found: hub handshakes are refused busy near its limit or the heap limit');
  return gauge;
}
