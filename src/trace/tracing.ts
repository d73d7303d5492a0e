import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Attributes, type Context, type Span, type SpanContext } from '@opentelemetry/api';

import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Logger } from '../log/logger.js';
import { openSpans } from './active-span.js';
import { shownUrlText } from '../config/shown-url.js';

export { SpanKind, type Span };

/** The node's tracer while tracing is on. */
export interface Tracing {
  /** share of new (root) traces sampled, 0..1; a received trace keeps its caller's decision */
  readonly ratio: number;
  /** where spans go, as logs show a URL (its secrets masked) */
  readonly endpoint: string | undefined;
  /** A span, child of `parent` (a span of this node, or a `traceparent` received), else a root; a child of an unsampled parent is that parent (or its context). */
  start(name: string, kind: SpanKind, parent: Span | string | null | undefined, attributes?: Attributes): Span;
  /** Exports what is buffered and stops; later spans are dropped. */
  shutdown(): Promise<void>;
}

/**
 * The running tracer, or null when tracing is off (the default). Every call site tests this one
 * value first, so tracing off costs a null check and the OpenTelemetry SDK is never loaded.
 */
export let tracing: Tracing | null = null;

/** W3C trace context level 1 `traceparent`: version 00, 32 and 16 lower-case hex digits, flags. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** all-zero ids are invalid by the specification */
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);

/** The remote span context a received `traceparent` names (header, bus request, app request); undefined when it is invalid. */
function spanContextOf(s: unknown): SpanContext | undefined {
  if (typeof s !== 'string' || s.length !== 55) return undefined;
  // one match: a command's traceparent is read on each node it passes
  const m = TRACEPARENT.exec(s);
  if (m === null || m[1] === ZERO_TRACE_ID || m[2] === ZERO_SPAN_ID) return undefined;
  return { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16) & TraceFlags.SAMPLED, isRemote: true };
}

/** A `traceparent` as received: valid or not worth keeping. */
export function isValidTraceparent(s: unknown): s is string {
  return spanContextOf(s) !== undefined;
}

/** The `traceparent` naming `span` as the parent of what the receiver does. */
export function traceparentOf(span: Span): string {
  const sc = span.spanContext();
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED ? '01' : '00'}`;
}

/** The context a remote `traceparent` stands for; the root context when it is invalid. */
export function contextOf(traceparent: string): Context {
  const sc = spanContextOf(traceparent);
  return sc === undefined ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, sc);
}

/**
 * The span to hand out, without the SDK, for a child of a trace not sampled (ParentBased decides
 * the same): the parent itself, or the received context. Nothing records it, so the SDK's new ids,
 * sampler call and span object (three of a command's four spans) would be spent on nothing.
 * Undefined when the SDK must decide: a root, or a sampled parent.
 */
function unsampledChild(parent: Span | string): Span | undefined {
  if (typeof parent !== 'string') return (parent.spanContext().traceFlags & TraceFlags.SAMPLED) === 0 ? parent : undefined;
  const sc = spanContextOf(parent);
  return sc !== undefined && (sc.traceFlags & TraceFlags.SAMPLED) === 0 ? trace.wrapSpanContext(sc) : undefined;
}

/** Ends a span with an error status when `code` (an error code of proto/errors) is given. */
export function endSpan(span: Span, code?: string): void {
  if (code !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: code });
  span.end();
}

/**
 * Exports what `t` still holds and stops it, waiting at most `ms` (@default 2_000): a collector
 * that is down cannot hold a stopping process. A failed export is logged.
 */
export async function stopTracing(t: Tracing, log: Logger, ms = 2_000): Promise<void> {
  await Promise.race([t.shutdown().catch((err: unknown) => log.warn({ err }, 'trace export failed')), new Promise((r) => setTimeout(r, ms).unref())]);
}

/** What `startTracing` reads: the ratio from the configuration (TIER_TRACE_RATIO). */
export interface TraceSettings {
  traceRatio: number;
}

/**
 * Starts tracing when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
 * set: spans batched and posted as OTLP/HTTP JSON to `<endpoint>/v1/traces`, resource
 * `service.name=hubtier`, `service.instance.id=<nodeId>`, sampled ParentBased(TraceIdRatioBased)
 * with `OTEL_TRACES_SAMPLER_ARG` or else `traceRatio`. Without an endpoint it does nothing.
 * `exporter` (tests): spans go there instead, each as it ends.
 */
export async function startTracing(settings: TraceSettings, nodeId: string, env: NodeJS.ProcessEnv = process.env, exporter?: SpanExporter): Promise<Tracing | null> {
  if (!env.OTEL_EXPORTER_OTLP_ENDPOINT && !env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return null;
  // empty is unset (as for every variable here, and in OpenTelemetry's own rules): Number('') is 0, which sampled nothing
  const arg = env.OTEL_TRACES_SAMPLER_ARG === undefined || env.OTEL_TRACES_SAMPLER_ARG.trim() === '' ? NaN : Number(env.OTEL_TRACES_SAMPLER_ARG);
  const ratio = arg >= 0 && arg <= 1 ? arg : settings.traceRatio;
  // loaded only when tracing is on: off, the node never pays for the SDK
  const [{ BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, SimpleSpanProcessor, TraceIdRatioBasedSampler }, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'hubtier', 'service.instance.id': nodeId }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }),
    // the exporter and the batch processor read their own OTEL_* variables (URL, headers, delays)
    // openSpans first: it counts a span's end before the exporter's processor takes it
    spanProcessors: [openSpans, exporter ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  const tracer = provider.getTracer('hubtier');
  const started: Tracing = {
    ratio,
    endpoint: shownUrlText(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT),
    start(name, kind, parent, attributes) {
      const unsampled = parent == null ? undefined : unsampledChild(parent);
      if (unsampled !== undefined) return unsampled;
      const ctx = parent == null ? ROOT_CONTEXT : typeof parent === 'string' ? contextOf(parent) : trace.setSpan(ROOT_CONTEXT, parent);
      return tracer.startSpan(name, { kind, attributes }, ctx);
    },
    async shutdown() {
      if (tracing === started) tracing = null;
      await provider.shutdown();
    },
  };
  tracing = started;
  return started;
}
