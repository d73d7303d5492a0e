/**
 * The push sender that hands each notification to the platform's notification service over HTTP:
 * that service knows the home's people and their phones (FCM, APNs), the tier does not. One POST
 * per delivery attempt, a JSON body, signed with HMAC-SHA256 over `<unix seconds>.<body>` as
 * Stripe signs its webhooks, so the receiver can check who sent it and refuse a replay.
 */
import { createHmac } from 'node:crypto';
import { activeSpan } from '../../trace/active-span.js';
import { traceparentOf } from '../../trace/tracing.js';
import { webhookTarget, type WebhookTarget } from '../../config/shown-url.js';
import type { PushDelivery, PushSender } from './push-queue.js';

export interface WebhookOptions {
  /** where to POST; credentials in it (`https://user:pass@host/…`) are sent as a Basic authorization (`webhookTarget`) */
  url: string;
  /** the HMAC key, shared with the receiver */
  secret: string;
  /** an attempt without an answer by then fails (and is retried) */
  timeoutMs: number;
  /** @default Date.now */
  now?: () => number;
}

/** The header carrying the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export const SIGNATURE_HEADER = 'x-hubtier-signature';

/** What the receiver gets: the notification, its id (the same on every retry) and the attempt. */
export interface WebhookBody {
  id: string;
  attempt: number;
  homeId: string;
  title: string;
  body: string;
  audience: 'home';
  data?: Record<string, string>;
}

/**
 * A receiver's answer other than 2xx, or none in time: the queue retries the notification, no
 * sooner than `retryAfterMs` when the answer had a `Retry-After` (a 429 or 503 of a receiver
 * shedding load).
 */
export class WebhookError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'WebhookError';
  }
}

/**
 * A `Retry-After` value in ms from `nowMs`: delay-seconds or an HTTP date (RFC 9110 10.2.3); a date
 * already past is 0; anything else (absent, negative, garbled) undefined, so the backoff applies.
 */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // an HTTP date names its weekday; Date.parse alone would take "5" or "2026" as dates
  if (!/^[A-Za-z]{3},/.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** `t=…,v1=…` for `body` sent at `unixSeconds`. */
export function webhookSignature(secret: string, unixSeconds: number, body: string): string {
  return `t=${unixSeconds},v1=${createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex')}`;
}

export function webhookBody(d: PushDelivery): WebhookBody {
  const n = d.notification;
  return { id: d.id, attempt: d.attempt, homeId: n.homeId, title: n.title, body: n.body, audience: n.audience ?? 'home', ...(n.data ? { data: n.data } : {}) };
}

/**
 * A sender POSTing to `url`. Resolves on a 2xx answer; rejects (a retry) on any other status, a
 * redirect (a signed request is not sent on elsewhere), a network error or `timeoutMs` without an
 * answer. An answer's `Retry-After` is passed on to the queue (`retryAfterMs`). `idempotency-key` is the notification's id: a retry after a lost answer repeats it.
 * Its errors show the URL only masked (`webhookTarget`): their message is logged and kept in the
 * queue (BullMQ's failedReason, bull-board). Throws at once on a URL `webhookTarget` refuses. Its
 * `timeoutMs` is `options.timeoutMs`: no attempt takes longer.
 */
export function webhookPushSender(options: WebhookOptions): PushSender {
  const now = options.now ?? Date.now;
  const target = webhookTarget(options.url);
  const send = async (delivery: PushDelivery): Promise<void> => {
    const body = JSON.stringify(webhookBody(delivery));
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'idempotency-key': delivery.id,
      [SIGNATURE_HEADER]: webhookSignature(options.secret, Math.floor(now() / 1000), body),
    };
    if (target.authorization !== undefined) headers.authorization = target.authorization;
    const span = activeSpan();
    if (span) headers.traceparent = traceparentOf(span);
    let res: Response;
    try {
      res = await fetch(target.url, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(options.timeoutMs) });
    } catch (err) {
      const timedOut = err instanceof Error && err.name === 'TimeoutError';
      throw new WebhookError(timedOut ? `push webhook: no answer within ${options.timeoutMs} ms` : `push webhook: ${masked(describe(err), options.url, target)}`);
    }
    // the answer's body is not used: read off so the connection goes back to the pool
    await res.body?.cancel().catch(() => undefined);
    if (res.status >= 200 && res.status < 300) return;
    const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), now());
    const asked = retryAfterMs === undefined ? '' : ` (Retry-After ${Math.round(retryAfterMs / 1000)} s)`;
    throw new WebhookError(`push webhook answered ${res.status}${asked}`, res.status, retryAfterMs);
  };
  return Object.assign(send, { timeoutMs: options.timeoutMs });
}

/** `message` with the URL, as configured or as fetched, and its query shown masked (a fetch error may quote them). */
function masked(message: string, raw: string, target: WebhookTarget): string {
  const search = new URL(target.url).search;
  let out = message;
  for (const form of [raw, target.url]) out = out.replaceAll(form, target.shown);
  // the shown URL's only `?` starts its query (one in the path is escaped)
  return search === '' ? out : out.replaceAll(search, target.shown.slice(target.shown.indexOf('?')));
}

/** fetch's network errors say only "fetch failed"; the reason is their cause. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
}
