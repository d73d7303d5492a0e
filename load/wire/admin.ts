import http from 'node:http';
import https from 'node:https';

/**
 * The admin API client of every tool that provisions hubs, mints app tokens, sends commands or
 * reads shadows. `request` is the one HTTP exchange under it: JSON in, JSON (or text) out, a
 * deadline, and either pooled connections (load) or one connection per request (chaos: a failure
 * then belongs to exactly the process that request reached).
 */

export interface HttpAnswer {
  status: number;
  /** the parsed JSON body, or the raw text when it is not JSON */
  body: unknown;
  /** the body as sent */
  text: string;
}

/**
 * No HTTP answer: `code` is the socket error (`ECONNRESET`, `ECONNREFUSED`, ...) or `timeout`
 * when nothing came back within the request's deadline.
 */
export class NoAnswerError extends Error {
  override name = 'NoAnswerError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** ms a pooled connection may sit unused (uWS closes idle HTTP connections after 10 s). */
const FREE_SOCKET_MS = 4_000;

/** Keep-alive pools shared by every pooled client of this process (a load worker's hundreds of commands/s). */
let pools: { http: http.Agent; https: https.Agent } | null = null;

function agentFor(url: URL, pooled: boolean): http.Agent | false {
  if (!pooled) return false;
  // a free socket is closed here after 4 s, before the server's 10 s idle close can race a request onto it
  const options = { keepAlive: true, maxSockets: 256, timeout: FREE_SOCKET_MS };
  pools ??= { http: new http.Agent(options), https: new https.Agent(options) };
  return url.protocol === 'https:' ? pools.https : pools.http;
}

export interface RequestOptions {
  /** @default 10_000 (ms) */
  timeoutMs?: number;
  /** @default false: one connection per request (`connection: close`) */
  pooled?: boolean;
}

/**
 * One JSON request to `base` (`http(s)://host:port`), answered within `timeoutMs`; `pooled`:
 * over this process's keep-alive pool. Rejects with NoAnswerError when no answer came.
 */
export async function request(base: string, method: string, path: string, token: string | null, body: unknown, timeoutMs = 10_000, pooled = false): Promise<HttpAnswer> {
  try {
    return await requestOnce(base, method, path, token, body, timeoutMs, pooled);
  } catch (err) {
    // a kept-alive connection the server closed just as the request went out: the request never
    // reached it, so it is sent once more on a new connection (Node's documented remedy)
    if (!(err instanceof StaleSocketError)) throw err;
    return requestOnce(base, method, path, token, body, timeoutMs, pooled);
  }
}

/** ECONNRESET on a reused keep-alive connection before any answer. */
class StaleSocketError extends NoAnswerError {}

function requestOnce(base: string, method: string, path: string, token: string | null, body: unknown, timeoutMs: number, pooled: boolean): Promise<HttpAnswer> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const url = new URL(path, base);
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (!pooled) headers.connection = 'close';
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err: NoAnswerError | null, answer?: HttpAnswer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(answer!);
    };
    const client = url.protocol === 'https:' ? https : http;
    const req = client.request(url, { method, headers, agent: agentFor(url, pooled) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err: NodeJS.ErrnoException) => finish(new NoAnswerError(err.code ?? 'response_error', err.message)));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON: keep the text; the caller decides whether that is an answer
        }
        finish(null, { status: res.statusCode ?? 0, body: parsed, text });
      });
    });
    const timer = setTimeout(() => {
      finish(new NoAnswerError('timeout', `${method} ${url.href}: no answer within ${timeoutMs} ms`));
      req.destroy();
    }, timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => {
      const Err = req.reusedSocket && err.code === 'ECONNRESET' ? StaleSocketError : NoAnswerError;
      finish(new Err(err.code ?? 'request_error', `${method} ${url.href}: ${err.message}`));
    });
    req.end(payload);
  });
}

/** `ws://h:p/...` → `http://h:p`, `wss://` → `https://`; an http(s) URL gives its origin. */
export function httpBaseOf(url: string): string {
  const u = new URL(url);
  if (u.protocol === 'http:' || u.protocol === 'https:') return u.origin;
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new Error(`expected a ws:// or wss:// URL, got ${url}`);
  return `${u.protocol === 'wss:' ? 'https:' : 'http:'}//${u.host}`;
}

/** A field of a JSON answer's body, when the body is an object that has it. */
export function field(answer: HttpAnswer, name: string): unknown {
  const b = answer.body;
  return typeof b === 'object' && b !== null && Object.hasOwn(b, name) ? (b as Record<string, unknown>)[name] : undefined;
}

/** What provisioning a hub gave: its secret, or that the hub exists already (its secret is not told again). */
export type Provisioned = { secret: string } | { exists: true };

/** One hub's outcome of a batch: its secret, or the code it was refused with (`already_exists`, ...). */
export type BatchOutcome = { hubId: string; ok: true; secret: string } | { hubId: string; ok: false; code: string };

/** The calls the tools make, with the admin token, against one node. */
export class AdminClient {
  readonly base: string;

  /** `url`: the node's ws:// or http:// address */
  constructor(
    url: string,
    private readonly token: string,
    private readonly opts: RequestOptions = {},
  ) {
    this.base = httpBaseOf(url);
  }

  /** Any call: the answer as it came (status and body). */
  call(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<HttpAnswer> {
    return request(this.base, method, path, this.token, body, timeoutMs ?? this.opts.timeoutMs, this.opts.pooled);
  }

  /** POST /v1/admin/hubs. Throws an AdminError for any answer but 201 and 409 `already_exists`. */
  async provisionHub(hubId: string, homeId: string, model?: string): Promise<Provisioned> {
    const res = await this.call('POST', '/v1/admin/hubs', { hubId, homeId, model });
    const secret = field(res, 'secret');
    if (res.status === 201 && typeof secret === 'string') return { secret };
    if (res.status === 409 && field(res, 'code') === 'already_exists') return { exists: true };
    throw new AdminError(res, `provisioning ${hubId}`);
  }

  /**
   * POST /v1/admin/hubs:batch with at most 1,000 hubs: one outcome per hub, in their order.
   * Throws an AdminError for any answer but 200 (a NoAnswerError when none came).
   */
  async provisionBatch(hubs: ReadonlyArray<{ hubId: string; homeId: string; model?: string }>): Promise<BatchOutcome[]> {
    const res = await this.call('POST', '/v1/admin/hubs:batch', { hubs });
    const results = field(res, 'results');
    if (res.status !== 200 || !Array.isArray(results) || results.length !== hubs.length) throw new AdminError(res, `provisioning ${hubs.length} hubs`);
    return results.map((r: unknown, i): BatchOutcome => {
      const item = (typeof r === 'object' && r !== null ? r : {}) as Record<string, unknown>;
      const hubId = hubs[i]!.hubId;
      if (item.ok === true && typeof item.secret === 'string') return { hubId, ok: true, secret: item.secret };
      return { hubId, ok: false, code: typeof item.code === 'string' ? item.code : 'malformed_answer' };
    });
  }

  /** POST /v1/admin/hubs/{hub}/secret with no grace: a new secret for a hub that exists (the old one stops at once). */
  async rotateSecret(hubId: string): Promise<string> {
    const res = await this.call('POST', `/v1/admin/hubs/${encodeURIComponent(hubId)}/secret`, { graceS: 0 });
    const secret = field(res, 'secret');
    if (res.status === 200 && typeof secret === 'string') return secret;
    throw new AdminError(res, `rotating the secret of ${hubId}`);
  }

  /** POST /v1/admin/tokens: a user token for `homes`. */
  async appToken(sub: string, homes: string[], ttlS = 86_400): Promise<string> {
    const res = await this.call('POST', '/v1/admin/tokens', { sub, homes, ttlS });
    const token = field(res, 'token');
    if (res.status === 201 && typeof token === 'string') return token;
    throw new AdminError(res, `minting a token for ${homes.join(',')}`);
  }

  /** POST /v1/hubs/{hub}/devices/{device}/commands with `body` (`{ set }` or `{ method, params }`). */
  command(hubId: string, deviceId: string, body: Record<string, unknown>, timeoutMs?: number): Promise<HttpAnswer> {
    return this.call('POST', `/v1/hubs/${encodeURIComponent(hubId)}/devices/${encodeURIComponent(deviceId)}/commands`, body, timeoutMs);
  }

  /** GET /v1/hubs/{hub}/shadow */
  shadow(hubId: string, timeoutMs?: number): Promise<HttpAnswer> {
    return this.call('GET', `/v1/hubs/${encodeURIComponent(hubId)}/shadow`, undefined, timeoutMs);
  }
}

/** The error code of an answer: the body's `code`, else `http_<status>` (as for a refused upgrade). */
export function errorCodeOf(answer: HttpAnswer): string {
  const code = field(answer, 'code');
  return typeof code === 'string' ? code : `http_${answer.status}`;
}

/** An answer the call did not expect; `code` as `errorCodeOf` gives it. */
export class AdminError extends Error {
  override name = 'AdminError';
  readonly status: number;
  readonly code: string;

  constructor(answer: HttpAnswer, what: string) {
    const message = field(answer, 'message');
    const code = errorCodeOf(answer);
    super(`${what}: ${answer.status} ${code}${typeof message === 'string' ? ` ${message}` : ''}`);
    this.status = answer.status;
    this.code = code;
  }
}
