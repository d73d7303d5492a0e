import { afterEach, describe, expect, it } from 'vitest';
import { FrameType, type ServerToHubFrame } from '../../proto/frames.js';
import { HubCommands, type CommandHost } from '../../src/actors/hub-commands.js';
import { decodeServerFrame, encode } from '../../src/protocol/codec.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { createLogger } from '../../src/log/logger.js';
import type { BusMessage } from '../../src/ports/bus/bus.js';
import { decodeCommandReply, encodeCommandRequest } from '../../src/actors/command-wire.js';

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));

function table(commandsInFlight: number) {
  const timers = new TimerWheel();
  wheels.push(timers);
  const sent: ServerToHubFrame[] = [];
  /** the byte length of each frame sent, in order */
  const sizes: number[] = [];
  const host: CommandHost = {
    hubId: 'hub-1',
    deps: { system: { timers, log: createLogger('silent'), mailboxSize: 64 }, maxFrameBytes: 16 * 1024, limits: { devices: 8, attrsPerDevice: 8, valueBytes: 64, shadowBytes: 4096, commandsInFlight } },
    sendEncoded: (_t: number, bytes: Uint8Array) => (sent.push(decodeServerFrame(bytes)), sizes.push(bytes.length), true),
    onTimer: () => undefined,
  } as unknown as CommandHost;
  return { commands: new HubCommands(host), sent, sizes };
}

/** A command request as the bus delivers it, and the answers it gets. */
function request(d: string, m: string, p: Record<string, unknown>) {
  const answers: Uint8Array[] = [];
  const message = { subject: 'hub.hub-1.cmd', data: encodeCommandRequest({ d, m, p, to: 1000 }), respond: (b: Uint8Array) => (answers.push(b), true) } as unknown as BusMessage;
  return { message, answers: () => answers.map((a) => decodeCommandReply(a)) };
}

describe('HubCommands', () => {
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
    commands.own('lamp', 'set', delta, 75_000);
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

  it("desired deltas go to the hub whatever is pending, but never hold the table past the hub's limit", () => {
    const { commands, sent } = table(4);
    for (let i = 0; i < 50; i++) commands.own(`dev-${i}`, 'set', { on: i % 2 === 0 }, 75_000);
    expect(sent).toHaveLength(50);
    expect(new Set(sent.map((f) => (f.t === FrameType.command ? f.id : -1))).size).toBe(50);
    expect(commands.waiting).toBe(4);
    // a caller's command meets the limit as before: busy at once
    const caller = request('dev-1', 'set', {});
    commands.forward(caller.message, { mayCommand: () => true });
    expect(caller.answers()).toMatchObject([{ ok: false, e: 'busy' }]);
    // an answer to an untracked delta is dropped; one to a tracked one frees its place
    const first = sent[0]!;
    const last = sent[49]!;
    if (first.t !== FrameType.command || last.t !== FrameType.command) throw new Error('not commands');
    commands.result({ t: FrameType.result, id: last.id, ok: true });
    expect(commands.waiting).toBe(4);
    commands.result({ t: FrameType.result, id: first.id, ok: true });
    expect(commands.waiting).toBe(3);
  });
});
