/**
 * An acknowledgement means stored, also around frames refused for now (PROTOCOL.md §3: `busy`,
 * `rate_limited`, resend it). Two ways it did not (a review, 2026-12-06):
 * - reports merged in a full mailbox were refused whole when together they broke a limit that
 *   each alone did not, and the ack of the last covered the first, never stored;
 * - a session's first sequenced frame may skip ahead of the welcome's `s`; when that first frame
 *   was refused for now and the next passed, the next skipped it, its ack covered the refused
 *   one, and the hub's resend was taken for a duplicate.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType } from '../../proto/frames.js';
import { HubSession, type HubSessionDeps } from '../../src/actors/hub-session.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { decodeHubFrame, encodeValue } from '../../src/protocol/codec.js';
import { eventually } from '../helpers/eventually.js';
import { RecordingLink } from '../helpers/recording-link.js';
import { hubSessionDeps } from '../helpers/hub-session-deps.js';
import { GatedDirectory } from '../helpers/gated-directory.js';

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));
const settle = () => new Promise((r) => setImmediate(r));

function session(overrides: Partial<HubSessionDeps> = {}) {
  const wheel = new TimerWheel();
  wheels.push(wheel);
  const deps = hubSessionDeps(wheel, overrides);
  const link = new RecordingLink();
  const s = new HubSession('hub-1', 'home-1', link, deps);
  return { deps, link, frame: (f: object) => s.receiveFrame(decodeHubFrame(encodeValue(f))) };
}

const attrs = (prefix: string, n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, i]));

describe('frames refused for now, then resent', () => {
  it('reports merged in a full mailbox that break a limit together are refused busy from the first, unacknowledged; resent one by one, the first is stored', async () => {
    const directory = new GatedDirectory();
    directory.hold();
    const { deps, link, frame } = session({ directory });
    frame({ t: FrameType.hello, v: 1, b: 'boot' });
    for (let s = 1; s <= 3; s++) frame({ t: FrameType.report, s, r: { f: { n: s } } });
    // 40 attributes each on device x: 80 together, past the 64 a device may have
    frame({ t: FrameType.report, s: 4, r: { x: attrs('a', 40) } });
    frame({ t: FrameType.report, s: 5, r: { x: attrs('b', 40) } });
    directory.open();
    await eventually(AbortSignal.timeout(10_000), 'the merged reports answered', async () => (link.errors().length > 0 ? true : undefined));
    await settle();
    expect(link.errors()).toEqual([expect.objectContaining({ e: 'busy', ref: 4, tmp: true })]);
    expect(Math.max(...link.acks())).toBe(3);
    // the hub resends from 4, as told
    frame({ t: FrameType.report, s: 4, r: { x: attrs('a', 40) } });
    frame({ t: FrameType.report, s: 5, r: { x: attrs('b', 40) } });
    await eventually(AbortSignal.timeout(10_000), 'the ack of 5', async () => (link.acks().includes(5) ? true : undefined));
    expect(link.errors().at(-1)).toMatchObject({ e: 'limit_exceeded', ref: 5 });
    const shadow = await deps.shadows.load('hub-1');
    expect(Object.keys(shadow.x?.reported ?? {})).toHaveLength(40);
  });

  it('a first frame refused rate_limited is not skipped by the next: that one is told sequence_gap, and the resend is stored', async () => {
    // three tokens, one more every 50 ms (and three refusals before the session is closed)
    const { deps, link, frame } = session({ ratePerSec: 20, rateBurst: 3 });
    frame({ t: FrameType.hello, v: 1, b: 'boot' });
    await eventually(AbortSignal.timeout(10_000), 'the welcome', async () => (link.frames.some((f) => f.t === FrameType.welcome) ? true : undefined));
    // heartbeats beyond one a second spend the budget
    for (let i = 0; i < 4; i++) frame({ t: FrameType.heartbeat });
    frame({ t: FrameType.report, s: 1, r: { lamp: { on: true } } });
    expect(link.errors().at(-1)).toMatchObject({ e: 'rate_limited', ref: 1 });
    await new Promise((r) => setTimeout(r, 120));
    frame({ t: FrameType.report, s: 2, r: { meter: { kwh: 42 } } });
    await eventually(AbortSignal.timeout(10_000), 'the answer to 2', async () => (link.errors().some((e) => e.e === 'sequence_gap') ? true : undefined));
    expect(link.errors().at(-1)).toMatchObject({ e: 'sequence_gap', ref: 1 });
    expect(link.acks()).toEqual([]);
    for (const [s, r] of [[1, { lamp: { on: true } }], [2, { meter: { kwh: 42 } }]] as const) {
      await new Promise((resolve) => setTimeout(resolve, 120));
      frame({ t: FrameType.report, s, r });
    }
    await eventually(AbortSignal.timeout(10_000), 'the ack of 2', async () => (link.acks().includes(2) ? true : undefined));
    expect(Object.keys(await deps.shadows.load('hub-1')).sort()).toEqual(['lamp', 'meter']);
  });
});
