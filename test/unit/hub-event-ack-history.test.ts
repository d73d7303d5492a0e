/**
 * A device event is acknowledged only once the history holding it is stored (hub-reports.ts): a lone
 * event, with no report ahead of it whose ack waits anyway (the only case tested until a mutation
 * review of 2026-12-06; the kill -9 test does not see the window of a millisecond or two).
 */
import { afterEach, expect, it } from 'vitest';
import { FrameType } from '../../proto/frames.js';
import { HubSession } from '../../src/actors/hub-session.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { decodeHubFrame, encodeValue } from '../../src/protocol/codec.js';
import { eventually } from '../helpers/eventually.js';
import { RecordingLink } from '../helpers/recording-link.js';
import { hubSessionDeps } from '../helpers/hub-session-deps.js';

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));
const settle = () => new Promise((r) => setImmediate(r));

it('a lone device event is not acknowledged before its history write is durable', async () => {
  const wheel = new TimerWheel();
  wheels.push(wheel);
  let settleEvents: () => void = () => {};
  let durable = Promise.resolve();
  const deps = hubSessionDeps(wheel, { eventsDurable: () => durable, publishEvent: () => {} });
  const link = new RecordingLink();
  const s = new HubSession('hub-1', 'home-1', link, deps);
  const frame = (f: object) => s.receiveFrame(decodeHubFrame(encodeValue(f)));
  frame({ t: FrameType.hello, v: 1, b: 'boot' });
  await eventually(AbortSignal.timeout(10_000), 'online', async () => (link.frames.some((f) => f.t === FrameType.welcome) ? true : undefined));
  durable = new Promise<void>((r) => (settleEvents = r));
  frame({ t: FrameType.event, s: 1, d: 'door', e: 'tamper' });
  for (let i = 0; i < 10; i++) await settle();
  await deps.shadows.flush();
  expect(link.acks()).toEqual([]);
  settleEvents();
  await eventually(AbortSignal.timeout(10_000), 'acked', async () => (link.acks().includes(1) ? true : undefined));
});
