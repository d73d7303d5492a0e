import { createRequire } from 'node:module';
import type { Logger } from '../log/logger.js';
import { ownMaps, replacedAllocator } from './allocator.js';

/** glibc's `malloc_trim(pad)`: returns the arenas' free pages to the system; 1 if it returned any. */
export type MallocTrim = (pad: number) => number;

type Loaded = { trim: MallocTrim } | { unavailable: string };
let loaded: Loaded | undefined;

/**
 * glibc's malloc_trim through koffi (a prebuilt FFI binding), or why there is none: not Linux, not
 * glibc (musl, or a malloc replacement mapped in), or koffi's binary missing for this platform.
 * Looked up once a process (telling glibc takes a diagnostic report, 7–9 ms).
 */
export function loadMallocTrim(): Loaded {
  return (loaded ??= lookUp());
}

function lookUp(): Loaded {
  if (process.platform !== 'linux') return { unavailable: `not Linux (${process.platform})` };
  const replaced = replacedAllocator(ownMaps());
  if (replaced) return { unavailable: `${replaced} replaces glibc's malloc` };
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  if (!header?.glibcVersionRuntime) return { unavailable: 'not glibc' };
  try {
    // loaded only here: a platform without koffi's binary still starts, untrimmed
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const trim = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as MallocTrim;
    return { trim };
  } catch (err) {
    return { unavailable: `koffi: ${(err as Error).message.split('\n')[0]}` };
  }
}

export interface MallocTrimmerOptions {
  trim: MallocTrim;
  /** the process's resident bytes */
  rss: () => number;
  /** ms between looks at the resident size */
  intervalMs: number;
  /** bytes above the lowest resident size since the last trim that make the next look trim */
  growthBytes: number;
  /** looks after a trim made for growth that trim again whatever the size (default FOLLOW_UPS) */
  followUps?: number;
  /** told of each trim: resident bytes before and after, and its time (s) */
  onTrim?: (before: number, after: number, seconds: number) => void;
  /** told of a look that failed (reading the resident size throws EMFILE at the open-file limit); the look is skipped */
  onError?: (err: unknown) => void;
}

/** Resident growth that makes a trim worth its walk of the arenas (a burst of connects adds 100 MB and more). */
export const TRIM_GROWTH_BYTES = 16 * 1024 * 1024;
/**
 * A burst's garbage is freed over the half-minute after it (V8 collects the buffers that held
 * native memory, and returns its own pages 25–31 s on): the looks of the minute after a trim made
 * for growth trim again, so what is freed after the first is returned too.
 */
export const FOLLOW_UPS = 6;

/**
 * Gives glibc's free pages back after a burst. glibc returns only the top of an arena by itself;
 * the chunks a burst of handshakes frees under live sessions stay resident, about 3 KB a session
 * in the embedded default after 10,000 connects (BENCHMARKS.md, 2026-12-02 seventh). Every
 * `intervalMs` it reads the resident size and, once it stands `growthBytes` above its lowest since
 * the last trim, calls malloc_trim(0) (a walk of the arenas, a few ms), and again at the next
 * FOLLOW_UPS looks; a node whose size holds still is not trimmed.
 */
export class MallocTrimmer {
  private low = Infinity;
  /** follow-up trims still to make */
  private pending = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly options: MallocTrimmerOptions) {}

  start(): void {
    this.low = this.rss() ?? Infinity;
    // unref: a node that is stopping is not held up by it
    this.timer ??= setInterval(() => this.look(), this.options.intervalMs).unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The resident size, or undefined (told to onError): a throw out of the timer would end the process. */
  private rss(): number | undefined {
    try {
      return this.options.rss();
    } catch (err) {
      this.options.onError?.(err);
      return undefined;
    }
  }

  /** One look (the timer's): answers whether it trimmed; never throws. */
  look(): boolean {
    const { trim, growthBytes, onTrim } = this.options;
    const before = this.rss();
    if (before === undefined) return false;
    const grown = before - this.low >= growthBytes;
    if (!grown && this.pending === 0) {
      this.low = Math.min(this.low, before);
      return false;
    }
    this.pending = grown ? (this.options.followUps ?? FOLLOW_UPS) : this.pending - 1;
    const started = performance.now();
    trim(0);
    const seconds = (performance.now() - started) / 1000;
    const after = this.rss() ?? before;
    // after growth, what the next burst adds is measured from what this trim left
    this.low = grown ? after : Math.min(this.low, after);
    onTrim?.(before, after, seconds);
    return true;
  }
}

/**
 * The node's trimmer (TIER_MALLOC_TRIM_MS), started; null when off or where glibc's malloc_trim
 * cannot be called (said once in the log).
 */
export function startMallocTrimmer(intervalMs: number, log: Logger, onTrim?: MallocTrimmerOptions['onTrim'], onError?: MallocTrimmerOptions['onError']): MallocTrimmer | null {
  if (intervalMs === 0) return null;
  const loaded = loadMallocTrim();
  if ('unavailable' in loaded) {
    log.info({ reason: loaded.unavailable }, 'malloc_trim unavailable: free heap pages stay resident after bursts');
    return null;
  }
  const trimmer = new MallocTrimmer({
    trim: loaded.trim,
    rss: () => process.memoryUsage.rss(),
    intervalMs,
    growthBytes: TRIM_GROWTH_BYTES,
    ...(onError ? { onError } : {}),
    onTrim: (before, after, seconds) => {
      onTrim?.(before, after, seconds);
      log.debug({ rssBefore: before, rssAfter: after, ms: Math.round(seconds * 1e4) / 10 }, 'malloc_trim');
    },
  });
  trimmer.start();
  return trimmer;
}
