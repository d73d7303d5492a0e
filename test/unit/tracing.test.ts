import { trace } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { decodeCommandRequest } from '../../src/actors/command-wire.js';
import { validateAppRequest } from '../../src/protocol/app-codec.js';
import { encodeValue } from '../../src/protocol/codec.js';
import { contextOf, isValidTraceparent, startTracing, traceparentOf, tracing } from '../../src/trace/tracing.js';

const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('tracing', () => {
  it('is off without an OTLP endpoint: nothing started, the call sites see null', async () => {
    expect(await startTracing({ traceRatio: 1 }, 'n1', {})).toBeNull();
    expect(await startTracing({ traceRatio: 1 }, 'n1', { OTEL_EXPORTER_OTLP_ENDPOINT: '' })).toBeNull();
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
