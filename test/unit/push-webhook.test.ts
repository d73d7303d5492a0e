/**
 * The webhook push sender against a real HTTP server: the body and headers it sends, a signature
 * the receiver can check with the shared secret alone, and every answer but a 2xx (a redirect, an
 * error status, none in time, no server) rejecting, which makes the queue retry.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Span } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PushDelivery } from '../../src/ports/push-queue/push-queue.js';
import { shownUrlText, webhookTarget } from '../../src/config/shown-url.js';
import { parseRetryAfter, SIGNATURE_HEADER, webhookPushSender, WebhookError } from '../../src/ports/push-queue/push-webhook.js';
import { inSpan } from '../../src/trace/active-span.js';

const SECRET = 'push-webhook-secret-0123456789abcdef';
const NOW = 1_733_400_000_000;

interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** What a receiver does to check a request: the signature over `<t>.<body>` with the shared secret. */
function verified(secret: string, header: string | undefined, body: string): number | null {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return null;
  const expected = createHmac('sha256', secret).update(`${m[1]}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(m[2]!, 'hex')) ? Number(m[1]) : null;
}

describe('parseRetryAfter', () => {
  it('reads delay-seconds and HTTP dates, a past date as 0, and nothing else', () => {
    expect(parseRetryAfter('120', NOW)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', NOW)).toBe(0);
    expect(parseRetryAfter(new Date(NOW + 30_000).toUTCString(), NOW)).toBe(30_000);
    expect(parseRetryAfter(new Date(NOW - 30_000).toUTCString(), NOW)).toBe(0);
    for (const v of [null, '', '-5', '1.5', '5 minutes', 'soon', 'Sat, 99 Foo 2026 25:61:00 GMT']) expect(parseRetryAfter(v, NOW), String(v)).toBeUndefined();
  });
});

describe('webhookTarget', () => {
  it('turns credentials into a Basic authorization, fetches without them, and shows password and query values masked', () => {
    expect(webhookTarget('https://pushuser:S3cret%40pass@notify.example/hubtier/push?api_key=K3y&region=eu&flag#top')).toEqual({
      url: 'https://notify.example/hubtier/push?api_key=K3y&region=eu&flag',
      authorization: `Basic ${Buffer.from('pushuser:S3cret@pass').toString('base64')}`,
      shown: 'https://pushuser:***@notify.example/hubtier/push?api_key=***&region=***&***',
    });
    // a lone user (an API key as the user name) is masked whole; a plain URL is shown as it is
    expect(webhookTarget('http://tok3n@127.0.0.1:8080/push')).toMatchObject({ url: 'http://127.0.0.1:8080/push', authorization: `Basic ${Buffer.from('tok3n:').toString('base64')}`, shown: 'http://***@127.0.0.1:8080/push' });
    expect(webhookTarget('http://127.0.0.1:8080/push')).toEqual({ url: 'http://127.0.0.1:8080/push', shown: 'http://127.0.0.1:8080/push' });
    // a secret in the path (Slack, Teams): segments of 16 characters or more are masked (review logs)
    expect(webhookTarget('https://hooks.slack.example/services/T0000/B0000/XXXXpathsecretXXXX').shown).toBe('https://hooks.slack.example/services/T0000/B0000/***');
    // the OTLP endpoint of the `tracing on` line is shown the same way (it was logged as given)
    expect(shownUrlText('http://user:OTELPASS@127.0.0.1:4318/x?token=OTELTOKEN')).toBe('http://user:***@127.0.0.1:4318/x?token=***');
    expect(shownUrlText('not a url with a secret')).toBe('(not a URL)');
    expect(shownUrlText(undefined)).toBeUndefined();
  });

  it('refuses credentials it cannot send, showing the URL masked', () => {
    expect(() => webhookTarget('https://user:pa%zzss@notify.example/?k=S3cret')).toThrow('its credentials are not valid percent-encoding: https://user:***@notify.example/?k=***');
    expect(() => webhookTarget('https://us%3Aer:pass@notify.example/')).toThrow(/user name holds a colon/);
    expect(() => webhookTarget('notify.example/push')).toThrow('not a URL');
  });
});

describe('webhookPushSender', () => {
  let server: Server;
  let base: string;
  const received: Received[] = [];
  /** the answer per path */
  const answers: Record<string, (res: ServerResponse) => void> = {
    '/ok': (res) => res.writeHead(204).end(),
    '/accepted': (res) => res.writeHead(202, { 'content-type': 'application/json' }).end('{"queued":true}'),
    '/down': (res) => res.writeHead(503).end('maintenance'),
    '/gone': (res) => res.writeHead(410).end(),
    '/moved': (res) => res.writeHead(302, { location: '/ok' }).end(),
    '/busy': (res) => res.writeHead(429, { 'retry-after': '7' }).end(),
    '/until': (res) => res.writeHead(503, { 'retry-after': new Date(NOW + 90_000).toUTCString() }).end(),
    '/garbled': (res) => res.writeHead(503, { 'retry-after': 'soon' }).end(),
    '/silent': () => {},
  };

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ path: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        answers[req.url!.split('?')[0]!]!(res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const delivery = (over: Partial<PushDelivery['notification']> = {}): PushDelivery => ({
    id: 'push-17',
    attempt: 2,
    notification: { homeId: 'home-1', title: 'Door', body: 'opened after 22:00', dedupKey: 'rule:r1:e9', data: { ruleId: 'r1', device: 'door-1' }, tp: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', ...over },
  });
  const sender = (path: string, timeoutMs = 5_000) => webhookPushSender({ url: `${base}${path}`, secret: SECRET, timeoutMs, now: () => NOW });
  const last = () => received.at(-1)!;

  it('POSTs the notification as JSON with its id and attempt, signed so the receiver can check it', async () => {
    await sender('/ok')(delivery());
    const got = last();
    expect(got.path).toBe('/ok');
    expect(JSON.parse(got.body)).toEqual({ id: 'push-17', attempt: 2, homeId: 'home-1', title: 'Door', body: 'opened after 22:00', audience: 'home', data: { ruleId: 'r1', device: 'door-1' } });
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.headers['idempotency-key']).toBe('push-17');
    // the signature holds for the body as sent, at the sender's clock, and for no other secret or body
    expect(verified(SECRET, got.headers[SIGNATURE_HEADER] as string, got.body)).toBe(NOW / 1000);
    expect(verified(`${SECRET}x`, got.headers[SIGNATURE_HEADER] as string, got.body)).toBeNull();
    expect(verified(SECRET, got.headers[SIGNATURE_HEADER] as string, got.body.replace('22:00', '23:00'))).toBeNull();
    // the dedup key and the queue's trace context are the tier's own; no trace open here: no traceparent
    expect(got.body).not.toContain('rule:r1:e9');
    expect(got.headers.traceparent).toBeUndefined();
  });

  it('leaves out data when the notification has none, and takes any 2xx as delivered', async () => {
    await sender('/accepted')(delivery({ data: undefined }));
    expect(JSON.parse(last().body)).toEqual({ id: 'push-17', attempt: 2, homeId: 'home-1', title: 'Door', body: 'opened after 22:00', audience: 'home' });
  });

  it('carries the delivery span it runs in as traceparent', async () => {
    const span = { spanContext: () => ({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1 }) } as unknown as Span;
    await inSpan(span, () => sender('/ok')(delivery()));
    expect(last().headers.traceparent).toBe('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
  });

  it('rejects an error status, naming it (the queue retries)', async () => {
    for (const [path, status] of [['/down', 503], ['/gone', 410]] as const) {
      const err = await sender(path)(delivery()).then(() => null, (e: unknown) => e);
      expect(err, path).toBeInstanceOf(WebhookError);
      expect(err).toMatchObject({ status, message: `push webhook answered ${status}` });
    }
  });

  it('passes the answer’s Retry-After on to the queue, in seconds or as a date', async () => {
    await expect(sender('/busy')(delivery())).rejects.toMatchObject({ status: 429, retryAfterMs: 7_000, message: 'push webhook answered 429 (Retry-After 7 s)' });
    await expect(sender('/until')(delivery())).rejects.toMatchObject({ status: 503, retryAfterMs: 90_000 });
    const garbled = await sender('/garbled')(delivery()).then(() => null, (e: unknown) => e);
    expect(garbled).toMatchObject({ status: 503, message: 'push webhook answered 503' });
    expect((garbled as WebhookError).retryAfterMs).toBeUndefined();
  });

  it('does not follow a redirect: the signed request goes to the configured address only', async () => {
    const before = received.length;
    await expect(sender('/moved')(delivery())).rejects.toMatchObject({ status: 302 });
    expect(received.slice(before).map((r) => r.path)).toEqual(['/moved']);
  });

  it('sends the credentials of its URL as a Basic authorization (fetch refuses a URL with them) and keeps the query', async () => {
    const withCredentials = `${base.replace('//', '//pushuser:S3cret%40pass@')}/ok?api_key=K3y`;
    await webhookPushSender({ url: withCredentials, secret: SECRET, timeoutMs: 5_000, now: () => NOW })(delivery());
    expect(last().path).toBe('/ok?api_key=K3y');
    expect(last().headers.authorization).toBe(`Basic ${Buffer.from('pushuser:S3cret@pass').toString('base64')}`);
    // a URL without credentials sends none
    await sender('/ok')(delivery());
    expect(last().headers.authorization).toBeUndefined();
  });

  it('says how long an attempt can take (a queue’s close waits that long)', () => {
    expect(sender('/ok', 1_234).timeoutMs).toBe(1_234);
  });

  it('rejects when no answer comes within the timeout, and when nothing listens', async () => {
    await expect(sender('/silent', 200)(delivery())).rejects.toThrow('push webhook: no answer within 200 ms');
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const refused = webhookPushSender({ url: `http://127.0.0.1:${port}/`, secret: SECRET, timeoutMs: 5_000 });
    await expect(refused(delivery())).rejects.toThrow(/^push webhook: fetch failed \(.*ECONNREFUSED/);
  });
});
