import { afterEach, describe, expect, it } from 'vitest';
import { FrameType, type CommandFrame, type ServerToHubFrame } from '../../proto/frames.js';
import { decodeCommandReply } from '../../src/actors/command-wire.js';
import { publishDesired } from '../../src/actors/commands.js';
import { HubSession, type HubLink, type HubSessionDeps } from '../../src/actors/hub-session.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { TierError } from '../../src/errors.js';
import type { Attrs } from '../../proto/frames.js';
import { decodeHubFrame, decodeServerFrame, encodeValue } from '../../src/protocol/codec.js';
import { hubSessionDeps } from '../helpers/hub-session-deps.js';

/**
 * What a hub session's full mailbox (4 messages here) does with each kind of message it cannot
 * queue: nothing the session owes is lost (src/actors/hub-overflow.ts).
 */

class RecordingLink implements HubLink {
  readonly frames: ServerToHubFrame[] = [];
  closed: { code: number; reason: string } | null = null;
  send(bytes: Uint8Array): boolean {
    if (this.closed) return false;
    this.frames.push(decodeServerFrame(bytes));
    return true;
  }
  close(code: number, reason: string): void {
    this.closed ??= { code, reason };
  }
  sets(): Array<{ d: string; p: unknown }> {
    return this.frames.filter((f): f is CommandFrame => f.t === FrameType.command && f.m === 'set').map((f) => ({ d: f.d, p: f.p }));
  }
}

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));
const settle = () => new Promise((r) => setImmediate(r));

/**
 * An online session whose mailbox is full: a device list waits for its write (until `release`)
 * and four events queue behind it.
 */
async function fullSession(overrides: Partial<HubSessionDeps> = {}) {
  const wheel = new TimerWheel();
  wheels.push(wheel);
  const deps = hubSessionDeps(wheel, overrides);
  const link = new RecordingLink();
  const session = new HubSession('hub-1', 'home-1', link, deps);
  const frame = (f: object) => session.receiveFrame(decodeHubFrame(encodeValue(f)));
  frame({ t: FrameType.hello, v: 1, b: 'boot' });
  await settle();
  expect(link.frames[0]?.t).toBe(FrameType.welcome);
  const writeDevices = deps.shadows.writeDevices.bind(deps.shadows);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  deps.shadows.writeDevices = async (...args) => {
    await held;
    return writeDevices(...args);
  };
  /** The device list (sequence number `from`) waits for its write, four events queue behind it. */
  const fill = async (from = 1) => {
    frame({ t: FrameType.devices, s: from, f: true, j: [{ d: 'thermostat', k: 'climate' }, { d: 'lamp', k: 'switch' }] });
    for (let s = from + 1; s <= from + 4; s++) frame({ t: FrameType.event, s, d: 'lamp', e: 'press' });
    await settle();
    expect(session.queued).toBe(4);
  };
  /** What `PUT …/desired` does: stores the patch, then tells the session holding the hub. */
  const setDesired = async (deviceId: string, patch: Attrs) => {
    const device = await deps.shadows.setDesired('hub-1', deviceId, patch);
    publishDesired(deps.bus, 'hub-1', deviceId, device);
  };
  const drain = async () => {
    release();
    for (let i = 0; i < 4; i++) await settle();
  };
  return { deps, link, session, frame, fill, setDesired, drain };
}

describe('a hub session whose mailbox is full', () => {
  it('sends a desired change to the hub once the mailbox drains: the stored state, newest only, one mark however many changes', async () => {
    const { link, session, fill, setDesired, drain } = await fullSession();
    await fill();
    await setDesired('thermostat', { target: 20 });
    await setDesired('thermostat', { target: 21 });
    await setDesired('lamp', { on: true });
    // one mark queued past the bound for the three changes: no growth per change
    expect(session.queued).toBe(5);
    expect(link.sets()).toEqual([]);
    await drain();
    expect(session.queued).toBe(0);
    expect(link.sets()).toEqual([
      { d: 'thermostat', p: { target: 21 } },
      { d: 'lamp', p: { on: true } },
    ]);
    // a change after the drain goes as before, and the read-back left the cache's versions right
    await setDesired('thermostat', { target: 22 });
    expect(link.sets().at(-1)).toEqual({ d: 'thermostat', p: { target: 22 } });
    expect(link.sets().length).toBe(3);
  });

  it('sends nothing the hub has: a change it was sent before the mark is read, a value its device reports already', async () => {
    const { link, frame, fill, setDesired, drain } = await fullSession();
    await setDesired('thermostat', { target: 20 }); // the mailbox is free: sent at once
    expect(link.sets()).toEqual([{ d: 'thermostat', p: { target: 20 } }]);
    frame({ t: FrameType.report, s: 1, r: { lamp: { on: true } } });
    await settle();
    await fill(2);
    await setDesired('lamp', { on: true });
    await drain();
    expect(link.sets()).toEqual([{ d: 'thermostat', p: { target: 20 } }]);
  });

  it('closes the session with a reconnect hint when the store cannot be read back: the next welcome carries the change', async () => {
    const { deps, link, fill, setDesired, drain } = await fullSession();
    await fill();
    await setDesired('thermostat', { target: 21 });
    deps.shadows.load = () => Promise.reject(new TierError('unavailable', 'store away'));
    await drain();
    expect(link.frames.find((f) => f.t === FrameType.reconnect)).toMatchObject({ e: 'unavailable' });
    expect(link.closed).toEqual({ code: 1011, reason: 'unavailable' });
    expect(link.sets()).toEqual([]);
  });

  it('answers a command at once `busy`, and queues the hub\'s result of a waiting command once: its caller gets the result, not a timeout', async () => {
    const { deps, link, session, frame, fill, drain } = await fullSession();
    let answer: unknown;
    void deps.bus.request('hub.hub-1.cmd', encodeValue({ d: 'lamp', m: 'identify', p: {}, to: 60_000 }), 61_000).then((r) => (answer = decodeCommandReply(r)));
    await settle();
    const command = link.frames.find((f): f is CommandFrame => f.t === FrameType.command);
    expect(command).toMatchObject({ d: 'lamp', m: 'identify' });
    await fill();
    // a caller's command finds the mailbox full: answered busy at once
    const refused = decodeCommandReply(await deps.bus.request('hub.hub-1.cmd', encodeValue({ d: 'lamp', m: 'identify', p: {}, to: 60_000 }), 61_000));
    expect(refused).toMatchObject({ ok: false, e: 'busy' });
    frame({ t: FrameType.result, id: command!.id, ok: true, r: 'blinked' });
    expect(session.queued).toBe(5);
    // the same answer again is refused busy: one queued per command, bounded by the commands in flight
    frame({ t: FrameType.result, id: command!.id, ok: true, r: 'blinked' });
    expect(session.queued).toBe(5);
    expect(link.frames.filter((f) => f.t === FrameType.error && f.e === 'busy').length).toBe(1);
    await drain();
    expect(answer).toEqual({ ok: true, r: 'blinked' });
  });

  it('answers every heartbeat, after the acks of the frames before it: a heartbeat is a barrier (§4), never refused busy; folded at the tail, the queue grows by one', async () => {
    const { link, session, frame, fill, drain } = await fullSession();
    await fill();
    frame({ t: FrameType.heartbeat });
    expect(session.queued).toBe(5);
    // heartbeats right behind it fold into it: no growth per heartbeat, an answer each
    frame({ t: FrameType.heartbeat, ts: 1_700_000_000_000 });
    frame({ t: FrameType.heartbeat });
    expect(session.queued).toBe(5);
    // a frame the full mailbox refuses, then one more heartbeat: still folded (nothing was queued between)
    frame({ t: FrameType.event, s: 6, d: 'lamp', e: 'press' });
    frame({ t: FrameType.heartbeat });
    expect(session.queued).toBe(5);
    expect(link.frames.filter((f) => f.t === FrameType.error)).toMatchObject([{ e: 'busy', ref: 6 }]);
    expect(link.frames.filter((f) => f.t === FrameType.heartbeat)).toEqual([]);
    await drain();
    const after = link.frames.slice(1).filter((f) => f.t !== FrameType.error);
    // the acks of all five queued frames come first, then one answer per heartbeat
    expect(after.map((f) => f.t)).toEqual([...Array(after.length - 4).fill(FrameType.ack), FrameType.heartbeat, FrameType.heartbeat, FrameType.heartbeat, FrameType.heartbeat]);
    expect(after.filter((f) => f.t === FrameType.ack).at(-1)).toEqual({ t: FrameType.ack, s: 5 });
  });

  it('queues a heartbeat behind another message past the bound, so the answers keep the order of the frames', async () => {
    const { deps, link, session, frame, fill, drain } = await fullSession();
    void deps.bus.request('hub.hub-1.cmd', encodeValue({ d: 'lamp', m: 'identify', p: {}, to: 60_000 }), 61_000);
    await settle();
    const command = link.frames.find((f): f is CommandFrame => f.t === FrameType.command);
    await fill();
    frame({ t: FrameType.heartbeat });
    frame({ t: FrameType.result, id: command!.id, ok: true });
    frame({ t: FrameType.heartbeat });
    expect(session.queued).toBe(7);
    await drain();
    expect(link.frames.filter((f) => f.t === FrameType.heartbeat).length).toBe(2);
    expect(link.frames.filter((f) => f.t === FrameType.error)).toEqual([]);
  });

  it("queues the hub's error frame refusing a waiting command, once: its caller hears the refusal, not a timeout", async () => {
    const { deps, link, session, frame, fill, drain } = await fullSession();
    let answer: unknown;
    void deps.bus.request('hub.hub-1.cmd', encodeValue({ d: 'lamp', m: 'identify', p: {}, to: 60_000 }), 61_000).then((r) => (answer = decodeCommandReply(r)));
    await settle();
    const command = link.frames.find((f): f is CommandFrame => f.t === FrameType.command);
    await fill();
    frame({ t: FrameType.error, c: 103, e: 'invalid_field', tmp: false, ref: command!.id });
    expect(session.queued).toBe(5);
    frame({ t: FrameType.error, c: 103, e: 'invalid_field', tmp: false, ref: command!.id });
    expect(session.queued).toBe(5);
    await drain();
    expect(answer).toMatchObject({ ok: false, e: 'command_failed', hub: 'invalid_field' });
  });

  it('counts every frame the hub sent in tier_hub_frames_in_total: heartbeats folded into one, reports absorbed into one', async () => {
    const counted = new Map<number, number>();
    const metrics = { frameIn: (t: number, n = 1) => counted.set(t, (counted.get(t) ?? 0) + n), frameOut: () => {}, commandDone: () => {}, sessionClosed: () => {} };
    const { link, session, frame, drain } = await fullSession({ metrics });
    // the device list waits for its write; reports 2–5 fill the mailbox, report 6 is absorbed into report 5
    frame({ t: FrameType.devices, s: 1, f: true, j: [{ d: 'lamp', k: 'switch' }] });
    for (let s = 2; s <= 6; s++) frame({ t: FrameType.report, s, r: { lamp: { on: s % 2 === 0 } } });
    await settle();
    // one heartbeat queued past the bound, two more folded into it
    for (let i = 0; i < 3; i++) frame({ t: FrameType.heartbeat });
    expect(session.queued).toBe(5);
    await drain();
    expect(link.frames.filter((f) => f.t === FrameType.heartbeat).length).toBe(3);
    expect(link.frames.filter((f) => f.t === FrameType.error)).toEqual([]);
    expect(counted.get(FrameType.report)).toBe(5);
    expect(counted.get(FrameType.heartbeat)).toBe(3);
    expect(counted.get(FrameType.devices)).toBe(1);
  });
});
