import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from '../log/logger.js';

/**
 * V8's full collection without `--expose-gc` on the command line: the flag, set at run time,
 * exposes `gc` in the contexts made after it (a throwaway one here), not on the node's globals.
 * Node calls flags set after start-up unpredictable: where it gives no function, the reason.
 */
export function loadGc(): (() => void) | { unavailable: string } {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return exposed;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : { unavailable: 'V8 exposed no gc function' };
  } catch (err) {
    return { unavailable: (err as Error).message };
  }
}

/** @default 5_000 (ms): a full collection of a node's heap takes tens of ms; at most one per this */
export const HEAP_RELEASE_EVERY_MS = 5_000;

/**
 * Collects V8's garbage while admission control refuses hubs for memory. A reconnect burst leaves
 * its garbage in heap pages V8 returns only once the node is idle (its memory reducer, 25–30 s
 * after the burst), and the refused hubs coming back keep it busy: without a collection the node
 * refused hubs for minutes with room in its heap (BENCHMARKS.md, 2026-12-03 fourth). At most once
 * per `everyMs`, after the refusal that asked has been answered.
 */
export class HeapRelease {
  /** collections made, and their time (s): read by the metrics */
  count = 0;
  seconds = 0;
  private lastAt = -Infinity;

  constructor(
    private readonly gc: () => void,
    private readonly everyMs = HEAP_RELEASE_EVERY_MS,
    private readonly now: () => number = performance.now.bind(performance),
  ) {}

  readonly pressed = (): void => {
    const now = this.now();
    if (now - this.lastAt < this.everyMs) return;
    this.lastAt = now;
    setImmediate(() => {
      const started = performance.now();
      this.gc();
      this.seconds += (performance.now() - started) / 1000;
      this.count++;
    });
  };
}

/** The node's HeapRelease, or null (said once) where V8 gives no collection to call: memory refusals then wait for V8. */
export function heapRelease(log: Logger): HeapRelease | null {
  const gc = loadGc();
  if (typeof gc === 'function') return new HeapRelease(gc);
  log.warn({ reason: gc.unavailable }, 'no garbage collection to call: a node refusing hubs for memory waits for V8 to return its pages');
  return null;
}
