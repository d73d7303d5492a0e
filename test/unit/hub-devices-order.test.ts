/**
 * Cluster mode (`stateAfterEvents`): a report's shadow write waits for its events to be durable, so
 * a device list right after it must wait its turn too. Until 2026-12-06 the list was written at once
 * and the report's late write put a device that had left back in the shadow (a race review).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType } from '../../proto/frames.js';
import { HubSession, type HubSessionDeps } from '../../src/actors/hub-session.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { decodeHubFrame, encodeValue } from '../../src/protocol/codec.js';
import { eventually } from '../helpers/eventually.js';
import { RecordingLink } from '../helpers/recording-link.js';
import { hubSessionDeps } from '../helpers/hub-session-deps.js';

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));
const settle = () => new Promise((r) => setImmediate(r));

function session(overrides: Partial<HubSessionDeps>) {
  const wheel = new TimerWheel();
  wheels.push(wheel);
  let settleEvents: () => void = () => {};
  let durable = Promise.resolve();
  const hold = () => (durable = new Promise<void>((r) => (settleEvents = r)));
  const deps = hubSessionDeps(wheel, { eventsDurable: () => durable, ...overrides });
  const link = new RecordingLink();
  const s = new HubSession('hub-1', 'home-1', link, deps);
  return { deps, link, hold, settle: () => settleEvents(), frame: (f: object) => s.receiveFrame(decodeHubFrame(encodeValue(f))) };
}

describe('a device that leaves right after a report (cluster mode)', () => {
  it('stays gone: the report is written before the list that removes it', async () => {
    const { deps, link, hold, settle: settleEvents, frame } = session({ stateAfterEvents: true });
    frame({ t: FrameType.hello, v: 1, b: 'boot' });
    await eventually(AbortSignal.timeout(10_000), 'online', async () => (link.frames.some((f) => f.t === FrameType.welcome) ? true : undefined));
    frame({ t: FrameType.devices, s: 0, f: true, j: [{ d: 'plug', k: 'switch' }, { d: 'door', k: 'sensor.door' }] });
    frame({ t: FrameType.report, s: 1, r: { plug: { on: true }, door: { open: false } } });
    await eventually(AbortSignal.timeout(10_000), 'acked 1', async () => (link.acks().includes(1) ? true : undefined));
    // the home's history is slow for a moment (a Redis round trip under load)
    hold();
    frame({ t: FrameType.report, s: 2, r: { plug: { on: false } } });
    frame({ t: FrameType.devices, s: 3, l: ['plug'] }); // the plug is unpaired
    for (let i = 0; i < 5; i++) await settle();
    await deps.shadows.flush();
    settleEvents();
    await eventually(AbortSignal.timeout(10_000), 'acked 3', async () => (link.acks().includes(3) ? true : undefined));
    await deps.shadows.flush();
    const stored = await deps.shadows.load('hub-1');
    expect(link.acks().slice(-2)).toEqual([2, 3]);
    expect(Object.keys(stored)).toEqual(['door']);
  });
});
