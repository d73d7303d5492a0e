// Over 400 lines: the window protocol of a fuzzed hub (send, barrier, attribute and check each answer) reads best in one place.
import { ErrorCodes } from '../../proto/errors.js';
import { randomBytes } from 'node:crypto';
import { signHub } from '../../src/index.js';
import { signedHeaders } from '../wire/handshake.js';
import { CLOSE_CODES, checkErrorBody, checkServerFrame, errorCodeOf, serverFault } from './checks.js';
import type { Harness } from './harness.js';
import { HOSTILE_STRINGS, encodeSegment, isProtocolId } from './hostile.js';
import { BARRIER, HubFrameGen, SEQ_LIMIT, type GenFrame, type Outcome, type Vectors } from './hub-frames.js';
import { HubConn, type ServerFrame } from './hub-conn.js';
import { MpMap, pack, toHex } from './msgpack.js';
import { lazyHex, type InputRecord } from './report.js';
import type { Rng } from './rng.js';

/**
 * The hub-wire fuzzer: K provisioned hubs on valid signed upgrades (and some hostile upgrades),
 * each sending windows of generated frames followed by a heartbeat as a barrier, so every answer
 * is attributed to its window. A frame whose answer the protocol fixes goes alone in its window
 * and its answer is checked; every server frame and close is checked against the invariants.
 * A growing hub reports ever-new devices, and its shadow is compared with what it reported.
 */

export interface HubFuzzOptions {
  /** generated frames to send in total (handshake hellos and barriers not counted) */
  frames: number;
  hubs: number;
  /** frames without an expected answer sent before one barrier */
  window: number;
  /** share of `frames` sent by the growing hub */
  growShare: number;
}

/** FUZZ_DEBUG=1: every oracle violation is printed with the last windows of its hub (frames and answers). */
const DEBUG = process.env.FUZZ_DEBUG === '1';

/** @default 10_000 (ms): a barrier not answered in this time is a violation (the node hangs) */
const ANSWER_TIMEOUT_MS = 10_000;

interface Summary {
  acks: number[];
  errors: Array<{ e: string; ref: unknown }>;
  heartbeats: number;
  welcome: ServerFrame | null;
  closed: { code: number; reason: string } | null;
}

function summarize(conn: HubConn, from: number): Summary {
  const s: Summary = { acks: [], errors: [], heartbeats: 0, welcome: null, closed: conn.closed };
  for (let i = from; i < conn.inbox.length; i++) {
    const f = conn.inbox[i]!.frame;
    if (!f) continue;
    if (f.t === 6) s.acks.push(f.s as number);
    else if (f.t === 10) s.errors.push({ e: String(f.e), ref: f.ref });
    else if (f.t === 3) s.heartbeats++;
    else if (f.t === 2) s.welcome = f;
  }
  return s;
}

function describe(o: Outcome): string {
  switch (o.kind) {
    case 'ack':
      return 'its ack';
    case 'dup':
      return 'a re-ack of the last sequence';
    case 'error':
      return `error ${o.code}${o.ref !== undefined ? ` (ref ${o.ref})` : ''}`;
    case 'heartbeat':
      return 'a heartbeat';
    case 'none':
      return 'no answer';
    case 'close':
      return `${o.error ? `error ${o.error} and ` : ''}close ${o.code}`;
    case 'dropped':
      return 'the connection dropped';
  }
}

function actual(s: Summary, barrierAnswered: boolean): string {
  const parts: string[] = [];
  if (s.acks.length) parts.push(`acks [${s.acks.join(',')}]`);
  if (s.errors.length) parts.push(`errors [${s.errors.map((e) => `${e.e}${e.ref !== undefined ? `(ref ${String(e.ref)})` : ''}`).join(',')}]`);
  if (s.closed) parts.push(`close ${s.closed.code}${s.closed.reason ? ` ${s.closed.reason}` : ''}`);
  if (!barrierAnswered && !s.closed) parts.push('no answer to the barrier');
  return parts.length ? parts.join(', ') : 'no answer';
}

function satisfied(o: Outcome, s: Summary, seq: number | undefined, knownBefore: number): boolean {
  switch (o.kind) {
    case 'ack':
      return seq !== undefined && s.acks.includes(seq) && s.errors.length === 0;
    case 'dup':
      return s.acks.length > 0 && s.acks.every((a) => a === knownBefore) && s.errors.length === 0;
    case 'error': {
      // the expected refusal; beside it at most a sequence_gap, when the refused frame also skipped ahead
      const hit = s.errors.some((e) => e.e === o.code && (o.ref === undefined || e.ref === o.ref));
      const others = s.errors.filter((e) => e.e !== o.code);
      if (!hit || others.some((e) => e.e !== 'sequence_gap') || others.length > 1) return false;
      // a permanent refusal of a sequenced frame consumes its number (PROTOCOL.md §3): acked, never applied;
      // a temporary one (rate_limited, busy, sequence_gap) must not be acknowledged
      return seq === undefined || !s.acks.includes(seq) || !ErrorCodes[o.code].temporary;
    }
    case 'heartbeat':
      return s.heartbeats >= 2 && s.errors.length === 0;
    case 'none':
      return s.errors.length === 0 && s.acks.length === 0 && s.heartbeats >= 1;
    case 'close':
      return s.closed?.code === o.code && (o.error === undefined || s.errors.some((e) => e.e === o.error));
    case 'dropped':
      return s.closed !== null;
  }
}

/**
 * Before hello (PROTOCOL.md §2.2): a valid frame gets hello_required and close 1002; a frame that
 * cannot be read or validated gets its own error, then close 1002 too, but for a hello of another
 * version (unsupported_version), which leaves the socket open.
 */
function preHelloExpect(f: GenFrame): Outcome[] | undefined {
  const closing = (o: Outcome): Outcome => (o.kind === 'error' && o.code !== 'unsupported_version' ? { kind: 'close', code: 1002, error: o.code } : o);
  // a valid frame the server may also refuse at decoding (deep nesting) keeps that alternative
  if (f.validFrame) return [{ kind: 'close', code: 1002, error: 'hello_required' }, ...(f.expect ?? []).filter((o) => o.kind === 'error' && o.code !== 'sequence_gap').map(closing)];
  if (!f.expect) return undefined;
  if (f.expect.every((o) => o.kind === 'error' || o.kind === 'close' || o.kind === 'dropped')) return f.expect.filter((o) => !(o.kind === 'error' && o.code === 'sequence_gap')).map(closing);
  return undefined;
}

export class HubFuzzer {
  constructor(
    private readonly h: Harness,
    private readonly rng: Rng,
    private readonly vectors: Vectors,
    private readonly opts: HubFuzzOptions,
  ) {}

  async run(): Promise<void> {
    const growFrames = Math.round(this.opts.frames * this.opts.growShare);
    const rest = this.opts.frames - growFrames;
    const slots: Slot[] = [];
    for (let i = 0; i < this.opts.hubs; i++) {
      const budget = Math.floor(rest / this.opts.hubs) + (i < rest % this.opts.hubs ? 1 : 0);
      slots.push(new Slot(this.h, i, this.rng.fork(`hub/${i}`), this.vectors, budget, this.opts.window));
    }
    const grower = new GrowSlot(this.h, this.opts.hubs, this.rng.fork('grow'), this.vectors, growFrames);
    await Promise.all([...slots.map((s) => s.run()), grower.run()]);
    await grower.checkShadow();
  }
}

/** One fuzzed hub: its own generator stream, connection and sequence bookkeeping. */
class Slot {
  protected conn: HubConn | null = null;
  protected hubId = '';
  protected secret = '';
  protected generation = 0;
  /** the server's last acknowledged sequence number in this session */
  protected known = 0;
  protected max = 16_384;
  protected sent = 0;
  private boots = 0;
  private lastSignedHeaders: Record<string, string> | null = null;
  protected readonly gen: HubFrameGen;
  protected readonly name: string;

  constructor(
    protected readonly h: Harness,
    protected readonly index: number,
    protected readonly rng: Rng,
    vectors: Vectors,
    protected readonly budget: number,
    private readonly window: number,
  ) {
    this.gen = new HubFrameGen(rng, vectors, `g${index}-`);
    this.name = `hub/${index}`;
  }

  async run(): Promise<void> {
    // every iteration sends a frame, connects or waits for a restart: bounded by the budget
    const maxIterations = this.budget * 3 + 1_000;
    for (let i = 0; i < maxIterations && this.sent < this.budget; i++) {
      if (!(await this.h.ready())) break;
      try {
        if (this.generation !== this.h.target.generation) await this.setup();
        if (!this.conn) await this.connect();
        else if (this.known > SEQ_LIMIT) await this.reconnect();
        else await this.step();
      } catch (err) {
        if (!this.h.target.alive || this.h.restarting) continue;
        throw err;
      }
    }
    await this.conn?.close();
  }

  protected async setup(): Promise<void> {
    this.generation = this.h.target.generation;
    this.conn = null;
    this.hubId = `fz-${this.h.runId}-${this.index}-${this.generation}`;
    this.h.owners.set(this.hubId, this.name);
    this.secret = await this.h.provision(this.hubId, `fz-home-${this.h.runId}`);
  }

  protected async reconnect(): Promise<void> {
    await this.conn?.close();
    this.conn = null;
  }

  protected record(stage: 'session' | 'pre-hello', f: { klass: string; data: Uint8Array | string }): InputRecord {
    const rec: InputRecord = { surface: 'hub', klass: f.klass, at: this.h.rec.now(), hub: this.index, stage };
    return typeof f.data === 'string' ? { ...rec, text: f.data } : lazyHex(rec, 'hex', f.data);
  }

  /** Counts and checks every server message of a connection as it arrives. */
  protected watch(conn: HubConn): void {
    conn.onMessage = (m) => {
      const rec = this.h.rec;
      if (!m.frame) {
        rec.violation({ invariant: 'server-frame', surface: 'hub', klass: 'server-output', detail: `${m.problem}: ${typeof m.raw === 'string' ? m.raw.slice(0, 80) : toHex(m.raw).slice(0, 160)}`, input: this.lastInput() });
        return;
      }
      rec.counts.hubResponses.inc(m.frame.t);
      const problem = checkServerFrame(m.frame);
      if (problem) rec.violation({ invariant: 'server-frame', surface: 'hub', klass: 'server-output', detail: problem, input: this.lastInput() });
      if (m.frame.t === 10) {
        rec.counts.hubErrorCodes.inc(String(m.frame.e));
        if (serverFault(m.frame.e)) rec.violation({ invariant: 'no-internal-error', surface: 'hub', klass: this.lastInput()?.klass ?? 'unknown', detail: `error frame ${String(m.frame.e)}: ${String(m.frame.msg)}`, input: this.lastInput() });
      }
      if (m.frame.t === 12 && serverFault(m.frame.e)) rec.violation({ invariant: 'no-internal-error', surface: 'hub', klass: this.lastInput()?.klass ?? 'unknown', detail: `bye ${String(m.frame.e)}`, input: this.lastInput() });
    };
  }

  private lastInput(): InputRecord | undefined {
    const inputs = this.h.inFlight.get(this.name);
    return inputs?.[inputs.length - 1];
  }

  /** Opens a session (sometimes through a hostile upgrade, a pre-hello frame or a hostile hello). */
  protected async connect(): Promise<void> {
    const variant = this.rng.weighted([
      [86, 'normal'],
      [6, 'pre-hello'],
      [6, 'upgrade'],
      [2, 'query'],
    ] as const);
    if (variant === 'upgrade') {
      await this.hostileUpgrade();
      return;
    }
    const boot = `fz${this.index}b${++this.boots}`;
    let opened;
    if (variant === 'query') {
      const headers = signedHeaders(this.hubId, this.secret);
      const query = new URLSearchParams({ hub: headers['x-hub-id']!, ts: headers['x-hub-ts']!, nonce: headers['x-hub-nonce']!, signature: headers['x-hub-signature']! }).toString();
      opened = await HubConn.open({ url: this.h.target.wsUrl, hubId: this.hubId, secret: this.secret, unsigned: true, query });
    } else {
      const headers = signedHeaders(this.hubId, this.secret);
      this.lastSignedHeaders = headers;
      opened = await HubConn.open({ url: this.h.target.wsUrl, hubId: this.hubId, secret: this.secret, unsigned: true, headers });
    }
    this.h.rec.sent.hubConnects++;
    if (opened.kind !== 'open') {
      if (!this.h.target.alive || this.h.restarting) return;
      this.h.rec.counts.hubUpgrades.inc(opened.kind === 'refused' ? `${opened.status} ${errorCodeOf(opened.body) ?? '?'}` : 'failed');
      this.h.rec.violation({ invariant: 'valid-upgrade', surface: 'hub', klass: `upgrade:${variant}`, detail: `a signed upgrade of a provisioned hub was ${opened.kind === 'refused' ? `refused: ${opened.status} ${opened.body.slice(0, 200)}` : `not answered: ${opened.message}`}` });
      return;
    }
    this.h.rec.counts.hubUpgrades.inc('101');
    const conn = opened.conn;
    this.watch(conn);
    this.conn = conn;
    this.known = 0;

    if (variant === 'pre-hello') {
      const f = this.gen.next({ max: this.max, known: 0 });
      const input = this.record('pre-hello', f);
      this.h.sending(this.name, [input]);
      conn.send(f.data);
      this.sent++;
      this.h.rec.sent.hubFrames++;
      this.h.rec.counts.hubFrames.inc(`pre-hello:${f.klass.split(':')[0]}`);
      // a plain hello: a hostile one's error would be taken for the pre-hello frame's
      conn.send(pack(new MpMap([['t', 1], ['v', 1], ['b', boot]])));
      this.h.rec.counts.hubControl.inc('hello');
      await conn.until(() => conn.inbox.some((m) => m.frame?.t === 2), ANSWER_TIMEOUT_MS);
      const welcomeAt = conn.inbox.findIndex((m) => m.frame?.t === 2);
      const before = summarize(conn, 0);
      if (welcomeAt >= 0) {
        before.errors = before.errors.slice(0, conn.inbox.slice(0, welcomeAt).filter((m) => m.frame?.t === 10).length);
        before.closed = null;
      }
      const expect = preHelloExpect(f);
      if (expect && this.h.target.alive && !expect.some((o) => satisfied(o, before, undefined, 0))) {
        this.h.rec.violation({ invariant: 'protocol-oracle', surface: 'hub', klass: `pre-hello:${f.klass}`, detail: `before hello: expected ${expect.map(describe).join(' or ')}, got ${actual(before, true)}`, input, tag: f.tag });
      }
      this.h.done(this.name);
      return this.afterHandshake(conn, f.overHardCap === true, true);
    }

    const hello = this.gen.hello(boot);
    this.h.rec.counts.hubControl.inc(hello.klass);
    const input = this.record('pre-hello', hello);
    this.h.sending(this.name, [input]);
    conn.send(hello.data);
    await conn.until(() => conn.inbox.some((m) => m.frame?.t === 2 || m.frame?.t === 10), ANSWER_TIMEOUT_MS);
    const s = summarize(conn, 0);
    const welcomed = s.welcome !== null && s.errors.length === 0;
    if (hello.welcome ? !welcomed : s.errors[0]?.e !== hello.error && !(hello.orWelcome && welcomed)) {
      if (this.h.target.alive) this.h.rec.violation({ invariant: 'protocol-oracle', surface: 'hub', klass: hello.klass, detail: `expected ${hello.welcome ? 'welcome' : `error ${hello.error}`}, got ${s.welcome ? 'welcome' : actual(s, true)}`, input });
    }
    this.h.done(this.name);
    if (!hello.welcome && !welcomed && !conn.closed) {
      // the refused hello left the session waiting for a proper one
      conn.send(pack(new MpMap([['t', 1], ['v', 1], ['b', boot]])));
      this.h.rec.counts.hubControl.inc('hello');
    }
    return this.afterHandshake(conn, false, hello.klass !== 'hello');
  }

  /** Waits for the welcome (sending a plain hello when the last one was refused) and takes its parameters. */
  private async afterHandshake(conn: HubConn, dropExpected: boolean, needSync: boolean): Promise<void> {
    await conn.until(() => conn.inbox.some((m) => m.frame?.t === 2), ANSWER_TIMEOUT_MS);
    const welcome = conn.inbox.find((m) => m.frame?.t === 2)?.frame;
    if (!welcome) {
      if (!conn.closed) {
        if (this.h.target.alive && !this.h.restarting) this.h.rec.violation({ invariant: 'hub-no-answer', surface: 'hub', klass: 'hello', detail: `no welcome within ${ANSWER_TIMEOUT_MS} ms of a valid hello (got ${actual(summarize(conn, 0), false)})`, input: this.lastInput() });
        conn.terminate();
        await conn.until(() => conn.closed !== null, 2_000);
      }
      this.onClosed(conn, dropExpected);
      return;
    }
    this.max = typeof welcome.max === 'number' ? welcome.max : this.max;
    this.known = typeof welcome.s === 'number' ? welcome.s : 0;
    // after more than one hello, an answer to the extra one may still be on its way
    if (needSync) await this.sync(conn);
  }

  /** A barrier whose answer closes the handshake: anything the hellos caused has arrived after it. */
  protected async sync(conn: HubConn): Promise<void> {
    const from = conn.inbox.length;
    conn.send(BARRIER);
    this.h.rec.counts.hubControl.inc('barrier');
    const answered = await conn.until(() => summarize(conn, from).heartbeats >= 1, ANSWER_TIMEOUT_MS);
    if (!answered && !conn.closed) {
      // a late answer would be taken for the next window's: this socket is done
      if (this.h.target.alive && !this.h.restarting) this.h.rec.violation({ invariant: 'hub-no-answer', surface: 'hub', klass: 'handshake', detail: `no answer to a heartbeat within ${ANSWER_TIMEOUT_MS} ms after the welcome` });
      conn.terminate();
      await conn.until(() => conn.closed !== null, 2_000);
    }
    if (conn.closed) this.onClosed(conn, false);
  }

  /**
   * One window: an oracle frame alone, or up to `window` frames without a fixed answer; then the
   * barrier. An oracle frame drawn while filling a window goes alone in the next one; if the
   * sequence moved meanwhile, its expected answer no longer applies and it is sent unchecked.
   */
  protected async step(): Promise<void> {
    const conn = this.conn!;
    if (this.pending) {
      const p = this.pending;
      this.pending = null;
      if (p.knownAt !== this.known) {
        this.h.rec.counts.hubControl.inc('oracle-skipped:sequence-moved');
        await this.exchange(conn, [{ ...p.frame, unchecked: true }]);
      } else await this.exchange(conn, [p.frame]);
      return;
    }
    const first = this.gen.next({ max: this.max, known: this.known });
    const frames = [first];
    if (!first.expect) {
      while (frames.length < this.window && this.sent + frames.length < this.budget) {
        const f = this.gen.next({ max: this.max, known: this.known });
        if (f.expect) {
          this.pending = { frame: f, knownAt: this.known };
          break;
        }
        frames.push(f);
      }
    }
    await this.exchange(conn, frames);
  }

  /** the last windows of this hub, with FUZZ_DEBUG=1 */
  private traces: string[] = [];

  /** An oracle frame drawn while filling a window, and the sequence it was drawn for. */
  private pending: { frame: GenFrame; knownAt: number } | null = null;

  protected async exchange(conn: HubConn, frames: GenFrame[]): Promise<Summary> {
    // everything before was answered before the last barrier: forget it
    conn.inbox.length = 0;
    const from = 0;
    const knownBefore = this.known;
    const inputs = frames.map((f) => this.record('session', f));
    this.h.sending(this.name, inputs);
    const generation = this.h.target.generation;
    for (const f of frames) {
      conn.send(f.data);
      this.sent++;
      this.h.rec.sent.hubFrames++;
      this.h.rec.counts.hubFrames.inc(f.klass.split(':').slice(0, 2).join(':'));
    }
    conn.send(BARRIER);
    this.h.rec.counts.hubControl.inc('barrier');
    const oracle = frames.length === 1 && frames[0]!.expect && !frames[0]!.unchecked ? frames[0]! : null;
    // the barrier's answer and one per heartbeat frame: a late one would pass for the next window's
    const needHeartbeats = 1 + frames.filter((f) => f.expect?.every((o) => o.kind === 'heartbeat')).length;
    await conn.until(() => summarize(conn, from).heartbeats >= needHeartbeats, ANSWER_TIMEOUT_MS);
    const s = summarize(conn, from);
    for (const a of s.acks) if (a > this.known) this.known = a;
    const nodeOk = this.h.target.alive && this.h.target.generation === generation && !this.h.restarting;
    const barrierAnswered = s.heartbeats >= 1;
    if (!barrierAnswered && !conn.closed) {
      if (nodeOk) this.h.rec.violation({ invariant: 'hub-no-answer', surface: 'hub', klass: frames[frames.length - 1]!.klass, detail: `no answer to the barrier heartbeat within ${ANSWER_TIMEOUT_MS} ms (got ${actual(s, false)})`, input: inputs[inputs.length - 1] });
      // a late answer would be taken for the next window's: this socket is done
      conn.terminate();
      await conn.until(() => conn.closed !== null, 2_000);
    }
    if (DEBUG) {
      this.traces.push(`frames [${frames.map((f) => `${f.klass} ${typeof f.data === 'string' ? 'text' : toHex(f.data).slice(0, 60)}`).join(' | ')}] got [${conn.inbox.map((m) => (m.frame ? `t${m.frame.t}${m.frame.t === 10 ? `:${String(m.frame.e)}` : m.frame.t === 6 ? `:${String(m.frame.s)}` : ''}` : 'bad')).join(' ')}]${conn.closed ? ` closed ${conn.closed.code}` : ''}`);
      if (this.traces.length > 4) this.traces.shift();
    }
    if (oracle && nodeOk && !oracle.expect!.some((o) => satisfied(o, s, oracle.seq, knownBefore))) {
      if (DEBUG) process.stderr.write(`ORACLE ${this.name} ${oracle.klass} ${oracle.tag ?? ''} ${oracle.expect!.map(describe).join(' or ')} got ${actual(s, barrierAnswered)}\n  ${this.traces.join('\n  ')}\n`);
      this.h.rec.violation({
        invariant: 'protocol-oracle',
        surface: 'hub',
        klass: oracle.klass,
        detail: `expected ${oracle.expect!.map(describe).join(' or ')}, got ${actual(s, barrierAnswered)}${oracle.seq !== undefined ? ` (s ${oracle.seq}, last acked ${knownBefore})` : ''}`,
        input: inputs[0],
        tag: oracle.tag,
      });
    }
    this.h.done(this.name);
    if (conn.closed) this.onClosed(conn, frames.some((f) => f.overHardCap), inputs);
    return s;
  }

  /** Counts a close and checks its code; the next iteration reconnects. */
  protected onClosed(conn: HubConn, dropExpected: boolean, inputs: InputRecord[] = []): void {
    if (this.conn === conn) this.conn = null;
    const code = conn.closed?.code ?? 0;
    // a socket the fuzzer dropped itself reads 1006: that close is not the server's
    this.h.rec.counts.hubCloses.inc(conn.terminated ? 'dropped by the fuzzer' : code);
    if (CLOSE_CODES.has(code) || conn.terminated) return;
    if (!this.h.target.alive || this.h.restarting) return;
    if (code === 1006 && dropExpected) return;
    const last = inputs[inputs.length - 1];
    this.h.rec.violation({ invariant: 'close-code', surface: 'hub', klass: last?.klass ?? 'close', detail: `the server closed with ${code} (not a CloseCode)${conn.closed?.reason ? ` reason ${conn.closed.reason}` : ''}${inputs.length > 1 ? ` after a window of ${inputs.length} frames` : ''}`, input: last });
  }

  /** An upgrade the server must refuse, with the code it must give. */
  private async hostileUpgrade(): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    const nonce = () => randomBytes(12).toString('base64url');
    const signed = (hubId: string, secret: string, ts: number, n = nonce()): Record<string, string> => ({ 'x-hub-id': hubId, 'x-hub-ts': String(ts), 'x-hub-nonce': n, 'x-hub-signature': signHub(secret, hubId, ts, n) });
    const headerSafe = HOSTILE_STRINGS.filter((s) => /^[\x20-\x7e]*$/.test(s) && s.length > 0 && s.length < 200 && s.trim() === s);
    const variant = this.rng.weighted([
      [3, 'stale-ts'],
      [2, 'future-ts'],
      [3, 'bad-signature'],
      [2, 'unknown-hub'],
      [4, 'hostile-id'],
      [3, 'missing-header'],
      [2, 'bad-nonce'],
      [2, 'bad-ts'],
      [2, 'bad-signature-format'],
      [3, 'nonce-replay'],
      [3, 'query-hostile'],
    ] as const);
    let headers: Record<string, string | null> = {};
    let query: string | undefined;
    let expect: string;
    switch (variant) {
      case 'stale-ts':
      case 'future-ts':
        // a margin beyond the default 300 s skew that a second of delay cannot close
        headers = signed(this.hubId, this.secret, now + (variant === 'stale-ts' ? -1 : 1) * this.rng.pick([330, 10_000, now - 1]));
        expect = 'stale_timestamp';
        break;
      case 'bad-signature': {
        const h = signed(this.hubId, this.secret, now);
        const sig = h['x-hub-signature']!;
        h['x-hub-signature'] = sig.slice(0, -1) + (sig.endsWith('0') ? '1' : '0');
        headers = h;
        expect = 'bad_signature';
        break;
      }
      case 'unknown-hub':
        headers = signed(`fz-unknown-${this.rng.u32()}`, 'not-the-secret', now);
        // told as a bad signature: ids cannot be probed (review "tenant")
        expect = 'bad_signature';
        break;
      case 'hostile-id': {
        const id = this.rng.pick(headerSafe);
        headers = signed(id, this.secret, now);
        expect = isProtocolId(id) ? 'bad_signature' : 'unauthorized';
        break;
      }
      case 'missing-header': {
        const h: Record<string, string | null> = signed(this.hubId, this.secret, now);
        h[this.rng.pick(['x-hub-id', 'x-hub-ts', 'x-hub-nonce', 'x-hub-signature'])] = null;
        headers = h;
        expect = 'unauthorized';
        break;
      }
      case 'bad-nonce': {
        const n = this.rng.pick(['short', 'x'.repeat(65), 'has.dot.in.the.nonce', 'has space in the nonce']);
        headers = signed(this.hubId, this.secret, now, n);
        expect = 'unauthorized';
        break;
      }
      case 'bad-ts': {
        const h: Record<string, string> = signed(this.hubId, this.secret, now);
        h['x-hub-ts'] = this.rng.pick(['abc', '-1', '1e9', '1'.repeat(13), '17000000.5', '0x6553f100']);
        headers = h;
        expect = 'unauthorized';
        break;
      }
      case 'bad-signature-format': {
        const h: Record<string, string> = signed(this.hubId, this.secret, now);
        h['x-hub-signature'] = this.rng.pick(['zz'.repeat(32), 'a'.repeat(63), 'a'.repeat(65), '']);
        headers = h;
        expect = 'unauthorized';
        break;
      }
      case 'nonce-replay':
        if (!this.lastSignedHeaders) return;
        headers = { ...this.lastSignedHeaders };
        expect = 'nonce_reused';
        break;
      case 'query-hostile': {
        const hub = this.rng.pick(['%zz', '%', '%E0%A4%A', '__proto__', 'toString', 'a.b', '%00', encodeSegment(this.rng.pick(HOSTILE_STRINGS))]);
        query = `hub=${hub}&ts=${now}&nonce=${nonce()}&signature=${'a'.repeat(64)}`;
        let decoded: string | null;
        try {
          decoded = new URLSearchParams(query).get('hub');
        } catch {
          decoded = null;
        }
        expect = decoded !== null && isProtocolId(decoded) ? 'bad_signature' : 'unauthorized';
        break;
      }
    }
    const input: InputRecord = { surface: 'hub', klass: `upgrade:${variant}`, at: this.h.rec.now(), hub: this.index, stage: 'upgrade', headers, ...(query !== undefined ? { query } : {}) };
    this.h.sending(this.name, [input]);
    const opened = await HubConn.open({ url: this.h.target.wsUrl, hubId: this.hubId, secret: this.secret, unsigned: true, headers, query });
    this.h.done(this.name);
    this.h.rec.sent.hubConnects++;
    if (!this.h.target.alive || this.h.restarting) return;
    if (opened.kind === 'open') {
      // a cluster node admits after the upgrade (PROTOCOL.md 2.1): error, bye and a close whose reason is the code
      const refusedAfter = await opened.conn.refusalAfterUpgrade(ANSWER_TIMEOUT_MS);
      this.h.rec.counts.hubUpgrades.inc(refusedAfter === null ? '101' : `101 then ${refusedAfter}`);
      if (refusedAfter !== expect) this.h.rec.violation({ invariant: 'upgrade-oracle', surface: 'hub', klass: input.klass, detail: `expected ${expect}, the upgrade succeeded${refusedAfter === null ? '' : ` and was refused with ${refusedAfter}`}`, input });
      await opened.conn.close();
      return;
    }
    if (opened.kind === 'failed') {
      this.h.rec.counts.hubUpgrades.inc('failed');
      this.h.rec.violation({ invariant: 'upgrade-oracle', surface: 'hub', klass: input.klass, detail: `expected ${expect}, got no HTTP answer: ${opened.message}`, input });
      return;
    }
    const code = errorCodeOf(opened.body);
    this.h.rec.counts.hubUpgrades.inc(`${opened.status} ${code ?? '?'}`);
    const problem = checkErrorBody(opened.status, opened.body);
    if (problem) this.h.rec.violation({ invariant: 'error-body', surface: 'hub', klass: input.klass, detail: `upgrade refusal: ${problem}`, input });
    else if (serverFault(code)) this.h.rec.violation({ invariant: 'no-internal-error', surface: 'hub', klass: input.klass, detail: `upgrade refused with ${String(code)}: ${opened.body.slice(0, 200)}`, input });
    else if (code !== expect) this.h.rec.violation({ invariant: 'upgrade-oracle', surface: 'hub', klass: input.klass, detail: `expected ${expect}, got ${opened.status} ${code}`, input });
  }
}

/**
 * The growing hub: only valid reports of ever-new devices (some named `toString`, `valueOf`, ...),
 * one per window; each must be acknowledged, and at the end the node's shadow must hold every
 * attribute it acknowledged.
 */
class GrowSlot extends Slot {
  /** device → attributes as acknowledged, for the shadow check */
  private model = new Map<string, Record<string, unknown>>();
  private modelGeneration = 0;

  constructor(h: Harness, index: number, rng: Rng, vectors: Vectors, budget: number) {
    super(h, index, rng, vectors, budget, 1);
  }

  protected override async setup(): Promise<void> {
    await super.setup();
    this.model = new Map();
    this.uncertain = new Set();
    this.unacked = 0;
    this.modelGeneration = this.generation;
  }

  protected override async connect(): Promise<void> {
    const opened = await HubConn.open({ url: this.h.target.wsUrl, hubId: this.hubId, secret: this.secret });
    this.h.rec.sent.hubConnects++;
    if (opened.kind !== 'open') {
      if (this.h.target.alive && !this.h.restarting) this.h.rec.violation({ invariant: 'valid-upgrade', surface: 'hub', klass: 'upgrade:grow', detail: `refused: ${opened.kind === 'refused' ? `${opened.status} ${opened.body.slice(0, 200)}` : opened.message}` });
      return;
    }
    const conn = opened.conn;
    this.watch(conn);
    this.conn = conn;
    conn.send(pack(new MpMap([['t', 1], ['v', 1], ['b', `grow-${this.rng.u32()}`]])));
    this.h.rec.counts.hubControl.inc('hello');
    await conn.until(() => conn.inbox.some((m) => m.frame?.t === 2), ANSWER_TIMEOUT_MS);
    const welcome = conn.inbox.find((m) => m.frame?.t === 2)?.frame;
    if (!welcome) {
      conn.terminate();
      await conn.until(() => conn.closed !== null, 2_000);
      this.onClosed(conn, false);
      return;
    }
    this.max = welcome.max as number;
    this.known = welcome.s as number;
  }

  /** devices of frames that were not acknowledged: the server may have applied them in part */
  private uncertain = new Set<string>();
  private unacked = 0;

  protected override async step(): Promise<void> {
    const f = this.gen.grow({ max: this.max, known: this.known });
    const s = await this.exchange(this.conn!, [f]);
    const acked = f.seq !== undefined && s.acks.includes(f.seq) && s.errors.length === 0;
    if (!acked) this.unacked++;
    for (const id of Object.keys(f.devices)) {
      if (acked) this.model.set(id, { ...this.model.get(id), ...f.devices[id] });
      else this.uncertain.add(id);
    }
  }

  /** The node's shadow of the growing hub holds every attribute it acknowledged. */
  async checkShadow(): Promise<void> {
    if (this.model.size === 0 || this.modelGeneration !== this.h.target.generation || !this.h.target.alive) return;
    const res = await this.h.api('GET', `/v1/hubs/${this.hubId}/shadow`, { token: this.h.target.adminToken, timeoutMs: 60_000 });
    const devices = (res.json as { devices?: Record<string, { reported?: Record<string, unknown> }> } | null)?.devices;
    if (res.status !== 200 || !devices) {
      this.h.rec.violation({ invariant: 'shadow', surface: 'hub', klass: 'grow', detail: `GET shadow of the growing hub answered ${res.status} ${res.text.slice(0, 200)}` });
      return;
    }
    let missing = 0;
    const partial = Object.keys(devices).filter((id) => this.uncertain.has(id) && !this.model.has(id));
    if (partial.length > 0) {
      this.h.rec.violation({
        invariant: 'frame-atomicity',
        surface: 'hub',
        klass: 'grow',
        detail: `${this.unacked} reports were not acknowledged, yet ${partial.length} devices that only they carried are in the shadow (e.g. ${JSON.stringify(partial.slice(0, 3))}): a refused frame was applied in part`,
      });
    }
    for (const [id, attrs] of this.model) {
      if (this.uncertain.has(id)) continue;
      const reported = Object.hasOwn(devices, id) ? devices[id]?.reported : undefined;
      for (const [k, v] of Object.entries(attrs)) {
        if (reported && Object.hasOwn(reported, k) && reported[k] === v) continue;
        if (++missing <= 20) {
          this.h.rec.violation({
            invariant: 'shadow',
            surface: 'hub',
            klass: `grow:${id.startsWith('g') ? 'device' : id}`,
            detail: `device ${JSON.stringify(id)} attribute ${JSON.stringify(k)}: acknowledged ${JSON.stringify(v)}, the shadow has ${reported ? JSON.stringify(reported[k]) : 'no such device'}`,
          });
        }
      }
    }
    this.h.rec.notes.push(`growing hub: ${this.model.size} devices acknowledged, ${Object.keys(devices).length} in its shadow, ${missing} attributes missing or different`);
  }
}
