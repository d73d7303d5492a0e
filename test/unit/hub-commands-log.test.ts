/**
 * The "command outcome" line of failed commands is sampled per error code: a flood of `busy`
 * answers (one home's rules had sent 200,000 commands from one event) is not written line by line.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { decodeCommandReply, encodeCommandRequest } from '../../src/actors/command-wire.js';
import { HubCommands, type CommandHost } from '../../src/actors/hub-commands.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { createLogger } from '../../src/log/logger.js';
import type { BusMessage } from '../../src/ports/bus/bus.js';

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));

describe('command outcome lines of failures', () => {
  it('are logged 10 per error code and window, every caller still answered', () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger('info', {}, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
    const timers = new TimerWheel({ now: () => 0 });
    wheels.push(timers);
    const host = {
      hubId: 'hub-1',
      state: 'online' as CommandHost['state'],
      deps: { system: { timers, log, mailboxSize: 64 }, maxFrameBytes: 16 * 1024, limits: { devices: 8, attrsPerDevice: 8, valueBytes: 64, shadowBytes: 4096, commandsInFlight: 1 } },
      sendEncoded: () => true,
      onTimer: () => {},
    };
    const commands = new HubCommands(host as unknown as CommandHost);
    const answers: Uint8Array[] = [];
    const send = (d: string) => {
      const message = { subject: 'hub.hub-1.cmd', data: encodeCommandRequest({ d, m: 'set', p: { on: true }, to: 1000 }), respond: (b: Uint8Array) => (answers.push(b), true) } as unknown as BusMessage;
      commands.forward(message, { mayCommand: (device) => device !== 'nope' });
    };
    // the one command the hub may have pending, then 100 answered busy, then 3 for a device it lacks
    send('lamp');
    for (let i = 0; i < 100; i++) send('lamp');
    for (let i = 0; i < 3; i++) send('nope');
    const codes = answers.map((a) => {
      const reply = decodeCommandReply(a);
      return reply.ok ? 'ok' : reply.e;
    });
    expect(codes.filter((c) => c === 'busy')).toHaveLength(100);
    expect(codes.filter((c) => c === 'unknown_device')).toHaveLength(3);
    const outcomes = lines.filter((l) => l.msg === 'command outcome');
    expect(outcomes.filter((l) => l.code === 'busy')).toHaveLength(10);
    // another code has its own share
    expect(outcomes.filter((l) => l.code === 'unknown_device')).toHaveLength(3);
  });
});
