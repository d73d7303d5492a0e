import { afterEach, describe, expect, it } from 'vitest';
import { FrameType, type ServerToHubFrame } from '../../proto/frames.js';
import { HubSession, type HubLink, type HubSessionDeps } from '../../src/actors/hub-session.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { MemoryDirectory } from '../../src/ports/directory/directory-memory.js';
import type { CursorListener, DeviceShadow, SeqCursor } from '../../src/ports/shadow-store/shadow-store.js';
import { MemoryShadowStore } from '../../src/ports/shadow-store/shadow-store-memory.js';
import { createLogger } from '../../src/log/logger.js';
import { hubSessionDeps } from '../helpers/hub-session-deps.js';
import { decodeHubFrame, decodeServerFrame, encodeValue } from '../../src/protocol/codec.js';

/**
 * A store that holds every cursor write until `release()`, as a batched backend does until its
 * batch is written; it records the epoch of every write.
 */
class HeldShadowStore extends MemoryShadowStore {
  private held: Array<() => void> = [];
  readonly epochs: number[] = [];
  override writeReported(hubId: string, deviceId: string, device: DeviceShadow, epoch?: number): void {
    this.epochs.push(epoch ?? 0);
    super.writeReported(hubId, deviceId, device, epoch);
  }
  override writeCursor(hubId: string, cursor: SeqCursor, epoch?: number, stored?: CursorListener): void {
    this.epochs.push(epoch ?? 0);
    this.held.push(() => super.writeCursor(hubId, cursor, epoch, stored));
  }
  release(): void {
    const held = this.held;
    this.held = [];
    for (const write of held) write();
  }
}

class RecordingLink implements HubLink {
  readonly frames: ServerToHubFrame[] = [];
  send(bytes: Uint8Array): boolean {
    this.frames.push(decodeServerFrame(bytes));
    return true;
  }
  closedWith: { code: number; reason: string } | null = null;
  close(code: number, reason: string): void {
    this.closedWith ??= { code, reason };
  }
  acks(): number[] {
    return this.frames.flatMap((f) => (f.t === FrameType.ack ? [f.s] : []));
  }
}

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));
const settle = () => new Promise((r) => setImmediate(r));

async function online(limits?: HubSessionDeps['limits']) {
  const wheel = new TimerWheel();
  wheels.push(wheel);
  const log = createLogger('silent');
  const shadows = new HeldShadowStore();
  const directory = new MemoryDirectory();
  await directory.claim('hub-1', 'n0'); // an earlier session: this one gets epoch 2
  const link = new RecordingLink();
  const session = new HubSession(
    'hub-1',
    'home-1',
    link,
    hubSessionDeps(wheel, { system: { timers: wheel, log, mailboxSize: 64 }, directory, shadows, ...(limits ? { limits } : {}) }),
  );
  const frame = (f: object) => session.receiveFrame(decodeHubFrame(encodeValue(f)));
  frame({ t: 1, v: 1, b: 'boot' });
  await settle();
  expect(session.state).toBe('online');
  return { session, link, shadows, frame };
}

describe('HubSession acknowledges only what is stored', () => {
  it('no ack until the store has the frame; then one cumulative ack for everything stored', async () => {
    const { link, shadows, frame } = await online();
    frame({ t: 4, s: 1, r: { lamp: { on: true } } });
    frame({ t: 4, s: 2, r: { lamp: { on: false } } });
    frame({ t: 5, s: 3, d: 'btn', e: 'press' });
    await settle();
    expect(link.acks()).toEqual([]);
    shadows.release();
    expect(link.acks()).toEqual([1, 2, 3]);
    expect(await shadows.loadCursor('hub-1')).toEqual({ boot: 'boot', seq: 3, tag: expect.stringMatching(/^[\w-]{8}$/) });
  });

  it('a heartbeat is answered after the acks of the frames before it: answers keep the order of frames', async () => {
    const { link, shadows, frame } = await online();
    frame({ t: 3 }); // nothing pending: answered at once
    frame({ t: 4, s: 1, r: { lamp: { on: true } } });
    frame({ t: 3 });
    await settle();
    const kinds = () => link.frames.filter((f) => f.t === FrameType.ack || f.t === FrameType.heartbeat).map((f) => (f.t === FrameType.ack ? `ack ${f.s}` : 'heartbeat'));
    expect(kinds()).toEqual(['heartbeat']);
    shadows.release();
    expect(kinds()).toEqual(['heartbeat', 'ack 1', 'heartbeat']);
  });

  it('two heartbeats behind a pending ack get two answers, both after the ack', async () => {
    const { link, shadows, frame } = await online();
    frame({ t: 4, s: 1, r: { lamp: { on: true } } });
    frame({ t: 3 });
    frame({ t: 3 });
    await settle();
    const kinds = () => link.frames.filter((f) => f.t === FrameType.ack || f.t === FrameType.heartbeat).map((f) => (f.t === FrameType.ack ? `ack ${f.s}` : 'heartbeat'));
    expect(kinds()).toEqual([]);
    shadows.release();
    expect(kinds()).toEqual(['ack 1', 'heartbeat', 'heartbeat']);
  });

  it('a resent frame is acked at once when stored, and not before when its write is still pending', async () => {
    const { link, shadows, frame } = await online();
    frame({ t: 4, s: 1, r: { lamp: { on: true } } });
    await settle();
    shadows.release();
    frame({ t: 4, s: 1, r: { lamp: { on: true } } }); // stored: acked again at once
    await settle();
    expect(link.acks()).toEqual([1, 1]);
    frame({ t: 4, s: 2, r: { lamp: { on: false } } });
    frame({ t: 4, s: 2, r: { lamp: { on: false } } }); // its write is pending: no early ack
    await settle();
    expect(link.acks()).toEqual([1, 1]);
    shadows.release();
    expect(link.acks()).toEqual([1, 1, 2]);
  });

  it('every write carries the session epoch from the directory claim', async () => {
    const { session, shadows, frame } = await online();
    frame({ t: 4, s: 1, r: { lamp: { on: true }, plug: { w: 3 } } });
    await settle();
    expect(session.epoch).toBe(2);
    expect(shadows.epochs).toEqual([2, 2, 2]);
  });

  it('a report over a limit is refused whole, nothing stored, its number consumed and acked once stored', async () => {
    const { link, shadows, frame } = await online({ devices: 2, attrsPerDevice: 4, valueBytes: 16, shadowBytes: 1024, desiredBytes: 1024, commandsInFlight: 4 });
    frame({ t: 4, s: 1, r: { a: { n: 1 }, b: { n: 1 } } });
    frame({ t: 4, s: 2, r: { a: { n: 2 }, c: { n: 1 } } });
    frame({ t: 4, s: 3, r: { a: { n: 3 } } });
    await settle();
    shadows.release();
    expect(link.frames.find((f) => f.t === FrameType.error)).toMatchObject({ e: 'limit_exceeded', ref: 2, f: 'r.c' });
    expect(link.acks()).toEqual([1, 2, 3]);
    const shadow = await shadows.load('hub-1');
    expect(Object.keys(shadow).sort()).toEqual(['a', 'b']);
    expect(shadow.a!.reported).toEqual({ n: 3 });
  });

  it('a first report with s: 0 in a new boot is applied, not taken for a duplicate', async () => {
    const { link, shadows, frame } = await online();
    frame({ t: 4, s: 0, r: { lamp: { on: true } } });
    await settle();
    shadows.release();
    expect(link.acks()).toEqual([0]);
    expect((await shadows.load('hub-1')).lamp!.reported).toEqual({ on: true });
  });
});

describe('HubSession counts for the boot id of the latest hello', () => {
  it('a hub back on an earlier boot id after one that sent nothing starts again at 0: its next report is stored, not acked as a duplicate', async () => {
    const wheel = new TimerWheel();
    wheels.push(wheel);
    const shadows = new MemoryShadowStore();
    const directory = new MemoryDirectory();
    const connect = async (boot: string) => {
      const link = new RecordingLink();
      const session = new HubSession('hub-1', 'home-1', link, hubSessionDeps(wheel, { system: { timers: wheel, log: createLogger('silent'), mailboxSize: 64 }, directory, shadows }));
      const frame = (f: object) => session.receiveFrame(decodeHubFrame(encodeValue(f)));
      frame({ t: 1, v: 1, b: boot });
      await settle();
      const welcome = link.frames.find((f) => f.t === FrameType.welcome);
      return { link, frame, welcomeSeq: welcome?.t === FrameType.welcome ? welcome.s : undefined };
    };
    const a = await connect('boot-a');
    for (let s = 1; s <= 5; s++) a.frame({ t: 4, s, r: { lamp: { n: s } } });
    await settle();
    expect(a.link.acks().at(-1)).toBe(5);
    expect((await connect('boot-b')).welcomeSeq).toBe(0);
    const again = await connect('boot-a');
    expect(again.welcomeSeq).toBe(0);
    again.frame({ t: 4, s: 1, r: { lamp: { n: 1001 } } });
    await settle();
    expect(again.link.acks()).toEqual([1]);
    expect((await shadows.load('hub-1')).lamp!.reported).toEqual({ n: 1001 });
    // the same boot id again resumes its count
    expect((await connect('boot-a')).welcomeSeq).toBe(1);
  });

  it('the welcome of a hello on another boot id waits until its reset count is stored; one never stored closes the session (1011 unavailable)', async () => {
    const wheel = new TimerWheel();
    wheels.push(wheel);
    const shadows = new HeldShadowStore();
    shadows.writeCursor('hub-1', { boot: 'boot-a', seq: 5 });
    shadows.release();
    const connect = (boot: string, helloTimeoutMs: number) => {
      const link = new RecordingLink();
      const session = new HubSession('hub-1', 'home-1', link, hubSessionDeps(wheel, { system: { timers: wheel, log: createLogger('silent'), mailboxSize: 64 }, shadows, helloTimeoutMs }));
      session.receiveFrame(decodeHubFrame(encodeValue({ t: 1, v: 1, b: boot })));
      return { link, session };
    };
    const b = connect('boot-b', 10_000);
    await settle();
    // a node killed now would have left {boot-a, 5}: no welcome yet
    expect(b.link.frames).toEqual([]);
    expect(await shadows.loadCursor('hub-1')).toEqual({ boot: 'boot-a', seq: 5 });
    shadows.release();
    await settle();
    expect(b.link.frames.find((f) => f.t === FrameType.welcome)).toMatchObject({ s: 0 });
    expect(await shadows.loadCursor('hub-1')).toEqual({ boot: 'boot-b', seq: -1, tag: expect.stringMatching(/^[\w-]{8}$/) });
    // the same boot id again: nothing to store, welcomed at once
    const again = connect('boot-b', 10_000);
    await settle();
    expect(again.session.state).toBe('online');
    // a reset never stored (the backend away): no welcome, the hub told to come back later
    const c = connect('boot-c', 30);
    await new Promise((r) => setTimeout(r, 80));
    await settle();
    expect(c.link.frames.some((f) => f.t === FrameType.welcome)).toBe(false);
    expect(c.link.frames.find((f) => f.t === FrameType.error)).toMatchObject({ e: 'unavailable' });
    expect(c.link.closedWith).toEqual({ code: 1011, reason: 'unavailable' });
  });
});

describe('HubSession never acknowledges a frame it failed to apply', () => {
  it('a frame whose write throws is never covered by a later ack: the session closes (1011) and starts over from the store', async () => {
    const { link, shadows, frame } = await online();
    shadows.writeReported = () => {
      throw new Error('store refused');
    };
    frame({ t: 4, s: 5, r: { bad: { on: true } } }); // the first frame of the session: may skip ahead
    frame({ t: 4, s: 6, r: { lamp: { on: true } } });
    await settle();
    shadows.release();
    expect(link.acks()).toEqual([]);
    expect(link.closedWith).toEqual({ code: 1011, reason: 'internal' });
    expect(link.frames.at(-1)).toMatchObject({ t: FrameType.bye, e: 'internal' });
    expect(await shadows.loadCursor('hub-1')).toBeNull();
  });
});
