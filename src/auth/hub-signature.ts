import { createHmac, randomBytes } from 'node:crypto';
import { sameBytes } from './constant-time.js';

/**
 * Hub handshake credentials, sent with the WebSocket upgrade request as headers (or as query
 * parameters `hub`, `ts`, `nonce`, `signature`, for stacks that cannot set headers).
 * signature = hex(HMAC-SHA256(secret, `${hubId}\n${ts}\n${nonce}`)), ts in Unix seconds, signed as
 * the digits the hub sends (leading zeros included).
 */
export const HUB_AUTH_HEADERS = {
  hubId: 'x-hub-id',
  ts: 'x-hub-ts',
  nonce: 'x-hub-nonce',
  signature: 'x-hub-signature',
} as const;

export interface HubCredentials {
  hubId: string;
  /** Unix seconds */
  ts: number;
  /** the digits of `ts` as the hub sent them, which it signed (a zero-padded clock keeps its zeros); absent: `String(ts)` */
  tsDigits?: string;
  nonce: string;
  signature: string;
}

export const NONCE_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;

/** `ts`: Unix seconds, or the exact digits of the `x-hub-ts` header. */
export function signHub(secret: string, hubId: string, ts: number | string, nonce: string): string {
  return createHmac('sha256', secret).update(`${hubId}\n${ts}\n${nonce}`).digest('hex');
}

/** Fresh credentials for one connection attempt (used by hubs, the simulator and tests). */
export function hubCredentials(hubId: string, secret: string, nowMs = Date.now()): HubCredentials {
  const ts = Math.floor(nowMs / 1000);
  const nonce = randomBytes(12).toString('base64url');
  return { hubId, ts, nonce, signature: signHub(secret, hubId, ts, nonce) };
}

export function hubAuthHeaderMap(c: HubCredentials): Record<string, string> {
  return {
    [HUB_AUTH_HEADERS.hubId]: c.hubId,
    [HUB_AUTH_HEADERS.ts]: c.tsDigits ?? String(c.ts),
    [HUB_AUTH_HEADERS.nonce]: c.nonce,
    [HUB_AUTH_HEADERS.signature]: c.signature,
  };
}

/** Constant-time comparison of the expected and the presented hex signature. */
export function signatureMatches(secret: string, c: HubCredentials): boolean {
  const expected = Buffer.from(signHub(secret, c.hubId, c.tsDigits ?? c.ts, c.nonce), 'hex');
  return sameBytes(Buffer.from(c.signature, 'hex'), expected);
}
