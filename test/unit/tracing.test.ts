import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { decodeCommandRequest } from '../../src/actors/command-wire.js';
import { validateAppRequest } from '../../src/protocol/app-codec.js';
import { encodeValue } from '../../src/protocol/codec.js';
import { contextOf, isValidTraceparent, SpanKind, startTracing, traceparentOf, tracing } from '../../src/trace/tracing.js';

const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('tracing', () => {
  it('is off without an OTLP endpoint: nothing started, the call sites see null', async () => {
    expect(await startTracing({ traceRatio: 1 }, 'n1', {})).toBeNull();
    expect(await startTracing({ traceRatio: 1 }, 'n1', { OTEL_EXPORTER_OTLP_ENDPOINT: '' })).toBeNull();
  });

  it('an empty OTEL_TRACES_SAMPLER_ARG is unset: TIER_TRACE_RATIO samples (Number("") is 0, which had sampled nothing)', async () => {
    const spans = new InMemorySpanExporter();
    const t = (await startTracing({ traceRatio: 1 }, 'n1', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_TRACES_SAMPLER_ARG: '' }, spans))!;
    try {
      expect(t.start('HTTP', SpanKind.SERVER, undefined).spanContext().traceFlags).toBe(1);
    } finally {
      await t.shutdown();
    }
    expect(tracing).toBeNull();
  });

  it('accepts only a version-00 traceparent with non-zero lower-case ids', () => {
    expect(isValidTraceparent(TP)).toBe(true);
    expect(isValidTraceparent(TP.toUpperCase())).toBe(false);
    expect(isValidTraceparent(`01${TP.slice(2)}`)).toBe(false);
    expect(isValidTraceparent('00-00000000000000000000000000000000-00f067aa0ba902b7-01')).toBe(false);
    expect(isValidTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01')).toBe(false);
    expect(isValidTraceparent(`${TP}-x`)).toBe(false);
    expect(isValidTraceparent('')).toBe(false);
    expect(isValidTraceparent(42)).toBe(false);
  });

  it('reads a traceparent into a remote parent and writes a span back in the same 55-character form', () => {
    const sc = trace.getSpanContext(contextOf(TP));
    expect(sc).toEqual({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1, isRemote: true });
    expect(trace.getSpanContext(contextOf('garbage'))).toBeUndefined();
    const span = trace.wrapSpanContext({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: 'b7ad6b7169203331', traceFlags: 0 });
    expect(traceparentOf(span)).toBe('00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-00');
    expect(traceparentOf(trace.wrapSpanContext(sc!))).toBe(TP);
  });

  it('hands a child of an unsampled trace its parent, made by no SDK and exported by none; a sampled parent, ended or not, gets a span of its own', async () => {
    const spans = new InMemorySpanExporter();
    // ratio 0: every root unsampled; a caller's sampled decision is still kept
    const t = (await startTracing({ traceRatio: 0 }, 'n1', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' }, spans))!;
    try {
      const root = t.start('HTTP', SpanKind.SERVER, undefined);
      expect(root.spanContext().traceFlags).toBe(0);
      expect(t.start('bus request', SpanKind.CLIENT, root)).toBe(root);
      const unsampled = `${TP.slice(0, -2)}00`;
      const step = t.start('actor step', SpanKind.SERVER, unsampled);
      expect(traceparentOf(step)).toBe(unsampled);
      expect(t.start('hub command', SpanKind.CLIENT, step)).toBe(step);

      const sampled = t.start('actor step', SpanKind.SERVER, TP);
      sampled.end();
      const child = t.start('hub command', SpanKind.CLIENT, sampled);
      expect(child).not.toBe(sampled);
      expect(child.spanContext()).toMatchObject({ traceId: TP.slice(3, 35), traceFlags: 1 });
      expect(child.spanContext().spanId).not.toBe(sampled.spanContext().spanId);
      child.end();
      root.end();
      step.end();
      expect(spans.getFinishedSpans().map((s) => `${s.name} ${s.parentSpanContext?.spanId ?? '-'}`)).toEqual([`actor step ${TP.slice(36, 52)}`, `hub command ${sampled.spanContext().spanId}`]);
    } finally {
      await t.shutdown();
    }
  });

  it('carries a valid traceparent in a bus command request and drops an invalid one', () => {
    const base = { d: 'lamp', m: 'set', p: { on: true }, to: 1_000 };
    expect(decodeCommandRequest(encodeValue({ ...base, tp: TP }))).toEqual({ ...base, tp: TP });
    expect(decodeCommandRequest(encodeValue({ ...base, tp: 'not-a-traceparent' }))).toEqual(base);
  });

  it("keeps an app command's traceparent and refuses one that is not a string", () => {
    const cmd = { op: 'cmd', id: 1, hub: 'h1', device: 'd1', set: { on: true } };
    expect(validateAppRequest({ ...cmd, traceparent: TP })).toEqual({ ...cmd, traceparent: TP });
    expect(validateAppRequest(cmd)).toEqual(cmd);
    expect(() => validateAppRequest({ ...cmd, traceparent: 7 })).toThrow();
  });
});
