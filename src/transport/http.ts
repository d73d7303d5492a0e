import { STATUS_CODES } from 'node:http';
import { ErrorCodes } from '../../proto/errors.js';
import { CommandError, TierError, asTierError } from '../errors.js';
import { outageRetryMs } from '../actors/outage-retry.js';
import type { AccessLog } from '../log/access-log.js';
import type { Logger } from '../log/logger.js';
import { RequestIds } from '../log/request-id.js';
import { failureLog } from '../log/sampler.js';
import { inSpan } from '../trace/active-span.js';
import { endSpan, SpanKind, tracing, type Span } from '../trace/tracing.js';
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws.js';
import { callerAddress, clientAddresses } from './client-address.js';
import type { Config } from '../config/config.js';
import { endStreaming, PendingAnswers } from './stream-body.js';
import type { WriteBatch } from './write-batch.js';
import { decodeParam, malformedQueryParam, parseJson } from './http-input.js';

/** A request as handlers see it: everything read from uWS before the first await. */
export interface HttpCall {
  readonly method: string;
  readonly url: string;
  readonly params: readonly string[];
  readonly query: URLSearchParams;
  readonly authorization: string;
  /** the caller's valid `x-request-id` or a generated one; echoed in the answer, carried with commands */
  readonly requestId: string;
  /** the peer's address (the proxy's, behind one), for the audit trail */
  readonly remote: string;
  /** the request's server span while tracing is on (a child of the caller's `traceparent`); the parent of what it causes */
  readonly span?: Span | undefined;
  /** the route's logger with `requestId` bound: what a handler writes its lines with (made on first use) */
  readonly log: Logger;
  /** the JSON body; `invalid_field`/`malformed_frame`/`frame_too_large` errors when it is not one */
  json(): Promise<unknown>;
}

export interface HttpReply {
  status: number;
  body?: unknown;
  /** raw text instead of JSON */
  text?: string;
  contentType?: string;
  /** extra response headers (lower-case names) */
  headers?: Record<string, string>;
  /** called once the answer is all handed to the socket, or will never be (the client left, or it was refused busy) */
  onSent?: () => void;
}

export type HttpHandler = (call: HttpCall) => Promise<HttpReply> | HttpReply;

type Method = 'get' | 'post' | 'put' | 'del' | 'patch';

export interface RouteOptions {
  /** largest body read, bytes; more answers 413 */
  maxBodyBytes: number;
  log: Logger;
  /** answers are written at the end of the turn, corked (see WriteBatch); immediately without */
  writes?: WriteBatch;
  /** every registered route is added here (the OpenAPI document is checked against it) */
  table?: RouteTable;
  /** requests counted by route template and status */
  metrics?: HttpMetrics;
  /** one access line per request, sampled per route; it also makes the request ids */
  access?: AccessLog;
  /** a route that writes the node's own store: refused at once (nothing done) while this answers an error */
  admit?: () => TierError | null;
  /** @default true: a GET route answers HEAD too; false where GET's work has effects of its own (an export's audit entry and pacing) */
  head?: boolean;
}

/** What the deps of every API module share: how its routes are registered, answered and observed. */
export interface RouteHost {
  log: Logger;
  /** largest body read, bytes; more answers 413 */
  maxBodyBytes: number;
  /** answers written corked at the end of the turn (src/transport/write-batch.ts) */
  writes?: WriteBatch;
  /** all routes of the app, for the OpenAPI document */
  table?: RouteTable;
  /** requests counted by route template and status */
  httpMetrics?: HttpMetrics;
  /** the access log and request ids of the node's HTTP routes */
  access?: AccessLog;
  /** refuses writes to the node's own store while it waits for its disk (api/store-admission.ts); absent, every write is tried */
  admitWrite?: () => TierError | null;
}

/** The options every route of an API module registers with. */
export function routeOptions(host: RouteHost): RouteOptions {
  return { maxBodyBytes: host.maxBodyBytes, log: host.log, writes: host.writes, table: host.table, metrics: host.httpMetrics, access: host.access };
}

/** The options of a route whose handler waits for a write to the node's store: refused while the store stalls. */
export function storeWriteOptions(host: RouteHost): RouteOptions {
  return { ...routeOptions(host), ...(host.admitWrite ? { admit: host.admitWrite } : {}) };
}

/** One route's request counter and timer, bound to its labels when the route is registered. */
export type HttpObserver = (status: number, seconds: number) => void;

export interface HttpMetrics {
  /** `pattern` is the template (`/v1/hubs/:hubId`), never the path: ids would grow the label set */
  route(method: string, pattern: string): HttpObserver;
}

/** The routes registered on an app, as `METHOD /pattern/:param`; `noHead`: a GET route that does not answer HEAD. */
export type RouteTable = Array<{ method: string; pattern: string; noHead?: true }>;

/** One process, one node: the answers' memory bound and the proxies trusted to name callers, from the node's config. */
export function configureHttp(config: Pick<Config, 'httpPendingBytes' | 'trustedProxies'>): void {
  pendingAnswers.max = config.httpPendingBytes;
  clientAddresses.trust(config.trustedProxies);
}

/**
 * Registers an async JSON handler. The wrapper keeps the uWS rules: it copies what it needs from
 * the request synchronously, reads the body with a size cap before the handler runs, pairs every
 * response with `onAborted`, corks the write, and turns any throw into a JSON error answer, so
 * no rejected promise ever reaches uWS.
 */
export function route(app: TemplatedApp, method: Method, pattern: string, handler: HttpHandler, opts: RouteOptions): void {
  const head = method === 'get' && opts.head !== false;
  opts.table?.push({ method: method === 'del' ? 'delete' : method, pattern, ...(method === 'get' && !head ? { noHead: true as const } : {}) });
  mount(app, method, pattern, handler, opts);
  // HEAD answers what GET would, without the body (RFC 9110 §9.3.2); not a route of its own in the table
  if (head) mount(app, 'head', pattern, handler, opts);
}

function mount(app: TemplatedApp, method: Method | 'head', pattern: string, handler: HttpHandler, opts: RouteOptions): void {
  const paramNames = pattern.split('/').filter((p) => p.startsWith(':')).map((p) => p.slice(1));
  const httpMethod = method === 'del' ? 'DELETE' : method.toUpperCase();
  const head = method === 'head';
  const observe = opts.metrics?.route(httpMethod, pattern);
  const access = opts.access?.route(httpMethod, pattern);
  const ids = requestIds(opts.access);
  // a backend away fails every request of the route alike: 10 lines per 10 s, then a count
  const outages = failureLog(opts.log, 'http requests failed with a backend away, not logged', 'warn');
  const routeKey = `${httpMethod} ${pattern}`;
  app[method](pattern, (res: HttpResponse, req: HttpRequest) => {
    const started = performance.now();
    const requestId = ids.from(req.getHeader('x-request-id'));
    const span = tracing === null ? undefined : tracing.start(`HTTP ${httpMethod} ${pattern}`, SpanKind.SERVER, req.getHeader('traceparent'), { 'http.request.method': httpMethod, 'http.route': pattern, 'hubtier.request_id': requestId });
    const answer = (reply: HttpReply) => {
      const seconds = (performance.now() - started) / 1000;
      observe?.(reply.status, seconds);
      const code = reply.status >= 400 ? errorCodeOf(reply) : undefined;
      access?.(reply.status, Math.round(seconds * 1e6), requestId, code);
      if (span) {
        span.setAttribute('http.response.status_code', reply.status);
        // a 4xx is the caller's error, not this request failing (OpenTelemetry's HTTP server convention)
        endSpan(span, reply.status >= 500 ? (code ?? String(reply.status)) : undefined);
      }
      send(res, state, challenged(reply), opts.writes, requestId, head);
    };
    const state = { aborted: false };
    res.onAborted(() => {
      state.aborted = true;
    });
    const params: string[] = [];
    for (let i = 0; i < paramNames.length; i++) {
      const param = decodeParam(req.getParameter(i));
      if (param === null) {
        const name = paramNames[i]!;
        answer(errorReply(new TierError('invalid_field', `${name}: not a valid percent-encoded UTF-8 path segment`, { field: name })));
        return;
      }
      params.push(param);
    }
    const rawQuery = req.getQuery() ?? '';
    const badParam = rawQuery === '' ? null : malformedQueryParam(rawQuery);
    if (badParam !== null) {
      answer(errorReply(new TierError('invalid_field', `${badParam}: not a valid percent-encoded UTF-8 query parameter`, { field: badParam })));
      return;
    }
    // a write the store cannot take now is refused before its body is read: piled up behind a
    // stalled disk, each held its body and its socket for as long as the stall lasted
    const refused = opts.admit?.() ?? null;
    if (refused !== null) {
      answer(errorReply(refused));
      return;
    }
    const body = method === 'get' || method === 'head' || method === 'del' ? null : readBody(res, opts.maxBodyBytes);
    let log: Logger | undefined;
    const call: HttpCall = {
      method: req.getMethod(),
      url: req.getUrl(),
      params,
      query: new URLSearchParams(rawQuery),
      authorization: req.getHeader('authorization'),
      requestId,
      remote: callerAddress(res, req),
      span,
      // most requests write no line: a child logger per request would be made for nothing
      get log() {
        return (log ??= opts.log.child({ requestId }));
      },
      json: () => parseJson(body),
    };
    const failed = (err: unknown) => {
      const e = asTierError(err);
      if (e.code === 'unavailable') outages.write(routeKey, { err, url: call.url, requestId }, 'http handler failed: a backend is away');
      else call.log.error({ err, url: call.url }, 'http handler failed');
      answer(errorReply(e));
    };
    // a sampled span is active for the handler and the answer: their lines carry its trace ids
    const start = () => (span === undefined ? run(handler, call).then(answer, failed) : inSpan(span, () => run(handler, call).then(answer, failed)));
    // the handler runs once the body is in, so its checks (the token, the hub's home) hold when it
    // acts: a body held back for seconds had outlived a revocation, an erasure or a hub's move
    if (body === null) start();
    else body.then(start, start);
  });
}

/** Ids of routes registered without an access log (tests, tools): still unique within the process. */
let defaultIds: RequestIds | undefined;

/** Where the request ids of an app's answers come from: its access log's, else the process's own. */
export function requestIds(access: AccessLog | undefined): RequestIds {
  return access?.ids ?? (defaultIds ??= new RequestIds('node'));
}

/** The `code` of an error answer's JSON body, for the access line. */
function errorCodeOf(reply: HttpReply): string | undefined {
  const body = reply.body as { code?: unknown } | undefined;
  return typeof body === 'object' && body !== null && typeof body.code === 'string' ? body.code : undefined;
}



async function run(handler: HttpHandler, call: HttpCall): Promise<HttpReply> {
  try {
    return await handler(call);
  } catch (err) {
    if (err instanceof TierError && err.code !== 'internal') return errorReply(err);
    throw err;
  }
}

/**
 * A 401 of the API names the scheme it takes (RFC 9110 §11.6.1 requires the header), as the admin
 * port's do; not in errorReply, whose 401s include the hub handshake's, which is signed, not bearer.
 */
function challenged(reply: HttpReply): HttpReply {
  if (reply.status !== 401 || reply.headers?.['www-authenticate'] !== undefined) return reply;
  return { ...reply, headers: { ...reply.headers, 'www-authenticate': 'Bearer' } };
}

export function errorReply(err: TierError): HttpReply {
  const e = ErrorCodes[err.code];
  const body: Record<string, unknown> = { ok: false, code: err.code, num: e.code, temporary: e.temporary, message: err.message };
  if (err.field !== undefined) body.field = err.field;
  if (err instanceof CommandError && err.hubCode !== undefined) body.hubCode = err.hubCode;
  if (err instanceof CommandError && err.hubTemporary) body.hubTemporary = true;
  if (err instanceof CommandError && err.unsent) body.sent = false;
  // a backend the node needs away (`unavailable`, or an `internal` it could not tell from one):
  // callers come back spread over 1–5 s, as hubs do; another 503 (busy, draining, a session
  // closing) after a second
  // a limit says when it lets the caller in again; one that cannot say, a second
  if (err.retryAfterMs !== undefined || e.http === 429) return { status: e.http, body, headers: { 'retry-after': String(Math.max(1, Math.ceil((err.retryAfterMs ?? 1_000) / 1000))) } };
  if (e.temporary && (e.http === 500 || e.http === 503)) {
    const outage = err.code === 'unavailable' || e.http === 500;
    return { status: e.http, body, headers: { 'retry-after': String(outage ? Math.ceil(outageRetryMs() / 1000) : 1) } };
  }
  return { status: e.http, body };
}

/** Answers from this many characters are streamed as the socket takes them, their bytes held under `pendingAnswers`. */
const LARGE_ANSWER_CHARS = 64 * 1024;

/**
 * The node's large answers not yet taken by their sockets (`TIER_HTTP_PENDING_BYTES`, set at
 * start): past the ceiling a large answer is refused `503 busy`, so clients that ask and do not
 * read cannot make the node hold answers without a bound.
 */
export const pendingAnswers = new PendingAnswers(64 * 1024 * 1024);

/**
 * Throws `busy` when the node's large answers waiting for readers leave no room for one as large
 * as the last: called before building an answer that may be large (an export, a home's rules or
 * scenes), so that a flood of such requests builds little the ceiling refuses anyway (a 10 MB
 * list built and then refused, over and over, took a node's heap to 940 MB).
 */
export function requireAnswerRoom(): void {
  // nothing held: room for anything (take() lets one answer past the ceiling then), so a last
  // answer larger than the ceiling cannot refuse every later one
  const held = pendingAnswers.bytes;
  if (held > 0 && held + Math.max(LARGE_ANSWER_CHARS, pendingAnswers.lastSize) > pendingAnswers.max) {
    pendingAnswers.refuse();
    throw answersBusy();
  }
}

/**
 * While the node is short of open files (set by ListenPause), every answer closes its connection and
 * large ones are refused: clients that go on asking on kept-alive connections had held their files
 * as long as they liked (21,000 kept a node's port closed, 2026-12-06); only idle ones time out.
 */
export const filePressure = { closing: false };

function answersBusy(): TierError {
  const mb = (n: number) => (n / 1_048_576).toFixed(0);
  return new TierError('busy', `${mb(pendingAnswers.bytes)} MB of answers wait for their readers on this node (at most ${mb(pendingAnswers.max)} MB): try again shortly`);
}

/** Writes an answer; `requestId` is echoed as `x-request-id`; to a HEAD request, without its body. */
export function send(res: HttpResponse, state: { aborted: boolean }, reply: HttpReply, writes?: WriteBatch, requestId?: string, head = false): void {
  if (writes) {
    writes.defer(() => send(res, state, reply, undefined, requestId, head));
    return;
  }
  if (state.aborted) return reply.onSent?.();
  const payload = reply.text ?? JSON.stringify(reply.body ?? {});
  if (!head && payload.length >= LARGE_ANSWER_CHARS) return sendLarge(res, state, reply, Buffer.from(payload), requestId);
  res.cork(() => {
    writeHead(res, reply, requestId);
    if (head) endHead(res, Buffer.byteLength(payload), filePressure.closing);
    else res.end(payload, filePressure.closing);
  });
  reply.onSent?.();
}

/**
 * A large answer: `res.end` would copy what the kernel does not take at once into uWS's buffer,
 * for as long as the client does not read. Streamed instead, its bytes held under the node's
 * ceiling until written or the client gone; past the ceiling, `503 busy`.
 */
function sendLarge(res: HttpResponse, state: { aborted: boolean }, reply: HttpReply, body: Buffer, requestId: string | undefined): void {
  const refusal = filePressure.closing ? new TierError('busy', 'the node is short of open files: large answers are refused for now') : pendingAnswers.take(body.length) ? null : answersBusy();
  if (refusal) {
    reply.onSent?.();
    return send(res, state, errorReply(refusal), undefined, requestId);
  }
  res.cork(() => {
    writeHead(res, reply, requestId);
    endStreaming(res, body, () => {
      pendingAnswers.give(body.length);
      reply.onSent?.();
    });
  });
}

function writeHead(res: HttpResponse, reply: HttpReply, requestId: string | undefined): void {
  noSniff(res.writeStatus(`${reply.status} ${STATUS_CODES[reply.status] ?? ''}`)).writeHeader(
    'content-type',
    reply.contentType ?? (reply.text !== undefined ? 'text/plain; charset=utf-8' : 'application/json'),
  );
  // one cache-control: the reply's own, else none kept (answers carry tokens, shadows, secrets)
  if (reply.headers?.['cache-control'] === undefined) res.writeHeader('cache-control', 'no-store');
  if (reply.headers) for (const name in reply.headers) res.writeHeader(name, reply.headers[name]!);
  if (requestId !== undefined) res.writeHeader('x-request-id', requestId);
}

/**
 * Every answer of both ports says this: a browser takes the content-type as sent and never guesses
 * a script or a page from the bytes (a JSON body echoing a value, a text refusal). Call after
 * `writeStatus` (uWS writes 200 at the first header).
 */
export function noSniff(res: HttpResponse): HttpResponse {
  return res.writeHeader('x-content-type-options', 'nosniff');
}

/** Ends an answer to HEAD: the length the body would have, and no body (uWS writes one after `end`). */
export function endHead(res: HttpResponse, length: number, close = false): void {
  // this uWS build (20.30): endWithoutBody(n) for n > 0 never ends the response (uWS then aborts the
  // process: nothing answered), endWithoutBody(undefined, …) writes a length of 2^63, and
  // endWithoutBody(0, true) writes its own `Content-Length: 0`. So the length by hand, except when
  // closing: 0 then (a HEAD's length is advisory)
  if (close) return void res.endWithoutBody(0, true);
  res.writeHeader('content-length', String(length));
  res.endWithoutBody();
}

/**
 * Collects a request body with a cap, copying each chunk (uWS reuses its memory). Past the cap it
 * rejects with `frame_too_large`. Call it synchronously in the handler, before any await.
 */
export function readBody(res: HttpResponse, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    res.onData((chunk, isLast) => {
      if (done) return;
      size += chunk.byteLength;
      if (size > maxBytes) {
        done = true;
        reject(new TierError('frame_too_large', `body larger than ${maxBytes} bytes`));
        return;
      }
      // uWS reuses the chunk's memory after this callback returns: copy it
      chunks.push(Buffer.from(new Uint8Array(chunk)));
      if (isLast) {
        done = true;
        resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
      }
    });
  });
}




