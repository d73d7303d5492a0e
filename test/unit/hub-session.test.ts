import { afterEach, describe, expect, it } from 'vitest';
import { HubSession, type HubLink, type HubSessionDeps } from '../../src/actors/hub-session.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { MemoryBus } from '../../src/cluster/bus-memory.js';
import { MemoryDirectory } from '../../src/cluster/directory-memory.js';
import type { Directory, HubLocation } from '../../src/cluster/directory.js';
import { MemoryShadowStore } from '../../src/cluster/shadow-store-memory.js';
import { createLogger } from '../../src/log/logger.js';
import { decodeServerFrame, encode, decodeHubFrame } from '../../src/protocol/codec.js';
import type { ServerToHubFrame } from '../../proto/frames.js';

/** Records what the session sends and how it closes the socket. */
class RecordingLink implements HubLink {
  readonly frames: ServerToHubFrame[] = [];
  closed: { code: number; reason: string } | null = null;
  session: HubSession | null = null;
  send(bytes: Uint8Array): boolean {
    if (this.closed) return false;
    this.frames.push(decodeServerFrame(bytes));
    return true;
  }
  close(code: number, reason: string): void {
    this.closed = { code, reason };
    this.session?.tell({ type: 'closed', code });
  }
}

/** A directory whose claims wait until the test lets them through. */
class GatedDirectory extends MemoryDirectory {
  private gate: Promise<void> = Promise.resolve();
  open: () => void = () => {};
  hold(): void {
    this.gate = new Promise((r) => (this.open = r));
  }
  override async claim(hubId: string, node: string): Promise<HubLocation> {
    await this.gate;
    return super.claim(hubId, node);
  }
}

const timers: TimerWheel[] = [];
afterEach(() => timers.splice(0).forEach((t) => t.close()));

function setup(overrides: Partial<HubSessionDeps> = {}, directory: Directory = new MemoryDirectory()) {
  const wheel = new TimerWheel();
  timers.push(wheel);
  const log = createLogger('silent');
  const shadows = new MemoryShadowStore();
  const deps: HubSessionDeps = {
    system: { timers: wheel, log, mailboxSize: 4 },
    bus: new MemoryBus(wheel, log),
    directory,
    shadows,
    nodeId: 'n1',
    heartbeatMs: 30_000,
    idleMs: 75_000,
    helloTimeoutMs: 10_000,
    maxFrameBytes: 16_384,
    ratePerSec: 1_000,
    rateBurst: 1_000,
    publishEvent: () => {},
    sessions: new Map(),
    ...overrides,
  };
  const link = new RecordingLink();
  const session = new HubSession('hub-1', 'home-1', link, deps);
  link.session = session;
  const frame = (f: object) => session.receiveFrame(decodeHubFrame(encode(f)));
  return { deps, link, session, shadows, frame };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('HubSession', () => {
  it('coalesces reports that overflow the mailbox during an async step, without a sequence gap', async () => {
    const directory = new GatedDirectory();
    directory.hold();
    const { link, shadows, frame } = setup({}, directory);
    frame({ t: 1, v: 1, b: 'boot' });
    for (let s = 1; s <= 12; s++) frame({ t: 4, s, r: { d1: { n: s, [`k${s}`]: true } } });
    directory.open();
    await settle();
    await settle();
    const errors = link.frames.filter((f) => f.t === 10);
    expect(errors).toEqual([]);
    const acks = link.frames.filter((f) => f.t === 6).map((f) => (f as { s: number }).s);
    expect(acks.at(-1)).toBe(12);
    const shadow = await shadows.load('hub-1');
    expect(shadow.d1!.reported.n).toBe(12);
    // every report's own attribute arrived, also those merged into a queued report
    for (let s = 1; s <= 12; s++) expect(shadow.d1!.reported[`k${s}`]).toBe(true);
  });

  it('refuses frames past the rate with rate_limited and closes only after more refusals than the burst', async () => {
    const { link, frame } = setup({ ratePerSec: 1, rateBurst: 3 });
    frame({ t: 1, v: 1, b: 'boot' });
    await settle();
    for (let s = 1; s <= 6; s++) frame({ t: 4, s, r: { d1: { n: s } } });
    const limited = link.frames.filter((f) => f.t === 10 && f.e === 'rate_limited');
    // hello took one token of three: two reports pass, four are refused, the fourth refusal exceeds the burst
    expect(limited.length).toBe(3);
    expect(link.closed).toEqual({ code: 4004, reason: 'rate_limited' });
  });

  it('closes a stale holder that missed the takeover message when its idle check sees another holder', async () => {
    const directory = new MemoryDirectory();
    const { link, frame } = setup({ idleMs: 200 }, directory);
    frame({ t: 1, v: 1, b: 'boot' });
    await settle();
    expect(link.frames[0]).toMatchObject({ t: 2, ep: 1 });
    await directory.refreshNode('n2');
    await directory.claim('hub-1', 'n2'); // no takeover published: as if the message were lost
    while (!link.closed) {
      frame({ t: 3 }); // heartbeats keep it from idling out
      await new Promise((r) => setTimeout(r, 40));
    }
    expect(link.closed).toEqual({ code: 4000, reason: 'session_taken_over' });
  });

  it('refuses the session with a temporary internal error when the directory is unreachable', async () => {
    const directory = new MemoryDirectory();
    directory.claim = () => Promise.reject(new Error('ECONNREFUSED'));
    const { link, frame } = setup({}, directory);
    frame({ t: 1, v: 1, b: 'boot' });
    await settle();
    expect(link.frames[0]).toMatchObject({ t: 10, e: 'internal', tmp: true });
    expect(link.closed).toEqual({ code: 1011, reason: 'internal' });
  });

  it('answers a frame before hello with hello_required and closes', async () => {
    const { link, frame } = setup();
    frame({ t: 4, s: 1, r: { d1: { n: 1 } } });
    await settle();
    expect(link.frames[0]).toMatchObject({ t: 10, e: 'hello_required' });
    expect(link.closed?.reason).toBe('hello_required');
  });
});
