import { afterEach, describe, expect, it } from 'vitest';
import type { ServerToHubFrame } from '../../proto/frames.js';
import { decodeCommandRequest, encodeCommandRequest } from '../../src/actors/command-wire.js';
import { clip, HUB_ERROR_MSG_CHARS, HubErrorLog } from '../../src/actors/hub-error-log.js';
import { HubSession, type HubLink } from '../../src/actors/hub-session.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { createLogger } from '../../src/log/logger.js';
import { decodeHubFrame, decodeServerFrame, decodeValue, encodeValue } from '../../src/protocol/codec.js';
import { hubSessionDeps } from '../helpers/hub-session-deps.js';

class RecordingLink implements HubLink {
  readonly frames: ServerToHubFrame[] = [];
  readonly remote = '10.1.2.3';
  session: HubSession | null = null;
  open = true;
  send(bytes: Uint8Array): boolean {
    if (!this.open) return false;
    this.frames.push(decodeServerFrame(bytes));
    return true;
  }
  close(code: number): void {
    this.open = false;
    this.session?.tell({ type: 'closed', code });
  }
}

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));
const settle = () => new Promise((r) => setImmediate(r));

function setup(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger(level, { node: 'n1' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  const wheel = new TimerWheel();
  wheels.push(wheel);
  const base = hubSessionDeps(wheel);
  const deps = { ...base, system: { ...base.system, log }, hubErrors: new HubErrorLog(log) };
  const link = new RecordingLink();
  const session = (link.session = new HubSession('hub-1', 'home-1', link, deps));
  const frame = (f: object) => session.receiveFrame(decodeHubFrame(encodeValue(f)));
  return { lines, deps, link, session, frame };
}

describe('command request id on the bus', () => {
  it('is optional: a request without it decodes as before, an invalid one is dropped, a valid one kept', () => {
    const base = { d: 'lamp-1', m: 'set', p: { on: true }, to: 5_000 };
    expect(decodeCommandRequest(encodeCommandRequest(base))).toEqual(base);
    expect(decodeCommandRequest(encodeValue({ ...base, rid: 'abc-123' }))).toEqual({ ...base, rid: 'abc-123' });
    expect(decodeCommandRequest(encodeValue({ ...base, rid: 'not valid' }))).toEqual(base);
    expect(decodeCommandRequest(encodeValue({ ...base, rid: 42 }))).toEqual(base);
  });
});

describe('hub session log lines', () => {
  it('opened and closed at info, with the reason and the duration', async () => {
    const { lines, session, frame } = setup('info');
    frame({ t: 1, v: 1, b: 'boot', fw: '1.2.3' });
    await settle();
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'hub session opened', level: 30, hubId: 'hub-1', homeId: 'home-1', node: 'n1', remote: '10.1.2.3', fw: '1.2.3' }));
    session.closeWith(4003, 'heartbeat_timeout');
    await settle();
    await settle();
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'hub session closed', level: 30, hubId: 'hub-1', homeId: 'home-1', code: 4003, reason: 'heartbeat_timeout', online: true, durationMs: expect.any(Number) }));
  });

  it('a close from the hub side is told apart from one of ours', async () => {
    const { lines, link, frame } = setup('info');
    frame({ t: 1, v: 1, b: 'boot' });
    await settle();
    link.close(1006);
    await settle();
    await settle();
    expect(lines.find((l) => l.msg === 'hub session closed')).toMatchObject({ code: 1006, reason: 'connection_lost' });
  });

  it('command outcome: the request id from the bus, debug when ok, info with the code when not', async () => {
    const { lines, deps, link, frame } = setup('debug');
    frame({ t: 1, v: 1, b: 'boot' });
    await settle();
    frame({ t: 4, s: 1, r: { lamp: { on: false } } });
    await settle();
    const unknown = deps.bus.request('hub.hub-1.cmd', encodeValue({ d: 'nope', m: 'set', p: {}, to: 1_000, rid: 'r-unknown' }), 2_000);
    expect(decodeValue(await unknown)).toMatchObject({ ok: false, e: 'unknown_device' });
    expect(lines.find((l) => l.msg === 'command outcome' && l.requestId === 'r-unknown')).toMatchObject({ level: 30, code: 'unknown_device', hubId: 'hub-1', deviceId: 'nope' });

    const ok = deps.bus.request('hub.hub-1.cmd', encodeValue({ d: 'lamp', m: 'set', p: { on: true }, to: 1_000, rid: 'r-ok' }), 2_000);
    await settle();
    const cmd = link.frames.find((f) => f.t === 7) as { id: number } | undefined;
    expect(cmd).toBeDefined();
    frame({ t: 8, id: cmd!.id, ok: true, r: { on: true } });
    expect(decodeValue(await ok)).toMatchObject({ ok: true });
    expect(lines.find((l) => l.msg === 'command outcome' && l.requestId === 'r-ok')).toMatchObject({ level: 20, hubId: 'hub-1', deviceId: 'lamp', method: 'set', us: expect.any(Number) });
  });

  it('at info a successful command writes nothing', async () => {
    const { lines, deps, link, frame } = setup('info');
    frame({ t: 1, v: 1, b: 'boot' });
    await settle();
    const ok = deps.bus.request('hub.hub-1.cmd', encodeValue({ d: 'lamp', m: 'set', p: { on: true }, to: 1_000, rid: 'r-quiet' }), 2_000);
    await settle();
    const cmd = link.frames.find((f) => f.t === 7) as { id: number };
    frame({ t: 8, id: cmd.id, ok: true, r: { on: true } });
    expect(decodeValue(await ok)).toMatchObject({ ok: true });
    expect(lines.filter((l) => l.msg === 'command outcome')).toEqual([]);
  });
});

describe('error frames a hub sends', () => {
  it('are logged at most 10 times per hub and window, with the hub\'s msg cut short under its own key', async () => {
    const { lines, deps, frame } = setup('info');
    frame({ t: 1, v: 1, b: 'boot' });
    await settle();
    for (let i = 0; i < 30; i++) frame({ t: 10, c: 103, e: 'invalid_field', tmp: false, msg: 'm'.repeat(1024), ref: i });
    await settle();
    const logged = lines.filter((l) => l.msg === 'hub reported an error');
    expect(logged.length).toBe(10);
    expect(logged[0]).toMatchObject({ level: 40, hubId: 'hub-1', code: 'invalid_field', ref: 0, hubMsg: `${'m'.repeat(HUB_ERROR_MSG_CHARS)}…` });
    // another hub of the node has a budget of its own
    const other = new HubSession('hub-2', 'home-1', new RecordingLink(), deps);
    other.receiveFrame(decodeHubFrame(encodeValue({ t: 1, v: 1, b: 'boot' })));
    await settle();
    other.receiveFrame(decodeHubFrame(encodeValue({ t: 10, c: 103, e: 'invalid_field', tmp: false, msg: 'short' })));
    await settle();
    expect(lines.filter((l) => l.msg === 'hub reported an error').at(-1)).toMatchObject({ hubId: 'hub-2', hubMsg: 'short' });
  });

  it('clip keeps a short msg whole and never cuts a surrogate pair in half', () => {
    expect(clip(undefined)).toBeUndefined();
    expect(clip('x'.repeat(HUB_ERROR_MSG_CHARS))).toBe('x'.repeat(HUB_ERROR_MSG_CHARS));
    const cut = clip(`${'x'.repeat(HUB_ERROR_MSG_CHARS - 1)}😀tail`);
    expect(cut).toBe(`${'x'.repeat(HUB_ERROR_MSG_CHARS - 1)}…`);
  });
});
