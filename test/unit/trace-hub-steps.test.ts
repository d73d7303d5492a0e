/**
 * A hub session's reports and the rules they may trigger: with tracing on, the step that publishes
 * such an event is a span handed on with it (active while it is published); with tracing off the
 * session passes nothing more and asks nothing more than before.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AppEventMessage } from '../../proto/app.js';
import { HubSession, type HubMessage, type HubSessionDeps } from '../../src/actors/hub-session.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { decodeHubFrame, decodeServerFrame, encodeValue } from '../../src/protocol/codec.js';
import { encodeCommandRequest } from '../../src/actors/command-wire.js';
import { subjects } from '../../proto/subjects.js';
import type { ServerToHubFrame } from '../../proto/frames.js';
import { traceFields } from '../../src/trace/active-span.js';
import type { Span } from '../../src/trace/tracing.js';
import { hubSessionDeps } from '../helpers/hub-session-deps.js';
import { startTracingForTest } from '../helpers/tracing-on.js';

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));

interface Published {
  event: AppEventMessage;
  args: number;
  /** the session's epoch, handed on with every event */
  epoch: number;
  parent: Span | undefined;
  activeTrace: string | undefined;
}

/** An online session whose published events (with what came along) and mailbox messages are recorded. */
async function online(overrides: Partial<HubSessionDeps>) {
  const wheel = new TimerWheel();
  wheels.push(wheel);
  const published: Published[] = [];
  const asked: string[] = [];
  const listen = overrides.rulesListen;
  const deps = hubSessionDeps(wheel, {
    publishEvent: (...args: [AppEventMessage, number, Span?]) => published.push({ event: args[0], args: args.length, epoch: args[1], parent: args[2], activeTrace: traceFields().traceId }),
    ...overrides,
    ...(listen ? { rulesListen: (e: AppEventMessage) => (asked.push(e.kind), listen(e)) } : {}),
  });
  const sent: ServerToHubFrame[] = [];
  const session = new HubSession('hub-1', 'home-1', { send: (b) => (sent.push(decodeServerFrame(b)), true), close: () => {} }, deps);
  const told: HubMessage[] = [];
  const tell = session.tell.bind(session);
  vi.spyOn(session, 'tell').mockImplementation((m) => (told.push(m), tell(m)));
  const frame = (f: object) => session.receiveFrame(decodeHubFrame(encodeValue(f)));
  frame({ t: 1, v: 1, b: 'boot' });
  await new Promise((r) => setImmediate(r));
  return { deps, frame, sent, published: () => published.filter((p) => p.event.kind !== 'online'), asked, told };
}

describe('hub session steps and the rules (tracing)', () => {
  it('off: events are published with no parent and nothing asked; mailbox messages carry no queue time', async () => {
    const { frame, published, asked, told } = await online({ rulesListen: () => true });
    frame({ t: 4, s: 1, r: { d1: { n: 1 }, d2: { n: 2 } } });
    frame({ t: 5, s: 2, d: 'd1', e: 'press' });
    expect(published().map((p) => [p.event.kind, p.args, p.activeTrace])).toEqual([
      ['state', 2, undefined],
      ['state', 2, undefined],
      ['event', 2, undefined],
    ]);
    expect(published().every((p) => p.epoch === 1)).toBe(true); // the session's (the first claim of the hub)
    expect(asked).toEqual([]);
    expect(told.every((m) => !('queued' in m))).toBe(true);
  });

  it('on: the events rules listen to go out inside one step span per frame, handed on and active; the others alone', async () => {
    const { stop } = await startTracingForTest();
    try {
      const { frame, published, told } = await online({ rulesListen: (e) => e.kind === 'state' && e.device !== 'quiet' });
      frame({ t: 4, s: 1, r: { d1: { n: 1 }, quiet: { n: 0 }, d2: { n: 2 } } });
      frame({ t: 5, s: 2, d: 'd1', e: 'press' });
      const [d1, quiet, d2, press] = published();
      expect(d1!.parent).toBeDefined();
      // one step for the frame: both of its events hang from it, and it was active while they left
      expect(d2!.parent).toBe(d1!.parent);
      expect(d1!.activeTrace).toBe(d1!.parent!.spanContext().traceId);
      expect([quiet!.args, quiet!.activeTrace]).toEqual([2, undefined]);
      expect([press!.event.kind, press!.args]).toEqual(['event', 2]);
      expect(told.filter((m) => m.type === 'frame').every((m) => typeof m.queued === 'number')).toBe(true);
    } finally {
      await stop();
    }
  });

  it("on: a command from the bus is an actor step, child of the caller's traceparent, with the hub round trip its child", async () => {
    const { spans, stop } = await startTracingForTest();
    try {
      const { deps, frame, sent } = await online({});
      const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      const answer = deps.bus.request(subjects.hubCommand('hub-1'), encodeCommandRequest({ d: 'lamp', m: 'set', p: { on: true }, to: 5_000, tp }), 6_000);
      const command = sent.find((f) => f.t === 7) as { id: number } | undefined;
      expect(command).toBeDefined();
      // the step ended when the command frame was sent; the round trip ends with the hub's answer
      expect(spans.getFinishedSpans().map((s) => s.name)).toEqual(['actor step']);
      frame({ t: 8, id: command!.id, ok: true, r: { on: true } });
      await answer;
      const [step, trip] = spans.getFinishedSpans();
      expect(step!.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
      expect(step!.spanContext().traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
      expect(step!.attributes).toMatchObject({ 'hubtier.actor': 'hub', 'hubtier.message': 'command', 'hubtier.hub_id': 'hub-1' });
      expect(step!.attributes['hubtier.mailbox_wait_us']).toBeTypeOf('number');
      expect([trip!.name, trip!.parentSpanContext?.spanId, trip!.attributes['hubtier.outcome']]).toEqual(['hub command', step!.spanContext().spanId, 'ok']);
    } finally {
      await stop();
    }
  });
});
