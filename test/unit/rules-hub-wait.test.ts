import { describe, expect, it } from 'vitest';
import type { CommandSender } from '../../src/actors/commands.js';
import { CommandError, TierError } from '../../src/errors.js';
import { HubWait } from '../../src/rules/hub-wait.js';
import { sendCommand } from '../../src/actors/commands.js';
import { encodeCommandReply } from '../../src/actors/command-wire.js';
import { MemoryBus } from '../../src/ports/bus/bus-memory.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { createLogger } from '../../src/log/logger.js';
import type { CommandReply } from '../../proto/subjects.js';

/** A sender whose hub comes online at its `online`-th try; counts the tries. */
function hubAway(online: number, other?: Error): { send: CommandSender; tries: () => number } {
  let tries = 0;
  const send: CommandSender = async () => {
    tries++;
    if (other) throw other;
    if (tries < online) throw new CommandError('hub_offline', 'hub h is not connected');
    return { done: true };
  };
  return { send, tries: () => tries };
}

describe('HubWait: rules\' commands wait for an offline hub', () => {
  it('asks again while the hub is offline and returns its answer once it is connected', async () => {
    const away = hubAway(3);
    const wait = new HubWait(away.send, 30_000);
    await expect(wait.sender('h', 'd', { set: { on: true } }, 5_000)).resolves.toEqual({ done: true });
    expect(away.tries()).toBe(3);
  });

  it('fails hub_offline once the wait is spent, and at once with a wait of 0', async () => {
    const away = hubAway(Infinity);
    await expect(new HubWait(away.send, 300).sender('h', 'd', { set: {} }, 5_000)).rejects.toMatchObject({ code: 'hub_offline' });
    expect(away.tries()).toBeGreaterThan(1);
    const never = hubAway(Infinity);
    await expect(new HubWait(never.send, 0).sender('h', 'd', { set: {} }, 5_000)).rejects.toMatchObject({ code: 'hub_offline' });
    expect(never.tries()).toBe(1);
  });

  it('does not ask again for any other failure (a timeout: the hub may have run it)', async () => {
    const timedOut = hubAway(1, new CommandError('command_timeout', 'no answer'));
    await expect(new HubWait(timedOut.send, 30_000).sender('h', 'd', { set: {} }, 5_000)).rejects.toMatchObject({ code: 'command_timeout' });
    expect(timedOut.tries()).toBe(1);
  });

  it('asks again after a session_closed that says the command was not sent, or that a drain moved the hub away unanswered; not after a plain one (the hub dropped: it may have run)', async () => {
    const closed = (options: { unsent?: boolean; hubMoving?: boolean }) => {
      let tries = 0;
      const send: CommandSender = async () => {
        if (++tries === 1) throw new CommandError('session_closed', 'closed', options);
        return { done: true };
      };
      return { send, tries: () => tries };
    };
    for (const options of [{ unsent: true }, { hubMoving: true }]) {
      const hub = closed(options);
      await expect(new HubWait(hub.send, 30_000).sender('h', 'd', { set: {} }, 5_000)).resolves.toEqual({ done: true });
      expect(hub.tries()).toBe(2);
    }
    const dropped = closed({});
    await expect(new HubWait(dropped.send, 30_000).sender('h', 'd', { set: {} }, 5_000)).rejects.toMatchObject({ code: 'session_closed' });
    expect(dropped.tries()).toBe(1);
  });

  it("reads the flags off the bus reply as a session sends them: `ns` and `mv` asked again, a plain session_closed not", async () => {
    const tries = async (first: CommandReply) => {
      const timers = new TimerWheel();
      const bus = new MemoryBus(timers, createLogger('silent'));
      let n = 0;
      bus.subscribe('hub.h.cmd', (msg) => void msg.respond(encodeCommandReply(++n === 1 ? first : { ok: true, r: { done: true } })));
      const wait = new HubWait((hub, device, spec, timeoutMs) => sendCommand(bus, hub, device, spec, timeoutMs), 30_000);
      const outcome = await wait.sender('h', 'd', { set: {} }, 5_000).catch((err: unknown) => err);
      await bus.close();
      timers.close();
      return { n, outcome };
    };
    expect(await tries({ ok: false, e: 'session_closed', msg: 'closing', ns: true })).toEqual({ n: 2, outcome: { done: true } });
    expect(await tries({ ok: false, e: 'session_closed', msg: 'moved', mv: true })).toEqual({ n: 2, outcome: { done: true } });
    expect(await tries({ ok: false, e: 'session_closed', msg: 'dropped' })).toMatchObject({ n: 1, outcome: { code: 'session_closed' } });
  });

  it('close ends every wait at once, so a draining node is not held', async () => {
    const away = hubAway(Infinity);
    const wait = new HubWait(away.send, 600_000);
    const pending = wait.sender('h', 'd', { set: {} }, 5_000);
    await expect.poll(away.tries).toBe(1);
    wait.close();
    await expect(pending).rejects.toMatchObject({ code: 'hub_offline' });
    expect(away.tries()).toBe(1);
  });

  it('re-checks before each try after the first: a failing recheck ends the wait with its error, nothing more is sent', async () => {
    const away = hubAway(3);
    let checks = 0;
    const moved = async () => {
      checks++;
      throw new TierError('forbidden', 'hub h is not in home home1');
    };
    await expect(new HubWait(away.send, 30_000).sender('h', 'd', { set: {} }, 5_000, undefined, undefined, moved)).rejects.toMatchObject({ code: 'forbidden' });
    // the hub came online at the 3rd try, but the 2nd was never sent: the check ran before it
    expect(away.tries()).toBe(1);
    expect(checks).toBe(1);
  });
});
