import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { startTracing } from '../../src/trace/tracing.js';

/**
 * Turns the process's tracing on for a test, every span kept in `spans` as it ends (nothing is
 * sent anywhere); `stop` turns it off again.
 */
export async function startTracingForTest(): Promise<{ spans: InMemorySpanExporter; stop: () => Promise<void> }> {
  const spans = new InMemorySpanExporter();
  const started = await startTracing({ traceRatio: 1 }, 'test-node', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' }, spans);
  return { spans, stop: () => started!.shutdown() };
}
