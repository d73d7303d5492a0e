/**
 * A memory cgroup (v1 controller) for one measured process, as a pod's memory limit would hold it:
 * created under the bench's own cgroup, the process started inside it (this kernel no longer moves
 * a process's charged pages with it: it must allocate them there), a limit set later, and read back. Under a limit the kernel reclaims page cache (LMDB's mapped file pages included:
 * they are clean or written back) before it kills; anonymous memory, without swap, it cannot.
 * Needs a writable cgroup v1 memory hierarchy (this machine's); elsewhere `create` says why not.
 */
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CgroupMemory, parseKeyed } from '../../src/internal.js';

const ROOT = '/sys/fs/cgroup/memory';

export interface CgroupReading {
  /** charged in all: anonymous, page cache, kernel */
  usage: number;
  /** the most charged since the limit was set (or since creation) */
  peak: number;
  /** anonymous memory (`rss`): what the kernel cannot reclaim without swap */
  anon: number;
  /** page cache charged (`cache`), mapped or not */
  cache: number;
  /** of it, pages mapped into the process (`mapped_file`: LMDB's, the executable's) */
  mappedFile: number;
  /** kernel memory charged (`memory.kmem.usage_in_bytes`): slab, socket structures */
  kernel: number;
  /** times the usage reached the limit (each time the kernel reclaimed) */
  limitHits: number;
  /** processes the kernel killed for the limit */
  oomKills: number;
  /** pages read back from the files after their reclaim (`pgmajfault`) */
  majorFaults: number;
}

export class MemoryCgroup {
  private constructor(
    readonly path: string,
    /** the cgroup the bench itself runs in */
    private readonly home: string,
  ) {}

  /** Whether this process may make memory cgroups under its own (tests that need one are skipped elsewhere). */
  static writable(): boolean {
    try {
      MemoryCgroup.create(`hubtier-probe-${process.pid}`).remove();
      return true;
    } catch {
      return false;
    }
  }

  /** A new cgroup named `name` under the calling process's own; throws with the reason when it cannot be made. */
  static create(name: string): MemoryCgroup {
    // the node's own reader finds the cgroup this process runs in
    const own = CgroupMemory.find();
    if ('unavailable' in own || own.version !== 1) throw new Error(`no cgroup v1 memory controller at ${ROOT} (this bench's --memory-limit needs one it may write)`);
    const path = join(own.dir, name);
    try {
      mkdirSync(path);
    } catch (err) {
      throw new Error(`cannot create the memory cgroup ${path}: ${(err as Error).message}`);
    }
    return new MemoryCgroup(path, own.dir);
  }

  /**
   * Runs `spawn` (synchronous: the fork happens within it) with the bench inside the cgroup for
   * that moment alone, so that the child starts there and every page it allocates is charged
   * there, and nothing of the bench's (pass it as the harness's `spawnWith`).
   */
  readonly spawnInside = <T>(spawn: () => T): T => {
    writeFileSync(join(this.path, 'cgroup.procs'), String(process.pid));
    try {
      return spawn();
    } finally {
      writeFileSync(join(this.home, 'cgroup.procs'), String(process.pid));
    }
  };

  /** Sets the limit and starts the peak over. */
  limit(bytes: number): void {
    writeFileSync(join(this.path, 'memory.limit_in_bytes'), String(Math.floor(bytes)));
    writeFileSync(join(this.path, 'memory.max_usage_in_bytes'), '0');
  }

  read(): CgroupReading {
    const stat = this.keyed('memory.stat');
    return {
      usage: this.number('memory.usage_in_bytes'),
      peak: this.number('memory.max_usage_in_bytes'),
      anon: stat.get('rss') ?? 0,
      cache: stat.get('cache') ?? 0,
      mappedFile: stat.get('mapped_file') ?? 0,
      kernel: this.number('memory.kmem.usage_in_bytes'),
      limitHits: this.number('memory.failcnt'),
      oomKills: this.keyed('memory.oom_control').get('oom_kill') ?? 0,
      majorFaults: stat.get('pgmajfault') ?? 0,
    };
  }

  /** Removes the cgroup once its processes have exited (the kernel refuses it before). */
  remove(): void {
    try {
      rmdirSync(this.path);
    } catch {
      // a process still in it: left for the operator (rmdir it by hand)
    }
  }

  private number(file: string): number {
    return Number(readFileSync(join(this.path, file), 'utf8').trim());
  }

  private keyed(file: string): Map<string, number> {
    return parseKeyed(readFileSync(join(this.path, file), 'utf8'));
  }
}

/** A run under a limit: the budget, and the cgroup read when it was set, at the last reading and after the probe. */
export interface LimitRun {
  bytesPerSession: number;
  limitBytes: number;
  base: CgroupReading;
  atReading: CgroupReading | null;
  afterProbe: CgroupReading | null;
  /** hub sessions the node held after the readings (from its metrics) */
  sessionsHeld: number | null;
}

/** What a cgroup's charge grew by between two readings, per session (bytes). */
export interface Charge {
  usage: number;
  anon: number;
  cache: number;
  mappedFile: number;
  kernel: number;
}

export function chargePer(before: CgroupReading, after: CgroupReading, sessions: number): Charge {
  const per = (k: keyof Charge) => Math.round((after[k] - before[k]) / sessions);
  return { usage: per('usage'), anon: per('anon'), cache: per('cache'), mappedFile: per('mappedFile'), kernel: per('kernel') };
}

function chargeText(c: Charge): string {
  return `${c.usage} B (anonymous ${c.anon}, page cache ${c.cache} of it mapped ${c.mappedFile}, kernel ${c.kernel})`;
}

export function limitText(run: LimitRun, sessions: number, floor?: Charge): string {
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MB`;
  const line = (name: string, r: CgroupReading | null) =>
    r === null
      ? ''
      : `\n  ${name}: charged ${mb(r.usage)} (anonymous ${mb(r.anon)}, page cache ${mb(r.cache)} of it mapped ${mb(r.mappedFile)}, kernel ${mb(r.kernel)}), peak ${mb(r.peak)}, limit reached ${r.limitHits - run.base.limitHits} times, OOM kills ${r.oomKills}, pages read back ${r.majorFaults - run.base.majorFaults}`;
  return (
    `under a memory limit of ${mb(run.limitBytes)} (what the node could not drop before the sessions, plus ${run.bytesPerSession} B a session): ${run.sessionsHeld ?? 'n/a'} sessions held` +
    line('when it was set', run.base) +
    line('at the last reading', run.atReading) +
    line('after the probe', run.afterProbe) +
    (run.atReading ? `\n  charged per session from the limit's setting to the last reading: ${chargeText(chargePer(run.base, run.atReading, sessions))}` : '') +
    (floor ? `\n  the floor's idle sockets, charged per socket (a cgroup of its own, no limit): ${chargeText(floor)}` : '')
  );
}
