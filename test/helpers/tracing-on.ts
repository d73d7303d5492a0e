import { startTracing } from '../../src/trace/tracing.js';

/**
 * Turns the process's tracing on for a test (an endpoint nothing listens on: the test makes no
 * spans of the node's tracer, or does not care that they are lost); answers its stop.
 */
export async function startTracingForTest(): Promise<() => Promise<void>> {
  const started = await startTracing({ traceRatio: 1 }, 'test-node', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' });
  return () => started!.shutdown();
}
