import { AsyncLocalStorage } from 'node:async_hooks';
import { TraceFlags, type Span } from '@opentelemetry/api';

/**
 * The sampled span whose work is running, for the trace ids on log lines (`traceFields`). Only call
 * sites that found `tracing` on enter it: with tracing off nothing ever runs inside it, and Node
 * enables no async hooks for it.
 */
const active = new AsyncLocalStorage<Span>();

/**
 * Runs `fn` with `span` active, for `fn` and every callback and promise continuation it starts.
 * An unsampled span makes none active, not even one around it: its lines name no trace.
 */
export function inSpan<T>(span: Span, fn: () => T): T {
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

/** `traceId` and `spanId` of the active sampled span, none outside one: the logger's mixin while tracing is on. */
export function traceFields(): { traceId?: string; spanId?: string } {
  const span = active.getStore();
  if (span === undefined) return {};
  const { traceId, spanId } = span.spanContext();
  return { traceId, spanId };
}
