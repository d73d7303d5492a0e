import { AsyncLocalStorage } from 'node:async_hooks';
import { TraceFlags, type Span } from '@opentelemetry/api';

/**
 * The sampled span whose work is running, for the trace ids on log lines (`traceFields`). Only call
 * sites that found `tracing` on enter it: with tracing off nothing ever runs inside it, and Node
 * enables no async hooks for it. On, it is disabled whenever no sampled span is open (`openSpans`):
 * on Node 20 its hooks cost every promise of the process about 12 µs a command while enabled.
 */
const active = new AsyncLocalStorage<Span>();

/** sampled spans started and not yet ended (their work may still log) */
let open = 0;
let releasing = false;

/** Disables the storage, and Node's hooks with it, at the next check phase if no sampled span is open by then. */
function releaseSoon(): void {
  if (releasing) return;
  releasing = true;
  setImmediate(() => {
    releasing = false;
    if (open === 0) active.disable();
  }).unref();
}

/**
 * Counts the sampled spans open (a span processor of the tracer: it sees only recording spans).
 * Lines of a trace's work carry its ids while one of its spans, or another sampled one, is open;
 * a line written after all have ended may name none.
 */
export const openSpans = {
  onStart(): void {
    open++;
  },
  onEnd(): void {
    if (--open === 0) releaseSoon();
  },
  forceFlush: (): Promise<void> => Promise.resolve(),
  shutdown: (): Promise<void> => Promise.resolve(),
};

/** Whether the storage is enabled (and with it Node's async hooks): for tests. */
export function spanStorageOn(): boolean {
  return (active as unknown as { enabled?: boolean }).enabled === true;
}

/**
 * Runs `fn` with `span` active, for `fn` and every callback and promise continuation it starts.
 * An unsampled span makes none active, not even one around it: its lines name no trace.
 */
export function inSpan<T>(span: Span, fn: () => T): T {
  // entered for a span already ended (a home's step handed on), the storage stays on until the next
  // sampled span ends: released now, the lines of `fn` after an await would name no trace
  if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) !== 0) return active.run(span, fn);
  return active.getStore() === undefined ? fn() : active.exit(fn);
}

/**
 * Runs `fn` with no span active: for work that outlives its caller's span and is not part of it
 * (an actor's next message, a timer shared by every session), so its lines name no stranger's trace.
 */
export function outsideSpans<T>(fn: () => T): T {
  return active.getStore() === undefined ? fn() : active.exit(fn);
}

/** The active sampled span, if any: a request this work makes carries it on (`traceparent`). */
export function activeSpan(): Span | undefined {
  return active.getStore();
}

/** `traceId` and `spanId` of the active sampled span, none outside one: the logger's mixin while tracing is on. */
export function traceFields(): { traceId?: string; spanId?: string } {
  const span = active.getStore();
  if (span === undefined) return {};
  const { traceId, spanId } = span.spanContext();
  return { traceId, spanId };
}
