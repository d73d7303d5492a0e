import { afterEach, describe, expect, it, vi } from 'vitest';
import { setClusterClockOffset } from '../../src/actors/cluster-clock.js';
import { FrameType, type CommandFrame, type ServerToHubFrame } from '../../proto/frames.js';
import { HubCommands, type CommandHost } from '../../src/actors/hub-commands.js';
import { decodeServerFrame, encode } from '../../src/protocol/codec.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { createLogger } from '../../src/log/logger.js';
import type { BusMessage } from '../../src/ports/bus/bus.js';
import { decodeCommandReply, encodeCommandRequest } from '../../src/actors/command-wire.js';
import { TierError } from '../../src/errors.js';

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));

function table(commandsInFlight: number) {
  let clock = 0;
  const timers = new TimerWheel({ now: () => clock });
  wheels.push(timers);
  const sent: ServerToHubFrame[] = [];
  /** the byte length of each frame sent, in order */
  const sizes: number[] = [];
  const host = {
    hubId: 'hub-1',
    state: 'online' as CommandHost['state'],
    deps: { system: { timers, log: createLogger('silent'), mailboxSize: 64 }, maxFrameBytes: 16 * 1024, limits: { devices: 8, attrsPerDevice: 8, valueBytes: 64, shadowBytes: 4096, commandsInFlight } },
    sendEncoded: (_t: number, bytes: Uint8Array) => (sent.push(decodeServerFrame(bytes)), sizes.push(bytes.length), true),
    // as the session does: a command id's timer expires it
    onTimer: (tag: number) => commands.expire(tag),
  };
  const commands = new HubCommands(host as unknown as CommandHost);
  /** moves the wheel's clock on by `ms`, firing what is due */
  const elapse = (ms: number) => {
    clock += ms;
    timers.advance();
  };
  return { commands, sent, sizes, host, timers, elapse };
}

/** The commands among `sent`, from the `from`th on. */
function commandsIn(sent: ServerToHubFrame[], from = 0): CommandFrame[] {
  return sent.slice(from).filter((f): f is CommandFrame => f.t === FrameType.command);
}

/**
 * Answers every command sent from the `from`th frame on, and those sent as earlier ones are
 * answered, until none is left; each was awaited when answered (its result free of the rate budget).
 */
function answerAll(commands: HubCommands, sent: ServerToHubFrame[], from = 0): void {
  for (let i = from; i < sent.length; i++) {
    const f = sent[i]!;
    if (f.t !== FrameType.command) continue;
    expect(commands.awaits(f.id)).toBe(true);
    commands.result({ t: FrameType.result, id: f.id, ok: true });
  }
}

/** A command request as the bus delivers it, and the answers it gets. */
function request(d: string, m: string, p: Record<string, unknown>, dl?: number) {
  const answers: Uint8Array[] = [];
  const message = { subject: 'hub.hub-1.cmd', data: encodeCommandRequest({ d, m, p, to: 1000, ...(dl === undefined ? {} : { dl }) }), respond: (b: Uint8Array) => (answers.push(b), true) } as unknown as BusMessage;
  return { message, answers: () => answers.map((a) => decodeCommandReply(a)) };
}

describe('HubCommands', () => {
  it('a command the socket refuses is answered session_closed with `ns` (never sent: safe to send again); one pending at the close, without it (`mv` when the drain moved the hub)', () => {
    const { commands, host } = table(4);
    const devices = { mayCommand: () => true };
    host.sendEncoded = () => false;
    const refused = request('lamp', 'set', { on: true });
    commands.forward(refused.message, devices);
    expect(refused.answers()).toEqual([{ ok: false, e: 'session_closed', msg: 'the hub socket refused the frame', ns: true }]);
    host.sendEncoded = () => true;
    const [dropped, moved] = [request('lamp', 'set', { on: false }), request('fan', 'set', { on: false })];
    commands.forward(dropped.message, devices);
    commands.closeAll();
    expect(dropped.answers()).toEqual([{ ok: false, e: 'session_closed', msg: 'the hub disconnected before answering' }]);
    const again = new HubCommands(host as unknown as CommandHost);
    again.forward(moved.message, devices);
    again.closeAll(true);
    expect(moved.answers()).toEqual([{ ok: false, e: 'session_closed', msg: 'the node moved the hub away before it answered', mv: true }]);
  });

  it("a caller's command whose frame would pass the hub's max is answered frame_too_large and not sent, set or method; one within it goes", () => {
    const { commands, sent, sizes } = table(4);
    const devices = { mayCommand: () => true };
    const big = request('lamp', 'set', Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`attribute-${i}`, 'x'.repeat(1_000)])));
    commands.forward(big.message, devices);
    const huge = request('panel', 'show', { lines: Array.from({ length: 2_000 }, () => 0.1) });
    commands.forward(huge.message, devices);
    expect(big.answers()).toMatchObject([{ ok: false, e: 'frame_too_large', msg: expect.stringContaining('over its max of 16384') }]);
    expect(huge.answers()).toMatchObject([{ ok: false, e: 'frame_too_large' }]);
    expect(sent).toEqual([]);
    expect(commands.waiting).toBe(0);
    const small = request('lamp', 'set', { on: true });
    commands.forward(small.message, devices);
    expect(sent).toMatchObject([{ t: FrameType.command, d: 'lamp', m: 'set', p: { on: true } }]);
    expect(sizes.every((n) => n <= 16 * 1024)).toBe(true);
    expect(commands.waiting).toBe(1);
  });

  it("a command that reaches the node after its caller's deadline is answered command_timeout and not sent; one before it gives the hub only the time left (review \"commands\")", () => {
    const { commands, sent } = table(4);
    const devices = { mayCommand: () => true };
    const late = request('door', 'open', {}, Date.now() - 3_000);
    commands.forward(late.message, devices);
    expect(late.answers()).toMatchObject([{ ok: false, e: 'command_timeout', msg: expect.stringMatching(/after its caller's deadline: not sent/), ns: true }]);
    expect(sent).toEqual([]);
    expect(commands.waiting).toBe(0);
    const soon = request('door', 'open', {}, Date.now() + 300);
    commands.forward(soon.message, devices);
    const [frame] = commandsIn(sent);
    expect(frame!.to).toBeGreaterThan(0);
    expect(frame!.to).toBeLessThanOrEqual(300);
    // a deadline beyond `to` (a caller's clock behind) leaves `to` as it is; none (an older node) too
    const far = request('door', 'open', {}, Date.now() + 60_000);
    commands.forward(far.message, devices);
    const older = request('door', 'open', {});
    commands.forward(older.message, devices);
    expect(commandsIn(sent).slice(1).map((f) => f.to)).toEqual([1000, 1000]);
  });

  it("judges the deadline on the cluster's clock: a holding node whose own clock runs 5 s ahead, its offset to Redis's read, still sends the command with the time left (review diff18)", () => {
    const { commands, sent } = table(4);
    const real = Date.now();
    // the caller's deadline on the cluster's clock (its own clock right): 300 ms from now
    const cmd = request('door', 'open', {}, real + 300);
    const ahead = vi.spyOn(Date, 'now').mockReturnValue(real + 5_000);
    setClusterClockOffset(-5_000);
    try {
      commands.forward(cmd.message, { mayCommand: () => true });
    } finally {
      setClusterClockOffset(0);
      ahead.mockRestore();
    }
    expect(cmd.answers()).toEqual([]);
    const [frame] = commandsIn(sent);
    expect(frame!.to).toBeGreaterThan(0);
    expect(frame!.to).toBeLessThanOrEqual(300);
  });

  it("a result the gateway refused fails its command command_failed with hubCode invalid_result: the hub may have acted (review \"commands\")", () => {
    const { commands, sent } = table(4);
    const lock = request('lock', 'set', { locked: true });
    commands.forward(lock.message, { mayCommand: () => true });
    const [frame] = commandsIn(sent);
    commands.refused(frame!.id, new TierError('invalid_field', 'r: must be a map', { field: 'r' }));
    expect(lock.answers()).toMatchObject([{ ok: false, e: 'command_failed', hub: 'invalid_result', msg: expect.stringMatching(/may have acted.*r: must be a map/) }]);
  });

  it("a command that reaches the node past the API edges yet would break PROTOCOL.md §1's limits is answered invalid_field naming the field and not sent", () => {
    const { commands, sent } = table(4);
    const devices = { mayCommand: () => true };
    const long = request('lamp', 'bulk', { data: 'x'.repeat(5_000) });
    commands.forward(long.message, devices);
    const named = request('lamp', 'bulk', { nested: { ['k'.repeat(100)]: 1 } });
    commands.forward(named.message, devices);
    expect(long.answers()).toMatchObject([{ ok: false, e: 'invalid_field', msg: expect.stringContaining('params.data') }]);
    expect(named.answers()).toMatchObject([{ ok: false, e: 'invalid_field', msg: expect.stringContaining(`params.nested.${'k'.repeat(100)}`) }]);
    expect(sent).toEqual([]);
    expect(commands.waiting).toBe(0);
    const within = request('lamp', 'bulk', { data: 'x'.repeat(1_024), ['k'.repeat(64)]: [1] });
    commands.forward(within.message, devices);
    expect(sent).toMatchObject([{ t: FrameType.command, m: 'bulk' }]);
  });

  it("an error frame of the hub naming a waiting command ends it as a failed result would; one naming none is left alone", () => {
    const { commands, sent } = table(4);
    const devices = { mayCommand: () => true };
    const refused = request('lamp', 'bulk', { data: 'x' });
    commands.forward(refused.message, devices);
    const gone = request('lamp', 'find', {});
    commands.forward(gone.message, devices);
    const [first, second] = sent.map((f) => (f.t === FrameType.command ? f.id : -1));
    expect(commands.hubRefused({ t: FrameType.error, c: 103, e: 'invalid_field', tmp: false, ref: first!, f: 'p.data', msg: 'string over 1024' })).toBe(true);
    expect(commands.hubRefused({ t: FrameType.error, c: 404, e: 'unknown_device', tmp: false, ref: second! })).toBe(true);
    expect(refused.answers()).toEqual([{ ok: false, e: 'command_failed', msg: 'string over 1024', hub: 'invalid_field' }]);
    expect(gone.answers()).toEqual([{ ok: false, e: 'unknown_device', msg: 'the hub answered unknown_device', hub: 'unknown_device' }]);
    expect(commands.waiting).toBe(0);
    // answered already, never sent, or no ref: nothing to end
    expect(commands.hubRefused({ t: FrameType.error, c: 103, e: 'invalid_field', tmp: false, ref: first! })).toBe(false);
    expect(commands.hubRefused({ t: FrameType.error, c: 103, e: 'invalid_field', tmp: false, ref: 999 })).toBe(false);
    expect(commands.hubRefused({ t: FrameType.error, c: 500, e: 'internal', tmp: true })).toBe(false);
    expect(refused.answers()).toHaveLength(1);
    // the hub's word that it is only busy travels with the failure
    const busy = request('lamp', 'set', { on: true });
    commands.forward(busy.message, devices);
    const third = sent.at(-1)!;
    expect(commands.hubRefused({ t: FrameType.error, c: 503, e: 'busy', tmp: true, ref: third.t === FrameType.command ? third.id : -1 })).toBe(true);
    expect(busy.answers()).toEqual([{ ok: false, e: 'command_failed', msg: 'the hub answered busy', hub: 'busy', tmp: true }]);
  });

  it("a session's command ids start at random, so a result a hub carries over from an earlier session (whose ids began at 1 too) names none of them", () => {
    const devices = { mayCommand: () => true };
    const first = [0, 1, 2].map(() => {
      const { commands, sent } = table(4);
      commands.forward(request('lamp', 'set', { on: true }).message, devices);
      return (sent[0] as { id: number }).id;
    });
    expect(first.every((id) => Number.isInteger(id) && id >= 1 && id <= 0x40000000)).toBe(true);
    // three sessions starting at the same id: one chance in 2^60
    expect(new Set(first).size).toBeGreaterThan(1);
    const { commands } = table(4);
    commands.forward(request('lamp', 'set', { on: true }).message, devices);
    expect(commands.awaits(1)).toBe(false);
  });

  it('a command with an empty parameter name, at any depth, is answered invalid_field naming the field and not sent (§1: names are never empty)', () => {
    const { commands, sent } = table(4);
    const devices = { mayCommand: () => true };
    const top = request('lamp', 'bulk', { '': 1 });
    commands.forward(top.message, devices);
    const nested = request('lamp', 'bulk', { list: [{ '': 1 }] });
    commands.forward(nested.message, devices);
    expect(top.answers()).toMatchObject([{ ok: false, e: 'invalid_field', msg: expect.stringContaining('params.:') }]);
    expect(nested.answers()).toMatchObject([{ ok: false, e: 'invalid_field', msg: expect.stringContaining('params.list[0].:') }]);
    expect(sent).toEqual([]);
  });

  it('a desired delta larger than a frame goes as several sets, each within max bytes, together the whole delta', () => {
    const { commands, sent } = table(4);
    const delta = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`attribute-${i}`, 'x'.repeat(1_024)]));
    commands.own('lamp', delta, 75_000);
    answerAll(commands, sent);
    expect(sent.length).toBeGreaterThan(4);
    const got = {};
    for (const f of sent) {
      if (f.t !== FrameType.command) throw new Error('not a command');
      expect(encode(f).length).toBeLessThanOrEqual(16 * 1024);
      expect(f).toMatchObject({ d: 'lamp', m: 'set' });
      Object.assign(got, f.p);
    }
    expect(got).toEqual(delta);
  });

  it("desired deltas are all tracked: at most half the hub's limit in flight, the next sent as one is answered or times out, a caller's command still finds room", () => {
    const { commands, sent, elapse } = table(4);
    for (let i = 0; i < 50; i++) commands.own(`dev-${i}`, { on: i % 2 === 0 }, 75_000);
    expect(commandsIn(sent).map((f) => f.d)).toEqual(['dev-0', 'dev-1']);
    expect(commands.waiting).toBe(2);
    // a caller's command is not held behind them, nor refused busy
    const caller = request('dev-1', 'set', { on: true });
    commands.forward(caller.message, { mayCommand: () => true });
    expect(caller.answers()).toEqual([]);
    expect(commands.waiting).toBe(3);
    const [first, , callerCmd] = commandsIn(sent);
    commands.result({ t: FrameType.result, id: callerCmd!.id, ok: true });
    expect(caller.answers()).toMatchObject([{ ok: true }]);
    // an answer frees a place for the next delta; so does a timeout (dev-1's, sent a second before dev-2)
    elapse(1_000);
    commands.result({ t: FrameType.result, id: first!.id, ok: true });
    expect(commandsIn(sent, 3).map((f) => f.d)).toEqual(['dev-2']);
    elapse(74_000);
    expect(commandsIn(sent, 4).map((f) => f.d)).toEqual(['dev-3']);
    expect(commands.waiting).toBe(2);
    // the hub answers every command it gets: each was waited for, and every delta went out once
    answerAll(commands, sent, 3);
    const deltas = commandsIn(sent).filter((f) => f !== callerCmd);
    expect(deltas.map((f) => f.d)).toEqual(Array.from({ length: 50 }, (_, i) => `dev-${i}`));
    expect(new Set(deltas.map((f) => f.id)).size).toBe(50);
    expect(commands.waiting).toBe(0);
  });

  it("own deltas fill at most half the table: a caller's command meets the hub's limit as before, busy once the table is full", () => {
    const { commands, sent } = table(4);
    for (let i = 0; i < 10; i++) commands.own(`dev-${i}`, { on: true }, 75_000);
    const callers = [0, 1, 2].map((i) => request(`dev-${i}`, 'set', { on: false }));
    for (const c of callers) commands.forward(c.message, { mayCommand: () => true });
    expect(callers.map((c) => c.answers())).toMatchObject([[], [], [{ ok: false, e: 'busy' }]]);
    expect(commands.waiting).toBe(4);
    // a caller's command answered leaves room a held delta may not take past its half
    const callerCmd = commandsIn(sent).find((f) => f.p.on === false)!;
    commands.result({ t: FrameType.result, id: callerCmd.id, ok: true });
    expect(commandsIn(sent)).toHaveLength(4);
    expect(commands.waiting).toBe(3);
  });

  it("a later delta of a device still held merges into it: one set, the later value of an attribute winning, after the device's earlier sets", () => {
    const { commands, sent } = table(2); // one own command in flight
    commands.own('lamp', { on: true, level: 10 }, 75_000);
    commands.own('plug', { on: true }, 75_000);
    commands.own('plug', { on: false, w: 3 }, 75_000);
    commands.own('lamp', { level: 70 }, 75_000);
    answerAll(commands, sent);
    expect(commandsIn(sent).map((f) => ({ d: f.d, p: f.p }))).toEqual([
      { d: 'lamp', p: { on: true, level: 10 } },
      { d: 'plug', p: { on: false, w: 3 } },
      { d: 'lamp', p: { level: 70 } },
    ]);
  });

  it('held deltas go to no session that is closing, and closing drops them, leaving no timer', () => {
    const { commands, sent, host, timers, elapse } = table(4);
    for (let i = 0; i < 10; i++) commands.own(`dev-${i}`, { on: true }, 75_000);
    elapse(1_000);
    commands.result({ t: FrameType.result, id: commandsIn(sent)[0]!.id, ok: true });
    expect(commandsIn(sent).map((f) => f.d)).toEqual(['dev-0', 'dev-1', 'dev-2']);
    host.state = 'draining';
    // dev-1 times out, and a change comes: nothing goes to a closing socket
    elapse(74_000);
    commands.own('dev-x', { on: true }, 75_000);
    expect(commandsIn(sent)).toHaveLength(3);
    expect(commands.waiting).toBe(1);
    commands.closeAll();
    expect(timers.size).toBe(0);
    // nothing is left to send, whatever comes after
    host.state = 'online';
    elapse(75_000);
    commands.result({ t: FrameType.result, id: commandsIn(sent)[2]!.id, ok: true });
    expect(commandsIn(sent)).toHaveLength(3);
  });

  it('a socket that refuses a delta drops the held ones: nothing more is tried on it', () => {
    const { commands, sent, host } = table(4);
    let open = true;
    const send = host.sendEncoded;
    host.sendEncoded = (t: number, bytes: Uint8Array) => open && send(t, bytes);
    commands.own('dev-0', { on: true }, 75_000);
    open = false;
    for (let i = 1; i < 10; i++) commands.own(`dev-${i}`, { on: true }, 75_000);
    open = true;
    commands.result({ t: FrameType.result, id: commandsIn(sent)[0]!.id, ok: true });
    expect(commandsIn(sent).map((f) => f.d)).toEqual(['dev-0']);
    expect(commands.waiting).toBe(0);
  });
});
