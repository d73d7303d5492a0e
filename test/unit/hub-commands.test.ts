import { afterEach, describe, expect, it } from 'vitest';
import { FrameType, type ServerToHubFrame } from '../../proto/frames.js';
import { HubCommands, type CommandHost } from '../../src/actors/hub-commands.js';
import { encode } from '../../src/protocol/codec.js';
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
  const host: CommandHost = {
    hubId: 'hub-1',
    deps: { system: { timers, log: createLogger('silent'), mailboxSize: 64 }, maxFrameBytes: 16 * 1024, limits: { devices: 8, attrsPerDevice: 8, valueBytes: 64, shadowBytes: 4096, commandsInFlight } },
    send: (f: ServerToHubFrame) => (sent.push(f), true),
    onTimer: () => undefined,
  } as unknown as CommandHost;
  return { commands: new HubCommands(host), sent };
}

describe('HubCommands', () => {
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
    const answers: Uint8Array[] = [];
    const request = { subject: 'x', data: encodeCommandRequest({ d: 'dev-1', m: 'set', p: {}, to: 1000 }), respond: (b: Uint8Array) => (answers.push(b), true) } as unknown as BusMessage;
    commands.forward(request, { mayCommand: () => true });
    expect(answers.map((a) => decodeCommandReply(a))).toMatchObject([{ ok: false, e: 'busy' }]);
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
