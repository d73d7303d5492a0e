/**
 * The push sender of the configuration (src/compose/push-sender.ts). It tells the queue how long an
 * attempt can take, so a stop waits that long for deliveries in progress. TIER_PUSH_WEBHOOK_URL
 * with credentials or a query key: the configuration takes credentials it can send as a Basic
 * authorization and refuses others at start; the password and the query values appear nowhere it
 * is shown (a configuration error, `/debug/diagnose`, the failure log line, the error the queue
 * keeps as failedReason).
 */
import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { configuredPushSender } from '../../src/compose/push-sender.js';
import { loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/log/logger.js';
import { refusal } from '../helpers/config-refusal.js';
import { startTracingForTest } from '../helpers/tracing-on.js';

const SIGNING = 'push-webhook-secret-0123456789abc';
const PASSWORD = 'S3cretPushPass';
const KEY = 'Qu3ryK3y';

/** A port nothing listens on: every attempt fails with a network error. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('the configured push sender', () => {
  it('says how long an attempt can take (TIER_PUSH_WEBHOOK_TIMEOUT_MS: a queue’s close waits that long), tracing on or off', async () => {
    const { config } = loadConfig({ TIER_PUSH_WEBHOOK_URL: 'https://notify.example/hubtier/push', TIER_PUSH_WEBHOOK_SECRET: SIGNING, TIER_PUSH_WEBHOOK_TIMEOUT_MS: '2000' });
    expect(configuredPushSender(config, createLogger('silent')).sender.timeoutMs).toBe(2_000);
    const tracing = await startTracingForTest();
    try {
      // the tracing wrapper is another function
      expect(configuredPushSender(config, createLogger('silent')).sender.timeoutMs).toBe(2_000);
    } finally {
      await tracing.stop();
    }
  });
});

describe('the push webhook URL', () => {
  it('takes credentials it can send as Basic, and refuses others at start without showing them', () => {
    const url = `https://pushuser:${PASSWORD}@notify.example/hubtier/push`;
    expect(loadConfig({ TIER_PUSH_WEBHOOK_URL: url, TIER_PUSH_WEBHOOK_SECRET: SIGNING }).config.pushWebhookUrl).toBe(url);
    const bad = refusal({ TIER_PUSH_WEBHOOK_URL: `https://pushuser:${PASSWORD}%zz@notify.example/push?api_key=${KEY}`, TIER_PUSH_WEBHOOK_SECRET: SIGNING });
    expect(bad.message).toBe('TIER_PUSH_WEBHOOK_URL: its credentials are not valid percent-encoding: https://pushuser:***@notify.example/push?api_key=***');
    const scheme = refusal({ TIER_PUSH_WEBHOOK_URL: `ftp://pushuser:${PASSWORD}@notify.example/?api_key=${KEY}`, TIER_PUSH_WEBHOOK_SECRET: SIGNING });
    expect(scheme.message).toBe('TIER_PUSH_WEBHOOK_URL: expected a https: or http: URL, got ftp://pushuser:***@notify.example/?api_key=***');
  });

  it('shows neither the password nor a query value in diagnose, the failure line or the error kept by the queue', async () => {
    const port = await closedPort();
    const { config } = loadConfig({ TIER_PUSH_WEBHOOK_URL: `http://pushuser:${PASSWORD}@127.0.0.1:${port}/hubtier/push?api_key=${KEY}`, TIER_PUSH_WEBHOOK_SECRET: SIGNING, TIER_PUSH_WEBHOOK_TIMEOUT_MS: '2000' });
    const lines: string[] = [];
    const { sender, probe } = configuredPushSender(config, createLogger('info', {}, { write: (s: string) => lines.push(s) }));
    expect(probe).toEqual({ name: `webhook http://pushuser:***@127.0.0.1:${port}/hubtier/push?api_key=***`, delivers: true });

    const err = await sender({ id: 'push-1', attempt: 1, notification: { homeId: 'home-1', title: 'Door', body: 'opened', dedupKey: 'k' } }).then(
      () => null,
      (e: unknown) => e as Error,
    );
    // the attempt reached the network (no refusal of the URL by fetch), and failed there
    expect(err?.message).toMatch(/^push webhook: fetch failed \(.*ECONNREFUSED/);
    expect(`${err?.message}\n${err?.stack}`).not.toMatch(new RegExp(`${PASSWORD}|${KEY}`));
    const line = JSON.parse(lines.find((l) => l.includes('push webhook attempt failed'))!) as Record<string, unknown>;
    expect(line).toMatchObject({ pushId: 'push-1', url: `http://pushuser:***@127.0.0.1:${port}/hubtier/push?api_key=***` });
    expect(lines.join('\n')).not.toMatch(new RegExp(`${PASSWORD}|${KEY}`));
  });
});
