// Over 400 lines: the app-socket message generator and its oracle of §11 are kept side by side, so a new case gets its expected answer.
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import type { ErrorCode } from '../../proto/errors.js';
import { CLOSE_CODES, checkAppMessage, checkErrorBody, commandFrameFit, errorCodeOf, sameData, serverFault, utf8Normalized } from './checks.js';
import type { Harness } from './harness.js';
import { HOSTILE_JSON_TEXTS, HOSTILE_STRINGS, deepJsonArray, isAttrs, isProtocolId, isStr, objectWithKeys, paramsWithinLimits } from './hostile.js';
import { MpMap, MpRaw, pack, toHex, unpackStrict } from './msgpack.js';
import type { AuthSpec, InputRecord } from './report.js';
import { Responder, type ReceivedCommand } from './responder.js';
import type { Rng } from './rng.js';
import { upgrade } from './upgrade.js';
import { Wakeup } from './wakeup.js';

/**
 * The app-socket fuzzer (`/app/v1`, JSON and `?enc=msgpack`): valid and hostile tokens, then one
 * message at a time, each waiting for its one reply. Requests whose answer §11 fixes are checked
 * (hostile home, hub and device ids, attribute names, parameter keys, ids, types); commands to the
 * responder hub must reach it with the keys the app sent and come back with the hub's result as is.
 */

export interface AppFuzzOptions {
  messages: number;
  crashRepeat: number;
}

type Expect = { op: 'ok' } | { op: 'err'; code: ErrorCode } | { close: true };

interface AppMessage {
  klass: string;
  data: string | Uint8Array;
  expect?: Expect[];
  /** a command to the responder: what the hub must receive */
  echo?: { device: string; method: string; params: unknown };
  /** the hostile value in it, for grouping findings */
  tag?: string;
  /** larger than uWS reads (4 × the node's frame limit): dropped without a close frame (1006) */
  overHardCap?: boolean;
}

/** The app socket's hard cap: 4 × the default TIER_MAX_FRAME_BYTES (src/transport/app-gateway.ts). */
const APP_HARD_CAP = 4 * 16_384;

interface Principal {
  admin: boolean;
  homes: Set<string>;
}

/** @default 5_000 (ms): a message without a reply in this time is a violation */
const REPLY_TIMEOUT_MS = 5_000;
const COMMAND_TIMEOUT_MAX_MS = 60_000;
const MAX_SUBSCRIPTIONS = 64;

class AppSocket {
  readonly inbox: unknown[] = [];
  closed: { code: number; reason: string } | null = null;
  /** what the client library found wrong with the server's bytes (it then closes 1006 itself) */
  clientError: string | null = null;
  private readonly wakeup = new Wakeup();

  constructor(
    private readonly ws: WebSocket,
    readonly enc: 'json' | 'msgpack',
    private readonly onProblem: (problem: string, raw: string) => void,
  ) {
    ws.on('message', (data, isBinary) => {
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      let v: unknown;
      try {
        v = isBinary ? unpackStrict(new Uint8Array(bytes)) : JSON.parse(bytes.toString('utf8'));
      } catch (err) {
        this.onProblem(`reply does not decode (${isBinary ? 'msgpack' : 'JSON'}): ${(err as Error).message}`, bytes.toString('hex').slice(0, 120));
        return;
      }
      if (isBinary !== (enc === 'msgpack')) this.onProblem(`a ${isBinary ? 'binary' : 'text'} reply on an ${enc} socket`, bytes.toString('hex').slice(0, 120));
      this.inbox.push(v);
      this.wakeup.poke();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString('utf8') };
      this.wakeup.poke();
    });
    ws.on('error', (err) => {
      this.clientError ??= err.message;
    });
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(data: string | Uint8Array): void {
    if (this.open) this.ws.send(data, { binary: typeof data !== 'string' });
  }

  until(done: () => boolean, timeoutMs: number): Promise<boolean> {
    return this.wakeup.until(done, () => this.closed !== null, timeoutMs);
  }

  /** the fuzzer closed this socket itself: its close code is not the server's */
  closedByUs = false;

  async close(): Promise<void> {
    this.closedByUs = true;
    if (this.open) this.ws.close(1000);
    await this.until(() => this.closed !== null, 2_000);
    if (!this.closed) this.ws.terminate();
  }
}

export class AppFuzzer {
  private readonly responder: Responder;
  private userToken = '';
  private tokens: { wrongKey: string; algNone: string; expired?: string; badClaims: string } | null = null;
  private generation = 0;
  private sock: AppSocket | null = null;
  private principal: Principal = { admin: true, homes: new Set() };
  private subscribed = new Set<string>();
  private left = 0;
  private nextId = 1;
  private sent = 0;

  constructor(
    private readonly h: Harness,
    private readonly rng: Rng,
    private readonly opts: AppFuzzOptions,
  ) {
    this.responder = new Responder(h, 'app');
  }

  async run(): Promise<void> {
    const maxIterations = this.opts.messages * 3 + 1_000;
    for (let i = 0; i < maxIterations && this.sent < this.opts.messages; i++) {
      if (!(await this.h.ready())) break;
      try {
        if (this.generation !== this.h.target.generation) await this.setup();
        await this.responder.ensure();
        if (!this.sock || this.left <= 0) await this.connect();
        else await this.step();
      } catch (err) {
        if (!this.h.target.alive || this.h.restarting) continue;
        throw err;
      }
    }
    await this.sock?.close();
    await this.responder.close();
  }

  private async setup(): Promise<void> {
    this.generation = this.h.target.generation;
    this.sock = null;
    this.userToken = await this.h.userToken([this.responder.homeId]);
    const secret = this.h.target.jwtSecret;
    const key = new TextEncoder().encode('not-the-jwt-secret-of-this-node');
    const now = Math.floor(Date.now() / 1000);
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    this.tokens = {
      wrongKey: await new SignJWT({ homes: [this.responder.homeId] }).setProtectedHeader({ alg: 'HS256' }).setSubject('mallory').sign(key),
      algNone: `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'mallory', homes: [this.responder.homeId] })}.`,
      badClaims: secret ? await new SignJWT({ homes: 'all' }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret)) : `${b64({ alg: 'HS256' })}.${b64({ homes: 'all' })}.x`,
      ...(secret ? { expired: await new SignJWT({ homes: [this.responder.homeId] }).setProtectedHeader({ alg: 'HS256' }).setSubject('late').setExpirationTime(now - 60).sign(new TextEncoder().encode(secret)) } : {}),
    };
  }

  private tokenFor(auth: 'admin' | 'user'): string {
    return auth === 'admin' ? this.h.target.adminToken : this.userToken;
  }

  /** A new socket: mostly valid (admin or user, JSON or msgpack, token in the query, header or subprotocol), sometimes a refused one. */
  private async connect(): Promise<void> {
    await this.sock?.close();
    this.sock = null;
    const t = this.tokens!;
    const variant = this.rng.weighted([
      [30, 'admin-query'],
      [20, 'user-query'],
      [8, 'user-header'],
      [8, 'user-protocol'],
      [12, 'bad'],
    ] as const);
    const enc = this.rng.chance(0.4) ? ('msgpack' as const) : ('json' as const);
    let auth: AuthSpec;
    let query = enc === 'msgpack' ? 'enc=msgpack' : this.rng.chance(0.1) ? `enc=${this.rng.pick(['JSON', 'xml', '', '%zz', 'json'])}` : '';
    // an encoding the node does not speak is refused before the token is looked at
    const badEnc = /^enc=/.test(query) && query !== 'enc=msgpack' && query !== 'enc=json';
    let headers: Record<string, string> = {};
    let protocols: string[] | undefined;
    let expectRefusal = false;
    switch (variant) {
      case 'admin-query':
      case 'user-query':
        auth = variant === 'admin-query' ? 'admin' : 'user';
        query += `${query ? '&' : ''}token=${encodeURIComponent(this.tokenFor(auth))}`;
        break;
      case 'user-header':
        auth = 'user';
        headers = { authorization: `Bearer ${this.userToken}` };
        break;
      case 'user-protocol':
        auth = 'user';
        protocols = [`bearer.${this.userToken}`];
        break;
      case 'bad': {
        const bad = this.rng.pick(['', 'garbage', '%zz', '%', t.wrongKey, t.algNone, t.badClaims, ...(t.expired ? [t.expired] : []), 'A'.repeat(8_000), this.h.target.adminToken.slice(0, -1)]);
        const where = this.rng.pick(['query', 'header', 'protocol'] as const);
        if (where === 'query') {
          query += `${query ? '&' : ''}token=${/^%/.test(bad) ? bad : encodeURIComponent(bad)}`;
          auth = { query: bad };
        } else if (where === 'header' || bad === '') {
          headers = { authorization: `Bearer ${bad}` };
          auth = { header: `Bearer ${bad}` };
        } else {
          protocols = [`bearer.${bad}`];
          auth = { protocol: `bearer.${bad}` };
        }
        expectRefusal = true;
        break;
      }
    }
    const input: InputRecord = { surface: 'app', klass: `upgrade:${variant}`, at: this.h.rec.now(), enc, auth, query, upgradeOnly: true };
    this.h.sending('app', [input]);
    const opened = await upgrade(`${this.h.target.wsUrl}/app/v1${query ? `?${query}` : ''}`, { headers, protocols });
    this.h.done('app');
    this.h.rec.sent.appConnects++;
    if (!this.h.target.alive || this.h.restarting) return;
    if (opened.kind === 'refused') {
      const code = errorCodeOf(opened.body);
      this.h.rec.counts.appUpgrades.inc(`${opened.status} ${code ?? '?'}`);
      const problem = checkErrorBody(opened.status, opened.body);
      if (problem) this.h.rec.violation({ invariant: 'error-body', surface: 'app', klass: input.klass, detail: `upgrade refusal: ${problem}`, input });
      else if (badEnc ? opened.status !== 400 || code !== 'invalid_field' : !expectRefusal || code !== 'unauthorized') {
        this.h.rec.violation({ invariant: 'app-oracle', surface: 'app', klass: input.klass, detail: `expected ${badEnc ? '400 invalid_field (enc)' : expectRefusal ? '401 unauthorized' : 'the upgrade'}, got ${opened.status} ${code}`, input });
      }
      return;
    }
    if (opened.kind === 'failed') {
      this.h.rec.counts.appUpgrades.inc('failed');
      this.h.rec.violation({ invariant: 'app-oracle', surface: 'app', klass: input.klass, detail: `no HTTP answer to the upgrade: ${opened.message}`, input });
      return;
    }
    this.h.rec.counts.appUpgrades.inc('101');
    if (badEnc) {
      this.h.rec.violation({ invariant: 'app-oracle', surface: 'app', klass: input.klass, detail: `an unknown encoding was served: ${query}`, input });
      opened.ws.terminate();
      return;
    }
    if (expectRefusal) {
      this.h.rec.violation({ invariant: 'app-oracle', surface: 'app', klass: input.klass, detail: 'a bad token was accepted', input });
      opened.ws.terminate();
      return;
    }
    this.sock = new AppSocket(opened.ws, enc, (problem, raw) => this.h.rec.violation({ invariant: 'app-reply', surface: 'app', klass: 'server-output', detail: `${problem}: ${raw}` }));
    this.principal = auth === 'admin' ? { admin: true, homes: new Set() } : { admin: false, homes: new Set([this.responder.homeId]) };
    this.subscribed = new Set();
    this.left = this.rng.range(5, 80);
    this.current = { enc, auth: auth as 'admin' | 'user', query };
  }

  /** the home of the last sub/unsub message */
  private lastHome = '';

  private current: { enc: 'json' | 'msgpack'; auth: 'admin' | 'user'; query: string } = { enc: 'json', auth: 'admin', query: '' };

  /** One message and its one reply. */
  private async step(): Promise<void> {
    const sock = this.sock!;
    let msg = this.message(sock.enc);
    for (let i = 0; i < 20 && this.quarantined(msg.klass); i++) msg = this.message(sock.enc);
    this.left--;
    this.responder.take();
    const input: InputRecord = { surface: 'app', klass: msg.klass, at: this.h.rec.now(), enc: sock.enc, auth: this.current.auth, query: this.current.query.replace(/(^|&)token=[^&]*/, ''), ...(typeof msg.data === 'string' ? { text: msg.data } : { hex: toHex(msg.data) }) };
    this.h.sending('app', [input]);
    const generation = this.h.target.generation;
    const from = sock.inbox.length;
    sock.send(msg.data);
    this.sent++;
    this.h.rec.sent.appMessages++;
    const isReply = (m: unknown) => typeof m === 'object' && m !== null && ((m as { op?: unknown }).op === 'ok' || (m as { op?: unknown }).op === 'err');
    const replied = await sock.until(() => sock.inbox.slice(from).some(isReply), REPLY_TIMEOUT_MS);
    this.h.done('app');
    const nodeOk = this.h.target.alive && !this.h.restarting && this.h.target.generation === generation;
    const received = sock.inbox.slice(from);
    for (const m of received) {
      const problem = checkAppMessage(m);
      if (problem) this.h.rec.violation({ invariant: 'app-reply', surface: 'app', klass: msg.klass, detail: problem, input });
    }
    const reply = received.find(isReply) as Record<string, unknown> | undefined;
    if (reply) {
      this.h.rec.counts.appReplies.inc(reply.op === 'ok' ? 'ok' : String(reply.code));
      if (reply.op === 'err' && serverFault(reply.code)) this.h.rec.violation({ invariant: 'no-internal-error', surface: 'app', klass: msg.klass, detail: `err ${String(reply.code)}: ${String(reply.msg)}`, input });
      if (reply.op === 'ok' && msg.klass === 'sub') this.subscribed.add(String((reply.result as { home?: unknown } | undefined)?.home));
      if (reply.op === 'ok' && msg.klass === 'unsub') this.subscribed.delete(String(this.lastHome));
    }
    if (!replied && !sock.closed && nodeOk) {
      this.h.rec.violation({ invariant: 'app-no-answer', surface: 'app', klass: msg.klass, detail: `no reply within ${REPLY_TIMEOUT_MS} ms`, input });
      await sock.close();
    }
    if (nodeOk && msg.expect) {
      const got = reply ? (reply.op === 'ok' ? 'ok' : `err ${String(reply.code)}`) : sock.closed ? `close ${sock.closed.code}${sock.closed.code === 1006 ? this.closeContext(sock) : ''}` : 'no reply';
      const ok = msg.expect.some((e) => ('close' in e ? sock.closed !== null : reply !== undefined && reply.op === e.op && (e.op === 'ok' || reply.code === e.code)));
      if (!ok) this.h.rec.violation({ invariant: 'app-oracle', surface: 'app', klass: msg.klass, detail: `expected ${msg.expect.map((e) => ('close' in e ? 'a close' : e.op === 'ok' ? 'ok' : `err ${e.code}`)).join(' or ')}, got ${got}`, input, tag: msg.tag });
    }
    if (nodeOk && msg.echo && reply?.op === 'ok') this.checkEcho(msg, reply, this.responder.take(), input);
    // a message over the limit (refused whole, so without an id) is followed by a close 1009 (PROTOCOL.md §11):
    // wait for it, so the next message does not meet it; a command over the hub's frame max leaves the socket open
    if (reply?.op === 'err' && reply.code === 'frame_too_large' && reply.id === undefined) await sock.until(() => sock.closed !== null, REPLY_TIMEOUT_MS);
    if (sock.closed) {
      const code = sock.closed.code;
      this.h.rec.counts.appCloses.inc(code);
      if (!CLOSE_CODES.has(code) && nodeOk && !sock.closedByUs && !(code === 1006 && msg.overHardCap)) this.h.rec.violation({ invariant: 'close-code', surface: 'app', klass: msg.klass, detail: `the server closed the app socket with ${code} (not a CloseCode)${this.closeContext(sock)}`, input });
      this.sock = null;
    }
  }

  /** For a close no code explains: what the client library found, else the node's last log lines. */
  private closeContext(sock: AppSocket): string {
    if (sock.clientError) return `; the client found: ${sock.clientError}`;
    const lines = this.h.target.lastLines().slice(-3);
    return lines.length ? `; the node last logged: ${lines.join(' | ').slice(0, 600)}` : '';
  }

  /** The hub received the command as the app sent it, and the app got the hub's result back unchanged. */
  private checkEcho(msg: AppMessage, reply: Record<string, unknown>, received: ReceivedCommand[], input: InputRecord): void {
    const echo = msg.echo!;
    const cmd = received[received.length - 1];
    if (!cmd) {
      this.h.rec.violation({ invariant: 'command-passthrough', surface: 'app', klass: msg.klass, detail: 'answered ok but the hub never got the command', input });
      return;
    }
    if (cmd.d !== echo.device || cmd.m !== utf8Normalized(echo.method) || !sameData(cmd.p, utf8Normalized(echo.params))) {
      const sent = utf8Normalized(echo.method);
      const what = cmd.d !== echo.device ? `device ${JSON.stringify(cmd.d)} for ${JSON.stringify(echo.device)}` : cmd.m !== sent ? `method ${JSON.stringify(cmd.m)} for ${JSON.stringify(sent)}` : `parameter keys ${JSON.stringify(Object.keys(cmd.p as object))} for ${JSON.stringify(Object.keys(echo.params as object))}`;
      this.h.rec.violation({ invariant: 'command-passthrough', surface: 'app', klass: msg.klass, tag: msg.tag, detail: `the hub got ${what} (${input.surface === 'app' ? input.enc : ''})`, input });
      return;
    }
    if (!sameData(reply.result, cmd.p)) {
      this.h.rec.violation({ invariant: 'result-passthrough', surface: 'app', klass: msg.klass, tag: msg.tag, detail: `the hub answered keys ${JSON.stringify(Object.keys(cmd.p as object))}, the app got ${JSON.stringify(reply.result)?.slice(0, 200)}`, input });
    }
  }

  private quarantined(klass: string): boolean {
    return this.opts.crashRepeat > 0 && this.h.rec.crashClasses.get(`app:${klass}`) >= this.opts.crashRepeat;
  }

  // ---- messages ----

  private message(enc: 'json' | 'msgpack'): AppMessage {
    let tag: string | undefined;
    const msg = this.messageOf(enc, (v) => (tag = JSON.stringify(v.length > 24 ? `${v.slice(0, 12)}…(${v.length})` : v)));
    if (tag !== undefined) msg.tag = tag;
    return msg;
  }

  private messageOf(enc: 'json' | 'msgpack', tagged: (v: string) => void): AppMessage {
    const kind = this.rng.weighted([
      [4, 'ping'],
      [10, 'sub'],
      [6, 'sub-since'],
      [4, 'unsub'],
      [8, 'cmd-hub'],
      [8, 'cmd-device'],
      [10, 'cmd-set'],
      [10, 'cmd-params'],
      [4, 'cmd-timeout'],
      [3, 'cmd-big'],
      [5, 'id'],
      [5, 'op'],
      [8, 'types'],
      [8, 'malformed'],
      [3, 'deep'],
      [2, 'oversize'],
      [enc === 'msgpack' ? 8 : 2, 'msgpack-raw'],
    ] as const);
    const id = this.nextId++;
    const h = () => {
      const v = this.rng.chance(0.85) ? this.rng.pick(HOSTILE_STRINGS) : this.rng.text(this.rng.range(1, 10));
      tagged(v);
      return v;
    };
    const resp = this.responder.hubId;
    switch (kind) {
      case 'ping':
        return this.request('ping', enc, { op: 'ping', id });
      case 'sub':
      case 'unsub': {
        this.lastHome = this.rng.chance(0.2) ? this.responder.homeId : h();
        return this.request(kind, enc, { op: kind, id, home: this.lastHome });
      }
      case 'sub-since': {
        // a position from a recovery: well formed, from another epoch or far away, or hostile
        const since = this.rng.pick<unknown>([
          { epoch: 'a1b2c3d4e5f6', offset: 0 },
          { epoch: h(), offset: this.rng.pick([0, 1, 2 ** 53 - 1]) },
          { epoch: 'e', offset: this.rng.pick<unknown>([-1, 1.5, 2 ** 53, '1', null]) },
          { epoch: this.rng.pick<unknown>(['', 'x'.repeat(65), 1, null, {}]), offset: 1 },
          { epoch: 'e', offset: 1, extra: true },
          { epoch: 'e' },
          { offset: 3 },
          'since',
          [1, 2],
          null,
        ]);
        return this.request(kind, enc, { op: 'sub', id, home: this.rng.chance(0.5) ? this.responder.homeId : h(), since });
      }
      case 'cmd-hub':
        return this.request(kind, enc, { op: 'cmd', id, hub: h(), device: 'dev-1', set: { on: true }, timeoutMs: 2_000 });
      case 'cmd-device':
        return this.request(kind, enc, { op: 'cmd', id, hub: resp, device: h(), set: { on: true }, timeoutMs: 2_000 });
      case 'cmd-set':
        return this.request(kind, enc, { op: 'cmd', id, hub: resp, device: 'dev-1', set: objectWithKeys([[h(), this.rng.pick([1, true, 'x', null])]]), timeoutMs: 2_000 });
      case 'cmd-params':
        return this.request(kind, enc, { op: 'cmd', id, hub: resp, device: 'dev-1', method: this.rng.pick(['identify', 'stop', h()]), params: objectWithKeys([[h(), this.rng.pick([1, 'x', [1, 2], { a: null }])]]), timeoutMs: 2_000 });
      case 'cmd-big': {
        // as JSON, within the message limit; as a command frame 4 to 31 KB (floats take 9 bytes): about half over the hub's max
        const lines = Array.from({ length: this.rng.range(400, 3_400) }, () => 0.1);
        return this.request(kind, 'json', { op: 'cmd', id, hub: resp, device: 'dev-1', method: 'show', params: { lines }, timeoutMs: 2_000 });
      }
      case 'cmd-timeout': {
        const timeoutMs = this.rng.pick<unknown>([0, -1, 1.5, '100', 60_001, 1e9, null, 1, 2_000]);
        const msg = this.request(kind, enc, { op: 'cmd', id, hub: resp, device: 'dev-1', set: { on: true }, timeoutMs });
        // 1 ms may pass before the hub answers: command_timeout is a fair answer then
        if (timeoutMs === 1) msg.expect = [{ op: 'ok' }, { op: 'err', code: 'command_timeout' }];
        return msg;
      }
      case 'id':
        return this.request(kind, enc, { op: 'ping', id: this.rng.pick<unknown>([-1, 1.5, '1', null, 2 ** 53, true, [], {}, 2 ** 53 - 1, 0]) });
      case 'op':
        return this.request(kind, enc, objectWithKeys([['op', this.rng.pick<unknown>(['subscribe', 'SUB', '', 1, null, 'evt', 'ok', '__proto__', 'toString'])], ['id', id], ['home', this.responder.homeId]]));
      case 'types': {
        const field = this.rng.pick(['home', 'hub', 'device', 'set', 'params', 'method'] as const);
        const value = this.rng.pick<unknown>([1, null, [], {}, 'x'.repeat(65), true, { a: {} }, [1], '', { a: [1] }]);
        const base: Record<string, unknown> = field === 'home' ? { op: 'sub', id } : { op: 'cmd', id, hub: resp, device: 'dev-1', timeoutMs: 2_000, ...(field === 'params' ? { method: 'identify' } : field === 'method' ? {} : { set: { on: true } }) };
        return this.request(`types:${field}`, enc, { ...base, [field]: value });
      }
      case 'malformed': {
        const text = this.rng.pick([...HOSTILE_JSON_TEXTS, '{"op":"ping","id":1', '{"op":"ping","id":1}}', "{'op':'ping'}", '{"op":"ping","id":1,"id":"x"}']);
        return this.textMessage('malformed', text);
      }
      case 'deep': {
        const depth = this.rng.pick([100, 1_000, 5_000]);
        const text = `{"op":"ping","id":${id},"x":${deepJsonArray(depth)}}`;
        const msg = this.textMessage('deep', text);
        msg.expect = [{ op: 'ok' }, { op: 'err', code: 'malformed_frame' }];
        return msg;
      }
      case 'oversize': {
        const size = this.rng.pick([16_385, 20_000, 70_000]);
        const text = `{"op":"ping","id":${id},"pad":"${'p'.repeat(size)}"}`;
        const data = enc === 'json' ? text : pack({ op: 'ping', id, pad: 'p'.repeat(size) });
        const bytes = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
        return { klass: 'oversize', data, expect: [{ op: 'err', code: 'frame_too_large' }, { close: true }], overHardCap: bytes > APP_HARD_CAP };
      }
      case 'msgpack-raw': {
        const bad = this.rng.pick([
          new Uint8Array([0xc1]),
          new Uint8Array([0xd6, 0xff, 0, 0, 0, 1]),
          pack(new MpMap([['op', 'ping'], ['id', id], ['x', new MpRaw(new Uint8Array([0xd4, 0x00, 0x00]))]])),
          pack(new MpMap([['op', 'ping'], ['id', id], ['x', new MpRaw(new Uint8Array([0xdb, 0xff, 0xff, 0xff, 0xff]))]])),
          pack(new MpMap([['op', 'ping'], ['id', id]])).slice(0, 5),
          new Uint8Array([0x93, 0x01, 0x02, 0x03]),
        ]);
        return { klass: 'msgpack-raw', data: bad, expect: [{ op: 'err', code: 'malformed_frame' }] };
      }
    }
  }

  private textMessage(klass: string, text: string): AppMessage {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return { klass, data: text, expect: [{ op: 'err', code: 'malformed_frame' }] };
    }
    return { klass, data: text, expect: this.expectFor(parsed) };
  }

  /** A request as JSON or msgpack, with its answer from the value the server decodes. */
  private request(klass: string, enc: 'json' | 'msgpack', value: Record<string, unknown>): AppMessage {
    const data = enc === 'json' ? JSON.stringify(value) : pack(value);
    const decoded = enc === 'json' ? (JSON.parse(data as string) as unknown) : unpackStrict(data as Uint8Array);
    const expect = this.expectFor(decoded);
    const m = decoded as Record<string, unknown>;
    const echo =
      m.op === 'cmd' && m.hub === this.responder.hubId && expect?.some((e) => 'op' in e && e.op === 'ok')
        ? { device: m.device as string, method: m.set !== undefined ? 'set' : (m.method as string), params: m.set !== undefined ? m.set : (m.params ?? {}) }
        : undefined;
    return { klass, data, expect, echo };
  }

  /**
   * §11 read by the fuzzer: the answer to a decoded request. Reserved names (`__proto__`,
   * `constructor`, `prototype`) as parameter keys may be refused or passed through unchanged.
   */
  private expectFor(v: unknown): Expect[] | undefined {
    const invalid: Expect[] = [{ op: 'err', code: 'invalid_field' }];
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return [{ op: 'err', code: 'malformed_frame' }];
    const m = v as Record<string, unknown>;
    if (typeof m.id !== 'number' || !Number.isSafeInteger(m.id) || m.id < 0) return invalid;
    switch (m.op) {
      case 'ping':
        return [{ op: 'ok' }];
      case 'unsub':
        return isProtocolId(m.home) ? [{ op: 'ok' }] : invalid;
      case 'sub': {
        if (!isProtocolId(m.home)) return invalid;
        if (m.since !== undefined && !isPosition(m.since)) return invalid;
        const home = m.home as string;
        if (!this.principal.admin && !this.principal.homes.has(home)) return [{ op: 'err', code: 'forbidden' }];
        if (!this.subscribed.has(home) && this.subscribed.size >= MAX_SUBSCRIPTIONS) return [{ op: 'err', code: 'rate_limited' }];
        return [{ op: 'ok' }];
      }
      case 'cmd': {
        if (!isProtocolId(m.hub) || !isProtocolId(m.device)) return invalid;
        if (m.set !== undefined) {
          // §11: `set` names at least one attribute and comes without `method` and `params`
          if (!isAttrs(m.set) || Object.keys(m.set as object).length === 0 || m.method !== undefined || m.params !== undefined) return invalid;
        } else {
          if (typeof m.method !== 'string' || !isStr(m.method, 64)) return invalid;
          if (m.params !== undefined && (typeof m.params !== 'object' || m.params === null || Array.isArray(m.params))) return invalid;
          // §1: a frame the hub could not hold (a name over 64 characters, a string over 1024) is refused, not sent
          if (m.params !== undefined && !paramsWithinLimits(m.params)) return invalid;
        }
        if (m.timeoutMs !== undefined && (typeof m.timeoutMs !== 'number' || !Number.isInteger(m.timeoutMs) || m.timeoutMs <= 0 || m.timeoutMs > COMMAND_TIMEOUT_MAX_MS)) return invalid;
        if (m.hub !== this.responder.hubId) return [{ op: 'err', code: 'forbidden' }];
        const keys = Object.keys((m.set ?? m.params ?? {}) as object);
        // a device the responder's shadow does not know (desired state set for others) is refused fairly
        const answers: Expect[] = [{ op: 'ok' }, { op: 'err', code: 'unknown_device' }];
        if (keys.some((k) => k === '__proto__' || k === 'constructor' || k === 'prototype')) answers.push(...invalid);
        // a command that runs longer than the fuzzer waits is not checked
        if (typeof m.timeoutMs === 'number' && m.timeoutMs > 2_000) return undefined;
        // §5: a command whose frame would pass the hub's max is refused, not sent
        const fit = commandFrameFit(m.device as string, m.set !== undefined ? 'set' : (m.method as string), m.set ?? m.params ?? {}, m.timeoutMs as number | undefined, this.responder.max);
        if (fit !== 'fits') answers.push({ op: 'err', code: 'frame_too_large' });
        return fit === 'over' ? answers.filter((e) => !('op' in e && e.op === 'ok')) : answers;
      }
      default:
        return invalid;
    }
  }
}

/** §11: a `since` position, exactly `{epoch: 1..64 characters, offset: a safe integer ≥ 0}`. */
function isPosition(v: unknown): boolean {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const p = v as Record<string, unknown>;
  return (
    Object.keys(p).every((k) => k === 'epoch' || k === 'offset') &&
    typeof p.epoch === 'string' &&
    p.epoch.length >= 1 &&
    p.epoch.length <= 64 &&
    typeof p.offset === 'number' &&
    Number.isSafeInteger(p.offset) &&
    p.offset >= 0
  );
}
