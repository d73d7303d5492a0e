/**
 * The load tool's lean hubs time every report to the ack covering it from when the report was due
 * (a worker that sends it late does not hide the wait), and count each report an ack covers once;
 * against an in-process node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TimerWheel } from '../../src/index.js';
import { createLogger } from '../../src/log/logger.js';
import { startServer, type RunningServer } from '../../src/compose/server.js';
import { memoryPorts } from '../../src/compose/memory-ports.js';
import { LeanHubs, type LeanHubEvents } from '../../load/loadgen/lean-hub.js';
import { inProcessConfig } from '../helpers/in-process-config.js';

const ADMIN = 'load-report-acks-admin-token-0123456789';
let server: RunningServer;
const wheel = new TimerWheel();

beforeAll(async () => {
  const config = inProcessConfig(ADMIN, 'load-report-acks-jwt-secret-0123456789ab');
  const log = createLogger('silent');
  server = await startServer(config, log, async (timers) => memoryPorts(config, timers, log));
});

afterAll(async () => {
  wheel.close();
  await server?.close();
});

describe('lean hub report → ack', () => {
  it('times each report from its due time, once per report an ack covers', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/v1/admin/hubs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ hubId: 'acks-1', homeId: 'acks-home' }),
    });
    const { secret } = (await res.json()) as { secret: string };
    const acked: number[] = [];
    let wake: (() => void) | null = null;
    const events: LeanHubEvents = {
      onClose: () => {},
      onErrorFrame: () => {},
      onCommand: () => {},
      onAck: () => wake?.(),
      onReportAck: (_hub, ms) => acked.push(ms),
    };
    const target = { endpoint: `ws://127.0.0.1:${server.port}/hub/v1`, signed: true, hello: true, connectTimeoutMs: 10_000, source: () => undefined };
    const hubs = new LeanHubs([target], [{ id: 'acks-1', home: 'acks-home', target: 0, secret }], events, wheel);
    try {
      await hubs.connect(0);
      // three reports in one go, the first due 400 ms ago (a worker that was stalled)
      const now = performance.now();
      for (const [k, dueAgo] of [400, 5, 0].entries()) expect(hubs.report(0, { [`dev-${k}`]: { temperature: 20 + k } }, undefined, now - dueAgo)).toBe(true);
      // until every report is covered by an ack (the ack event follows the reports it covers)
      while (hubs.unacknowledged() > 0) await new Promise<void>((r) => (wake = r));
      expect(acked).toHaveLength(3);
      expect(acked[0]).toBeGreaterThanOrEqual(400);
      expect(acked[2]).toBeLessThan(acked[0]! - 300);
    } finally {
      await hubs.terminate(0);
    }
  });
});
