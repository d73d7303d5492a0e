// Over 400 lines: the request builder and the oracle of the API's rules are kept side by side, so a new case gets its expected answer.
import { request } from 'node:http';
import { SignJWT } from 'jose';
import { checkErrorBody, commandFrameFit, errorCodeOf, sameData, serverFault, utf8Normalized } from './checks.js';
import type { Harness } from './harness.js';
import {
  HOSTILE_JSON_TEXTS,
  HOSTILE_SEGMENTS,
  HOSTILE_STRINGS,
  MALFORMED_ESCAPES,
  badAuthorizations,
  deepJsonArray,
  deepJsonObject,
  encodeSegment,
  isAttrs,
  isProtocolId,
  objectWithKeys,
  paramsWithinLimits,
  tryDecodeSegment,
  withProtoKey,
} from './hostile.js';
import { lazyHex, type AuthSpec, type InputRecord } from './report.js';
import { rawHead } from './raw-head.js';
import { Responder } from './responder.js';
import type { Rng } from './rng.js';

/**
 * The HTTP API fuzzer: every route of GET /v1/openapi.json (and some that are not routes) with
 * hostile path parameters (malformed percent-escapes, Object.prototype names, long ids), with and
 * without auth, odd methods, malformed, hostile and oversize bodies, weird headers; one request
 * at a time, so a crash is the request in flight. Error answers must carry a code of the table;
 * a few answers are fixed by the API's own rules and checked.
 */

export interface HttpFuzzOptions {
  requests: number;
  crashRepeat: number;
}

interface Route {
  method: string;
  /** `/v1/hubs/{hubId}` */
  template: string;
  params: string[];
}

interface Req {
  klass: string;
  method: string;
  path: string;
  auth: AuthSpec;
  headers: Record<string, string>;
  body?: Buffer;
  route: Route | null;
  /** statuses (with code) the API's rules allow; absent: only the invariants are checked */
  expect?: Array<{ status: number; code?: string }>;
  /** a command to the responder: what the hub must receive */
  echo?: { device: string; method: string; params: unknown };
  /**
   * why uWS's HTTP parser may drop the request without an answer (a method it does not know,
   * more headers than it keeps, a transfer-encoding it refuses): the API never sees it
   */
  parserRefusal?: string;
  /** the hostile values in it, for grouping findings */
  tag?: string;
}

/** Methods uWS routes (upper case only); others are dropped by its parser. */
const UWS_METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'CONNECT', 'TRACE']);
/** More headers than this and uWS drops the request (UWS_HTTP_MAX_HEADERS_COUNT). */
const UWS_MAX_HEADERS = 50;
/**
 * A header section near or beyond this may be dropped by uWS's parser (its buffer is 64 KiB:
 * measured with curl, a 60 kB header answered and 70 kB dropped; with node's client 60 kB dropped).
 */
const UWS_MAX_HEADER_BYTES = 56_000;

const INVALID = { status: 400, code: 'invalid_field' };
/**
 * The responder's shadow gains devices when desired state is set for them; from then on the
 * server answers commands to devices it does not know with unknown_device, which is fair.
 */
const UNKNOWN_DEVICE = { status: 404, code: 'unknown_device' };

/** @default 300 (ms): how long a request uWS's parser may drop is waited for (it keeps some until its 10 s idle timeout) */
const PARSER_REFUSAL_WAIT_MS = 300;
/** @default 15_000 (ms): a request without an answer in this time is a violation */
const REQUEST_TIMEOUT_MS = 15_000;
/** @default 65_536 (bytes): the node's body limit (TIER_MAX_BODY_BYTES) */
const MAX_BODY = 64 * 1024;

export class HttpFuzzer {
  private readonly responder: Responder;
  private routes: Route[] = [];
  private generation = 0;
  private userToken = '';
  private badAuth: string[] = [];
  private ruleId = 'none';
  private sceneId = 'none';
  private sent = 0;
  private hubCounter = 0;

  constructor(
    private readonly h: Harness,
    private readonly rng: Rng,
    private readonly opts: HttpFuzzOptions,
  ) {
    this.responder = new Responder(h, 'http');
  }

  async run(): Promise<void> {
    const maxIterations = this.opts.requests * 2 + 1_000;
    try {
      for (let i = 0; i < maxIterations && this.sent < this.opts.requests; i++) {
        if (!(await this.h.ready())) break;
        try {
          if (this.generation !== this.h.target.generation) await this.setup();
          await this.responder.ensure();
          await this.step();
        } catch (err) {
          if (!this.h.target.alive || this.h.restarting) continue;
          throw err;
        }
      }
    } finally {
      await this.responder.close();
    }
  }

  private async setup(): Promise<void> {
    this.generation = this.h.target.generation;
    await this.responder.ensure();
    this.userToken = await this.h.userToken([this.responder.homeId]);
    const doc = await this.h.api('GET', '/v1/openapi.json');
    const paths = (doc.json as { paths?: Record<string, Record<string, unknown>> } | null)?.paths;
    if (doc.status !== 200 || !paths) throw new Error(`GET /v1/openapi.json answered ${doc.status}`);
    this.routes = [];
    for (const [template, methods] of Object.entries(paths)) {
      for (const method of Object.keys(methods)) this.routes.push({ method: method.toUpperCase(), template, params: [...template.matchAll(/\{([A-Za-z]+)\}/g)].map((m) => m[1]!) });
    }
    const admin = this.h.target.adminToken;
    const home = this.responder.homeId;
    const rule = await this.h.api('POST', `/v1/homes/${home}/rules`, { token: admin, body: this.template('POST', '/v1/homes/{homeId}/rules') });
    this.ruleId = ((rule.json as { rule?: { id?: string } } | null)?.rule?.id as string | undefined) ?? 'none';
    const scene = await this.h.api('POST', `/v1/homes/${home}/scenes`, { token: admin, body: this.template('POST', '/v1/homes/{homeId}/scenes') });
    this.sceneId = ((scene.json as { scene?: { id?: string } } | null)?.scene?.id as string | undefined) ?? 'none';
    const secret = this.h.target.jwtSecret;
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    this.badAuth = badAuthorizations({
      wrongKey: await new SignJWT({ homes: [home] }).setProtectedHeader({ alg: 'HS256' }).setSubject('mallory').sign(new TextEncoder().encode('not-the-jwt-secret-of-this-node')),
      algNone: `${b64({ alg: 'none' })}.${b64({ sub: 'mallory', homes: [home] })}.`,
      badClaims: secret ? await new SignJWT({ homes: [home, 1] }).setProtectedHeader({ alg: 'HS256' }).setSubject('x').sign(new TextEncoder().encode(secret)) : 'a.b.c',
      ...(secret ? { expired: await new SignJWT({ homes: [home] }).setProtectedHeader({ alg: 'HS256' }).setSubject('late').setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(new TextEncoder().encode(secret)) } : {}),
    });
  }

  private async step(): Promise<void> {
    let req = this.build();
    for (let i = 0; i < 20 && this.quarantined(req.klass); i++) req = this.build();
    const base: InputRecord = { surface: 'http', klass: req.klass, at: this.h.rec.now(), method: req.method, path: req.path, auth: req.auth, headers: req.headers };
    const input = req.body ? lazyHex(base, 'bodyHex', req.body) : base;
    this.h.sending('http', [input]);
    this.responder.take();
    const generation = this.h.target.generation;
    const res = await this.send(req);
    this.sent++;
    this.h.rec.sent.httpRequests++;
    if ('error' in res) {
      // a node that died answers nothing: let the crash watcher see the exit first. A /healthz
      // answer went through the node's event loop after this request: it is alive, no need to
      // wait longer (without an admin URL, or when it does not answer, wait as before)
      const alive = await Promise.race([this.h.target.whenExited().then(() => false), this.h.target.healthz(1_000)]);
      if (alive !== true) await Promise.race([this.h.target.whenExited(), new Promise((r) => setTimeout(r, 200))]);
      const nodeOk = this.h.target.alive && !this.h.restarting && this.h.target.generation === generation;
      if (!nodeOk) this.h.rec.counts.httpStatuses.inc('node died');
      else if (req.parserRefusal) this.h.rec.counts.httpStatuses.inc(`dropped by the HTTP parser (${req.parserRefusal})`);
      else if (req.body && req.body.length > MAX_BODY && /EPIPE|ECONNRESET|^aborted$/.test(res.error)) {
        // the node answers (413, or a GET's answer without reading its body) and, the client having
        // asked for `Connection: close`, closes while the client is still writing: the reset reaches
        // the client as its write failing, its read failing, or the answer cut short ("aborted")
        this.h.rec.counts.httpStatuses.inc('oversize body: closed while sending');
      }
      else {
        this.h.rec.counts.httpStatuses.inc('no answer');
        this.h.rec.violation({ invariant: 'http-no-answer', surface: 'http', klass: req.klass, tag: req.tag, detail: `${req.method} ${req.route?.template ?? req.path.slice(0, 80)}: ${res.error}`, input });
      }
      return;
    }
    const { status, text } = res;
    this.h.rec.counts.httpStatuses.inc(status);
    const code = errorCodeOf(text);
    if (status >= 400 && code) this.h.rec.counts.httpCodes.inc(code);
    const where = `${req.method} ${req.route?.template ?? req.path.slice(0, 80)}`;
    if (res.headBody) this.h.rec.violation({ invariant: 'head-without-body', surface: 'http', klass: req.klass, tag: req.tag, detail: `${where}: ${status} answered with a body`, input });
    if (status >= 400 && req.method !== 'HEAD') {
      const problem = checkErrorBody(status, text);
      if (problem) this.h.rec.violation({ invariant: 'error-body', surface: 'http', klass: req.klass, tag: req.tag, detail: `${where}: ${problem}`, input });
    }
    if (status >= 500 && serverFault(code)) this.h.rec.violation({ invariant: 'no-internal-error', surface: 'http', klass: req.klass, tag: req.tag, detail: `${where}: ${status} ${String(code)}: ${text.slice(0, 200)}`, input });
    if (req.expect && !req.expect.some((e) => e.status === status && (e.code === undefined || e.code === code))) {
      this.h.rec.violation({ invariant: 'http-oracle', surface: 'http', klass: req.klass, tag: req.tag, detail: `${where}: expected ${req.expect.map((e) => `${e.status}${e.code ? ` ${e.code}` : ''}`).join(' or ')}, got ${status} ${code ?? text.slice(0, 80)}`, input });
    }
    if (req.echo && status === 200) {
      const cmd = this.responder.take().pop();
      const result = (JSON.parse(text) as { result?: unknown }).result;
      if (!cmd) this.h.rec.violation({ invariant: 'command-passthrough', surface: 'http', klass: req.klass, tag: req.tag, detail: `${where}: answered 200 but the hub never got the command`, input });
      else if (cmd.d !== req.echo.device || cmd.m !== utf8Normalized(req.echo.method) || !sameData(cmd.p, utf8Normalized(req.echo.params))) {
        this.h.rec.violation({ invariant: 'command-passthrough', surface: 'http', klass: req.klass, tag: req.tag, detail: `${where}: the hub got p keys ${JSON.stringify(Object.keys(cmd.p as object))}, the request sent ${JSON.stringify(Object.keys(req.echo.params as object))}`, input });
      } else if (!sameData(result, cmd.p)) {
        this.h.rec.violation({ invariant: 'result-passthrough', surface: 'http', klass: req.klass, tag: req.tag, detail: `${where}: the hub answered keys ${JSON.stringify(Object.keys(cmd.p as object))}, the caller got ${JSON.stringify(result)?.slice(0, 200)}`, input });
      }
    }
  }

  private quarantined(klass: string): boolean {
    return this.opts.crashRepeat > 0 && this.h.rec.crashClasses.get(`http:${klass}`) >= this.opts.crashRepeat;
  }

  /** One request on its own connection (no keep-alive: a dropped request cannot poison the next). */
  private send(req: Req): Promise<{ status: number; text: string; headBody?: boolean } | { error: string }> {
    const headers: Record<string, string | number> = { ...req.headers };
    if (req.auth === 'admin') headers.authorization = `Bearer ${this.h.target.adminToken}`;
    else if (req.auth === 'user') headers.authorization = `Bearer ${this.userToken}`;
    else if (typeof req.auth === 'object' && 'header' in req.auth) headers.authorization = req.auth.header;
    if (req.body) headers['content-length'] = req.body.length;
    const url = new URL(this.h.target.httpUrl);
    if (req.method === 'HEAD') return rawHead(url.hostname, Number(url.port), req.path, headers, req.parserRefusal ? PARSER_REFUSAL_WAIT_MS : REQUEST_TIMEOUT_MS);
    return new Promise((resolve) => {
      let settled = false;
      const done = (r: { status: number; text: string; headBody?: boolean } | { error: string }) => {
        if (settled) return;
        settled = true;
        resolve(r);
      };
      let r;
      try {
        // uWS keeps a request it cannot parse until its 10 s idle timeout: no need to wait that long
        r = request({ host: url.hostname, port: url.port, method: req.method, path: req.path, headers, agent: false, timeout: req.parserRefusal ? PARSER_REFUSAL_WAIT_MS : REQUEST_TIMEOUT_MS });
      } catch (err) {
        done({ error: `the client refused to send it: ${(err as Error).message}` });
        return;
      }
      r.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (err) => done({ error: err.message }));
      });
      r.on('timeout', () => {
        r.destroy(new Error(`no answer within ${req.parserRefusal ? PARSER_REFUSAL_WAIT_MS : REQUEST_TIMEOUT_MS} ms`));
      });
      r.on('error', (err) => done({ error: err.message }));
      r.end(req.body);
    });
  }

  // ---- requests ----

  private build(): Req {
    this.lastParams = {};
    const useRoute = this.rng.chance(0.92);
    const route = useRoute ? this.rng.pick(this.routes) : null;
    const methodKind = this.rng.weighted([
      [85, 'route'],
      [15, 'odd'],
    ] as const);
    const method = !route || methodKind === 'odd' ? this.rng.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'PURGE', 'FOO', 'get']) : route.method;
    const authKind = this.rng.weighted([
      [50, 'admin'],
      [20, 'user'],
      [10, 'none'],
      [20, 'bad'],
    ] as const);
    const auth: AuthSpec = authKind === 'bad' ? { header: this.rng.pick(this.badAuth) } : authKind;

    // path
    let klass: string;
    let path: string;
    const paramKinds: string[] = [];
    const tags: string[] = [];
    const decoded: Record<string, string | null> = {};
    if (route) {
      path = route.template.replace(/\{([A-Za-z]+)\}/g, (_m, name: string) => {
        const kind = this.rng.weighted([
          [45, 'valid'],
          [20, 'malformed-escape'],
          [20, 'hostile'],
          [15, 'encoded'],
        ] as const);
        paramKinds.push(kind);
        // the operator's routes on one hub (disable, move, delete, re-key) aim at a hub of their own: the responder must stay
        const raw = kind === 'valid' ? (name === 'hubId' && route.template.startsWith('/v1/admin/hubs/') ? this.victimHub() : name === 'homeId' && route.template.startsWith('/v1/admin/homes/') ? this.victimHome() : this.validParam(name)) : kind === 'malformed-escape' ? this.rng.pick(MALFORMED_ESCAPES) : kind === 'hostile' ? this.rng.pick(HOSTILE_SEGMENTS) : encodeSegment(this.rng.pick(HOSTILE_STRINGS));
        decoded[name] = tryDecodeSegment(raw);
        if (kind !== 'valid') tags.push(raw.length > 24 ? `${raw.slice(0, 12)}…(${raw.length})` : raw);
        return raw;
      });
      klass = Object.values(decoded).some((d) => d === null) ? 'param:malformed-escape' : paramKinds.some((k) => k !== 'valid') ? 'param:hostile' : `route:${authKind}`;
    } else {
      path = this.rng.pick(['/v1', '/v1/', '//', '/v1/hubs', '/v1/hubs/', '/v1/hubs//shadow', '/v1/%', '/%zz', `/v1/${'a'.repeat(5_000)}`, '/v1/hubs/a/b/c/d/e/f', '/metrics', '/healthz', '/v1/openapi.json?x=%zz', '/?%', '/v1/hubs/x?token=%zz']);
      klass = 'path:not-a-route';
    }

    // body
    const headers: Record<string, string> = {};
    let body: Buffer | undefined;
    let echo: Req['echo'];
    const bodyKind = this.rng.weighted([
      [30, 'template'],
      [35, 'hostile'],
      [15, 'garbage'],
      [6, 'deep'],
      [4, 'oversize'],
      [10, 'none'],
    ] as const);
    const wantsBody = method === 'POST' || method === 'PUT' || method === 'PATCH' || this.rng.chance(0.05);
    let bodyValue: unknown;
    if (wantsBody && bodyKind !== 'none') {
      headers['content-type'] = this.rng.chance(0.9) ? 'application/json' : this.rng.pick(['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', '']);
      const template = route ? this.template(route.method, route.template) : { a: 1 };
      switch (bodyKind) {
        case 'template':
          bodyValue = template;
          body = Buffer.from(JSON.stringify(template));
          break;
        case 'hostile': {
          const [sub, value] = this.hostileBody(template);
          tags.push(JSON.stringify(this.lastHostile));
          bodyValue = value;
          body = Buffer.from(JSON.stringify(value));
          if (klass.startsWith('route:')) klass = `body:${sub}`;
          break;
        }
        case 'garbage': {
          const g = this.rng.pick([...HOSTILE_JSON_TEXTS, JSON.stringify(template).slice(0, -1), '\u00ff\u00fe', JSON.stringify(template) + '\u0000']);
          body = this.rng.chance(0.2) ? Buffer.from([0xff, 0xfe, 0x7b, 0x7d]) : Buffer.from(g);
          if (klass.startsWith('route:')) klass = 'body:garbage';
          break;
        }
        case 'deep': {
          const depth = this.rng.pick([100, 2_000, 10_000, 30_000]);
          body = Buffer.from(this.rng.chance(0.5) ? deepJsonArray(depth) : deepJsonObject(Math.floor(depth / 2)));
          if (klass.startsWith('route:')) klass = 'body:deep';
          break;
        }
        case 'oversize': {
          const size = this.rng.pick([MAX_BODY + 1, 100_000, 1_000_000]);
          body = Buffer.from(JSON.stringify({ ...(template as object), pad: 'p'.repeat(size) }));
          if (klass.startsWith('route:')) klass = 'body:oversize';
          break;
        }
      }
    }

    // headers
    const headerKind = this.rng.weighted([
      [90, 'plain'],
      [4, 'huge'],
      [3, 'many'],
      [3, 'odd'],
    ] as const);
    if (headerKind === 'huge') headers['x-fuzz'] = 'h'.repeat(this.rng.pick([8_000, 60_000]));
    else if (headerKind === 'many') for (let i = 0; i < this.rng.pick([60, 120, 300]); i++) headers[`x-fuzz-${i}`] = String(i);
    else if (headerKind === 'odd') Object.assign(headers, { 'content-type': 'application/json', expect: '100-continue', 'transfer-encoding': 'identity', 'x-forwarded-for': '%zz' });

    const headerCount = Object.keys(headers).length + 4;
    const authBytes = typeof auth === 'object' && 'header' in auth ? auth.header.length : 0;
    const headerBytes = path.length + authBytes + Object.entries(headers).reduce((n, [k, v]) => n + k.length + v.length + 4, 0);
    const parserRefusal = !UWS_METHODS.has(method)
      ? `method ${method}`
      : headerCount > UWS_MAX_HEADERS
        ? `${headerCount} headers`
        : headers['transfer-encoding'] !== undefined
          ? `transfer-encoding ${headers['transfer-encoding']}`
          : headerBytes > UWS_MAX_HEADER_BYTES
            ? 'header section over 56 kB'
            : undefined;
    const req: Req = { klass, method, path, auth, headers, body, route, ...(parserRefusal ? { parserRefusal } : {}), ...(tags.length ? { tag: tags.join(' ') } : {}) };

    // what the API's rules fix: a hostile path parameter of a matched route is refused (400 or 404)
    const authed = auth === 'admin' || auth === 'user';
    const routeMatched = route !== null && method === route.method;
    const badParam = route !== null && route.params.some((p) => decoded[p] === null || !isProtocolId(decoded[p]));
    // (a user may be refused the home before a later parameter is looked at)
    if (routeMatched && authed && badParam && headerKind === 'plain') req.expect = [{ status: 400, code: 'invalid_field' }, { status: 404, code: 'not_found' }, ...(auth === 'user' ? [{ status: 403, code: 'forbidden' }] : [])];
    const paramsValid = route !== null && !badParam && paramKinds.every((k) => k === 'valid');
    if (routeMatched && auth === 'admin' && paramsValid && headerKind === 'plain' && body && bodyValue !== undefined && headers['content-type'] === 'application/json') {
      Object.assign(req, this.bodyOracle(route, bodyValue));
      echo = req.echo;
    }
    if (echo) req.echo = echo;
    return req;
  }

  /** The answer the API's rules fix for a few bodies of admin requests on valid ids. */
  private bodyOracle(route: Route, value: unknown): Partial<Req> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return { expect: [{ status: 400, code: 'invalid_field' }] };
    const v = value as Record<string, unknown>;
    const key = `${route.method} ${route.template}`;
    if (key === 'PUT /v1/hubs/{hubId}/devices/{deviceId}/desired') {
      return { expect: [isAttrs(v.desired) ? { status: 200 } : { status: 400, code: 'invalid_field' }] };
    }
    const rules = key === 'POST /v1/homes/{homeId}/rules' || key === 'PUT /v1/homes/{homeId}/rules/{ruleId}';
    if (rules && Array.isArray(v.conditions) && v.conditions.some((c) => typeof c === 'string' && c.includes('.exists(x4,'))) return { expect: [{ status: 400, code: 'invalid_field' }] };
    if (key === 'POST /v1/admin/hubs') {
      if (!isProtocolId(v.hubId) || !isProtocolId(v.homeId) || (v.model !== undefined && (typeof v.model !== 'string' || v.model.length > 64))) return { expect: [{ status: 400, code: 'invalid_field' }] };
      return { expect: [{ status: 201 }, { status: 409, code: 'already_exists' }] };
    }
    if (key === 'POST /v1/hubs/{hubId}/devices/{deviceId}/commands') {
      if (v.timeoutMs !== undefined && (typeof v.timeoutMs !== 'number' || !Number.isInteger(v.timeoutMs) || v.timeoutMs < 1 || v.timeoutMs > 60_000)) return { expect: [{ status: 400, code: 'invalid_field' }] };
      const hubOk = this.lastParams.hubId === this.responder.hubId;
      if (v.set !== undefined) {
        // the app socket's command rules (§11): at least one attribute, without `method` and `params`
        if (!isAttrs(v.set) || Object.keys(v.set as object).length === 0 || v.method !== undefined || v.params !== undefined) return { expect: [{ status: 400, code: 'invalid_field' }] };
        if (!hubOk) return {};
        return this.commandOracle(v.timeoutMs as number | undefined, { device: this.lastParams.deviceId!, method: 'set', params: v.set });
      }
      if (v.method !== undefined) {
        if (typeof v.method !== 'string' || v.method.length === 0 || v.method.length > 64) return { expect: [{ status: 400, code: 'invalid_field' }] };
        if (v.params !== undefined && (typeof v.params !== 'object' || v.params === null || Array.isArray(v.params))) return { expect: [{ status: 400, code: 'invalid_field' }] };
        // §1: a frame the hub could not hold (a name over 64 characters, a string over 1024) is refused, not sent
        if (v.params !== undefined && !paramsWithinLimits(v.params)) return { expect: [INVALID] };
        if (!hubOk) return {};
        return this.commandOracle(v.timeoutMs as number | undefined, { device: this.lastParams.deviceId!, method: v.method, params: v.params ?? {} });
      }
      return { expect: [{ status: 400, code: 'invalid_field' }] };
    }
    return {};
  }

  /**
   * A valid command to the responder: run (200, or 404 for a device its shadow lacks), refused for a
   * `__proto__`-like key, or 413 when its frame would pass the hub's max (PROTOCOL.md §5: not sent).
   */
  private commandOracle(timeoutMs: number | undefined, echo: NonNullable<Req['echo']>): Partial<Req> {
    const expect: NonNullable<Req['expect']> = [{ status: 200 }, UNKNOWN_DEVICE, ...(reservedKeys(echo.params) ? [INVALID] : [])];
    const fit = commandFrameFit(echo.device, echo.method, echo.params, timeoutMs, this.responder.max);
    if (fit !== 'fits') expect.push({ status: 413, code: 'frame_too_large' });
    return fit === 'over' ? { expect: expect.slice(1) } : { expect, echo };
  }

  /** The hostile string of the last hostile body. */
  private lastHostile = '';

  /** The valid values chosen for the last request's parameters. */
  private lastParams: Record<string, string> = {};

  /** A hub id the fleet routes may disable, move, delete or re-key: never the responder's. */
  private victimHub(): string {
    const value = `fzv-${this.h.runId}`;
    this.lastParams.hubId = value;
    return value;
  }

  /** The home the admin's home routes act on: erasing the responder's would take its hub away. */
  private victimHome(): string {
    return `fzv-home-${this.h.runId}`;
  }

  private validParam(name: string): string {
    const value =
      name === 'hubId'
        ? this.responder.hubId
        : name === 'homeId'
          ? this.responder.homeId
          : name === 'deviceId'
            ? 'dev-1'
            : name === 'ruleId'
              ? this.ruleId
              : name === 'sceneId'
                ? this.sceneId
                : 'x';
    this.lastParams[name] = value;
    return value;
  }

  /** A valid body for a route (the starting point of the hostile ones). */
  private template(method: string, template: string): unknown {
    const hub = this.responder.hubId;
    const key = `${method} ${template}`;
    if (key === 'POST /v1/hubs/{hubId}/devices/{deviceId}/commands') {
      // now and then 4 to 31 KB as a command frame (floats take 9 bytes; the body stays under 16 KB): about half over the hub's max
      if (this.rng.chance(0.1)) return { method: 'show', params: { lines: Array.from({ length: this.rng.range(400, 3_400) }, () => 0.1) }, timeoutMs: 2_000 };
      return this.rng.chance(0.5) ? { set: { on: true }, timeoutMs: 2_000 } : { method: 'identify', params: { times: 2 }, timeoutMs: 2_000 };
    }
    if (key === 'PUT /v1/hubs/{hubId}/devices/{deviceId}/desired') return { desired: { on: true, level: 3 } };
    if (key === 'POST /v1/admin/hubs') return { hubId: `fzh-${this.h.runId}-${++this.hubCounter}`, homeId: this.responder.homeId };
    if (key === 'POST /v1/admin/tokens') return { sub: 'fuzz', homes: [this.responder.homeId], ttlS: 60 };
    // revocations aim at a victim: the fuzzer's own user token (sub `fuzz`, the responder's home) must keep working
    if (key === 'POST /v1/admin/tokens/revoke') return this.rng.pick([{ home: this.victimHome() }, { sub: `fzv-${this.h.runId}` }, { jti: `fzv-${this.h.runId}` }]);
    if (key === 'PUT /v1/homes/{homeId}/settings') return { timeZone: this.rng.pick(['UTC', 'Europe/Berlin']) };
    if (template.endsWith('/rules') || template.endsWith('/rules/{ruleId}')) {
      return { name: 'fuzz rule', triggers: [{ type: 'state', hub, device: 'dev-1', attr: 'on', to: true }], actions: [{ type: 'command', hub, device: 'dev-2', set: { on: true } }] };
    }
    if (template.endsWith('/scenes') || template.endsWith('/scenes/{sceneId}')) return { name: 'fuzz scene', commands: [{ hub, device: 'dev-1', set: { on: true } }] };
    if (template.endsWith('/test')) return { event: { kind: 'state', hub, device: 'dev-1', attrs: { on: true } } };
    return {};
  }

  /** A template with one hostile change: `__proto__`/`constructor` keys, hostile attribute names and values, wrong types. */
  private hostileBody(template: unknown): [string, unknown] {
    const base = (typeof template === 'object' && template !== null ? template : {}) as Record<string, unknown>;
    const h = this.rng.pick(HOSTILE_STRINGS);
    this.lastHostile = h.length > 24 ? `${h.slice(0, 12)}…(${h.length})` : h;
    const kind = this.rng.weighted([
      [4, 'proto-top'],
      [4, 'proto-nested'],
      [2, 'constructor'],
      [6, 'attr-key'],
      [5, 'param-key'],
      [4, 'string-field'],
      [3, 'number-field'],
      [3, 'wrong-type'],
      [2, 'costly-condition'],
    ] as const);
    switch (kind) {
      case 'proto-top':
        return [kind, withProtoKey(base, this.rng.pick<unknown>([{ admin: true }, { enabled: false }, [], 1, null]))];
      case 'proto-nested': {
        const out = { ...base };
        for (const k of Object.keys(out)) {
          const v = out[k];
          if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
            out[k] = withProtoKey(v as Record<string, unknown>, { polluted: true });
            return [kind, out];
          }
        }
        return [kind, withProtoKey(base, { polluted: true })];
      }
      case 'constructor':
        return [kind, { ...base, constructor: { prototype: { polluted: true } }, prototype: { polluted: true } }];
      case 'attr-key': {
        const attrs = objectWithKeys([[h, this.rng.pick([1, true, 'x', null])]]);
        if ('desired' in base) return [kind, { ...base, desired: attrs }];
        if ('set' in base) return [kind, { ...base, set: attrs }];
        return [kind, { ...base, set: attrs }];
      }
      case 'param-key':
        return [kind, { ...base, set: undefined, method: 'identify', params: objectWithKeys([[h, this.rng.pick([1, 'x', [1], { a: 1 }])]]) }];
      case 'string-field': {
        const keys = Object.keys(base).filter((k) => typeof base[k] === 'string');
        const k = keys.length ? this.rng.pick(keys) : this.rng.pick(['hubId', 'homeId', 'name', 'method', 'timeZone', 'sub']);
        return [kind, { ...base, [k]: h }];
      }
      case 'number-field':
        return [kind, { ...base, [this.rng.pick(['timeoutMs', 'ttlS', 'cooldownMs'])]: this.rng.pick([-1, 0, 1.5, 2 ** 53 + 2, -0, 1e300, '100']) }];
      case 'wrong-type': {
        const keys = Object.keys(base);
        const k = keys.length ? this.rng.pick(keys) : 'x';
        return [kind, { ...base, [k]: this.rng.pick<unknown>([null, [], 'x', 1, { a: [] }, true]) }];
      }
      case 'costly-condition':
        // short, and each level multiplies its evaluation by ten: refused for its cost, never run
        return [kind, { ...base, conditions: [costlyCondition(this.rng.pick([5, 6, 8, 12]))] }];
    }
  }
}

/** `depth` nested `exists` over ten items: 10^depth steps in a few hundred characters. */
function costlyCondition(depth: number): string {
  let e = 'x0 > 5';
  for (let i = 0; i < depth; i++) e = `[0,1,2,3,4,5,6,7,8,9].exists(x${i}, ${e})`;
  return e;
}

function reservedKeys(v: unknown): boolean {
  return typeof v === 'object' && v !== null && Object.keys(v).some((k) => k === '__proto__' || k === 'constructor' || k === 'prototype');
}
