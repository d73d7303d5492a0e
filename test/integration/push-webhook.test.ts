/**
 * Push notifications delivered to the platform's notification service (TIER_PUSH_WEBHOOK_URL), on
 * real nodes: the embedded default (its queue on local disk) and a cluster of two nodes (BullMQ in
 * Redis). A rule's notify action reaches a receiver started here as a signed POST; the receiver
 * refuses the first attempt (503, Retry-After 2 s) and the queue tries again with the same id after
 * 2 s; a notification refused every time is tried TIER_PUSH_ATTEMPTS times, then kept as failed;
 * self-diagnosis names the webhook.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DiagnoseReport } from '../../src/admin/diagnose.js';
import { hubWithLamp, inBothModes } from '../helpers/both-modes.js';
import { eventually } from '../helpers/eventually.js';
import { api, type ServerProcess } from '../helpers/server-process.js';

const ADMIN = 'push-webhook-admin-token-0123456789';
const SECRET = 'push-webhook-signing-secret-0123456789';

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
  answered: number;
  /** performance.now() when it came */
  at: number;
}

const received: Received[] = [];
/** refuses the first attempt of each notification id (asking for 2 s), takes the next; refuses every attempt of one titled Refused */
let receiver: Server;
const env: Record<string, string> = { ADMIN_TOKEN: ADMIN, JWT_SECRET: 'push-webhook-jwt-secret-0123456789abcdef', TIER_PUSH_WEBHOOK_SECRET: SECRET, TIER_PUSH_ATTEMPTS: '3', TIER_PUSH_MAX_BACKOFF_MS: '1000' };

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const id = req.headers['idempotency-key'];
      const answered = JSON.parse(body).title === 'Refused' ? 500 : received.some((r) => r.headers['idempotency-key'] === id) ? 200 : 503;
      received.push({ headers: req.headers, body, answered, at: performance.now() });
      // a receiver shedding load: the retry waits the 2 s asked, not the queue's 1 s backoff
      res.writeHead(answered, answered === 503 ? { 'retry-after': '2' } : {}).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  // read by the nodes' start (inBothModes' own beforeAll runs after this one)
  env.TIER_PUSH_WEBHOOK_URL = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hubtier/push`;
});
afterAll(async () => {
  receiver.closeAllConnections();
  await new Promise((resolve) => receiver.close(resolve));
});

const metric = (text: string, series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

function webhookSteps(mode: 'embedded' | 'cluster', nodes: () => ServerProcess[]): void {
  const at = (i: number) => nodes()[i % nodes().length]!;
  const home = `${mode}-push-home`;

  it('delivers a rule’s notification as a signed POST, again with the same id after a 503 once its Retry-After passed', async () => {
    // the signatures' `t` is the sender's clock in whole seconds, taken between these two readings
    const firstSecond = Math.floor(Date.now() / 1000);
    const { hub } = await hubWithLamp(at(0), at(1), ADMIN, `${mode}-push-hub`, home);
    const rule = { name: 'Lamp on', triggers: [{ type: 'state', hub: `${mode}-push-hub`, device: 'lamp', attr: 'on', to: false }], actions: [{ type: 'notify', title: 'Lamp', body: 'switched off' }] };
    expect((await api(at(0).httpUrl, 'POST', `/v1/homes/${home}/rules`, ADMIN, rule)).status).toBe(201);
    await hub.report({ lamp: { on: false } });
    const mine = () => received.filter((r) => JSON.parse(r.body).homeId === home);
    const attempts = await eventually(AbortSignal.timeout(30_000), 'two attempts', async () => (mine().length >= 2 ? mine() : undefined));
    const lastSecond = Math.floor(Date.now() / 1000);
    const [first, second] = attempts.map((r) => ({ ...r, json: JSON.parse(r.body) }));
    expect(first!.json).toMatchObject({ attempt: 1, homeId: home, title: 'Lamp', body: 'switched off', audience: 'home', data: expect.objectContaining({ ruleId: expect.any(String) }) });
    expect(second!.json).toEqual({ ...first!.json, attempt: 2 });
    expect(second!.headers['idempotency-key']).toBe(first!.json.id);
    expect([first!.answered, second!.answered]).toEqual([503, 200]);
    // timers may fire a millisecond early by rounding
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(1_999);
    for (const r of attempts) {
      const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(r.headers['x-hubtier-signature'] as string)!;
      expect(createHmac('sha256', SECRET).update(`${t}.${r.body}`).digest('hex')).toBe(v1);
      expect(Number(t)).toBeGreaterThanOrEqual(firstSecond);
      expect(Number(t)).toBeLessThanOrEqual(lastSecond);
    }
    // delivered as the queue counts it, nothing left waiting or delayed: no third attempt will come
    await eventually(AbortSignal.timeout(30_000), 'the queue counting it delivered', async () => {
      const text = await (await fetch(`${at(0).adminUrl}/metrics`)).text();
      const done = metric(text, 'tier_push_notifications_total{outcome="delivered"}') >= 1 && ['waiting', 'delayed', 'active'].every((s) => metric(text, `tier_push_queue_jobs{state="${s}"}`) === 0);
      return done ? true : undefined;
    });
    expect(mine()).toHaveLength(2);
    expect(nodes().some((n) => n.logs.some((l) => l.msg === 'push webhook attempt failed (retried while attempts remain)' && l.status === 503 && l.retryAfterMs === 2_000 && l.homeId === home))).toBe(true);
    hub.close();
  });

  it('gives a notification TIER_PUSH_ATTEMPTS tries, then keeps it as failed', async () => {
    const failedBefore = await failedCount();
    const hubId = `${mode}-push-hub-2`;
    const home2 = `${home}-2`;
    const { hub } = await hubWithLamp(at(0), at(1), ADMIN, hubId, home2);
    const rule = { name: 'Lamp off', triggers: [{ type: 'state', hub: hubId, device: 'lamp', attr: 'on', to: false }], actions: [{ type: 'notify', title: 'Refused', body: 'always' }] };
    expect((await api(at(0).httpUrl, 'POST', `/v1/homes/${home2}/rules`, ADMIN, rule)).status).toBe(201);
    await hub.report({ lamp: { on: false } });
    // counted failed once its third attempt failed: nothing left to try
    await eventually(AbortSignal.timeout(30_000), 'the queue counting it failed', async () => ((await failedCount()) > failedBefore ? true : undefined));
    const attempts = received.filter((r) => JSON.parse(r.body).homeId === home2);
    expect(attempts.map((r) => [JSON.parse(r.body).attempt, r.answered])).toEqual([[1, 500], [2, 500], [3, 500]]);
    // 1 s, then 2 s capped at 1 s (TIER_PUSH_MAX_BACKOFF_MS; timers may fire a millisecond early by rounding)
    const gaps = attempts.slice(1).map((r, i) => r.at - attempts[i]!.at);
    expect(gaps.every((g) => g >= 999)).toBe(true);
    hub.close();
  });

  /** push notifications the nodes' queues count failed (a queue shared in Redis is counted by each node alike: the largest) */
  async function failedCount(): Promise<number> {
    const counts = await Promise.all(nodes().map(async (n) => metric(await (await fetch(`${n.adminUrl}/metrics`)).text(), 'tier_push_notifications_total{outcome="failed"}')));
    return Math.max(...counts.map((c) => (Number.isNaN(c) ? 0 : c)));
  }

  it('self-diagnosis names the webhook as the push sender', async () => {
    const r = await api(at(0).adminUrl, 'GET', '/debug/diagnose', ADMIN);
    const check = (r.body as DiagnoseReport).checks.find((c) => c.name === 'push-sender');
    expect(check).toMatchObject({ verdict: 'ok', detail: `webhook ${env.TIER_PUSH_WEBHOOK_URL} configured` });
  });
}

inBothModes('push notifications to a webhook', env, webhookSteps);
