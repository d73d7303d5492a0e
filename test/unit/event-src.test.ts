/**
 * An event's `src` (the hub frame it came from) is the same when the hub resends the frame to
 * another node: also for reports a full mailbox merged on the first node, where each device's event
 * takes the number of the last frame that carried the device, as the resend one by one gives it
 * (review diff15: every device took the merge's last number, so the rule notification of a failover
 * went out twice under two keys).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AppEventMessage } from '../../proto/app.js';
import { HubSession, type HubLink } from '../../src/actors/hub-session.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { bootTag } from '../../src/actors/event-source.js';
import { MemoryDirectory } from '../../src/ports/directory/directory-memory.js';
import { MemoryShadowStore } from '../../src/ports/shadow-store/shadow-store-memory.js';
import { decodeHubFrame, encodeValue } from '../../src/protocol/codec.js';
import { hubSessionDeps } from '../helpers/hub-session-deps.js';
import { GatedDirectory } from '../helpers/gated-directory.js';

class Link implements HubLink {
  session: HubSession | null = null;
  send(): boolean {
    return true;
  }
  close(code: number): void {
    this.session?.tell({ type: 'closed', code });
  }
}

const wheels: TimerWheel[] = [];
afterEach(() => wheels.splice(0).forEach((w) => w.close()));
const settle = () => new Promise((r) => setImmediate(r));

function session(directory: MemoryDirectory, events: AppEventMessage[], shadows?: MemoryShadowStore, provisioned = 0): (frame: object) => void {
  const wheel = new TimerWheel();
  wheels.push(wheel);
  const deps = hubSessionDeps(wheel, { directory, publishEvent: (e: AppEventMessage) => void events.push(e), ...(shadows ? { shadows } : {}) });
  const link = new Link();
  const s = new HubSession('hub-1', 'home-1', link, deps, provisioned);
  link.session = s;
  return (f) => s.receiveFrame(decodeHubFrame(encodeValue(f)));
}

/** Reports 1..12: d1..d12 one each, and `lamp` in the fifth and ninth (both past a mailbox of 4: merged). */
const report = (s: number) => ({ t: 4, s, r: { [`d${s}`]: { leak: true }, ...(s === 5 || s === 9 ? { lamp: { level: s } } : {}) } });
const srcOf = (events: AppEventMessage[]) => Object.fromEntries(events.flatMap((e) => (e.kind === 'state' ? [[e.device, e.src]] : [])));

describe("an event's src", () => {
  it('is the same for a report merged in a full mailbox as for its frames resent one by one to another node', async () => {
    const gated = new GatedDirectory();
    gated.hold();
    const merged: AppEventMessage[] = [];
    const first = session(gated, merged);
    first({ t: 1, v: 1, b: 'boot-x' });
    for (let s = 1; s <= 12; s++) first(report(s));
    gated.open();
    await settle();
    await settle();
    // the first node merged them: one event of the lamp for two reports
    expect(merged.filter((e) => e.kind === 'state' && e.device === 'lamp')).toHaveLength(1);
    const resent: AppEventMessage[] = [];
    const second = session(new MemoryDirectory(), resent);
    second({ t: 1, v: 1, b: 'boot-x' });
    await settle();
    for (let s = 1; s <= 12; s++) {
      second(report(s));
      await settle();
    }
    const tag = bootTag('boot-x');
    const expected: Record<string, string> = { lamp: `${tag}.9` };
    for (let s = 1; s <= 12; s++) expected[`d${s}`] = `${tag}.${s}`;
    expect(srcOf(merged)).toEqual(expected);
    // one by one, the lamp's first report is an event of its own, with its own src
    expect(resent.filter((e) => e.kind === 'state' && e.device === 'lamp').map((e) => (e as { src?: string }).src)).toEqual([`${tag}.5`, `${tag}.9`]);
    expect(srcOf(resent)).toEqual(expected);
  });

  it('differs for a boot id used again (its numbering starts at 1 again), and stays the same for that numbering on another node (review automation2)', async () => {
    const shadows = new MemoryShadowStore();
    const directory = new MemoryDirectory();
    const events: AppEventMessage[] = [];
    const leak = (s: number) => ({ t: 5, s, d: 'sensor', e: 'leak' });
    const connect = async (boot: string) => {
      const frame = session(directory, events, shadows);
      frame({ t: 1, v: 1, b: boot });
      await settle();
      await settle();
      return frame;
    };
    (await connect('boot-a'))(leak(1));
    await settle();
    (await connect('boot-b'))(leak(1));
    await settle();
    // back on boot-a: welcome s 0, and its next leak is s 1 again
    const again = await connect('boot-a');
    again(leak(1));
    await settle();
    // that numbering's next session (a failover, say) resends s 1 and goes on with s 2
    const next = await connect('boot-a');
    next(leak(1));
    next(leak(2));
    await settle();
    const srcs = events.flatMap((e) => (e.kind === 'event' ? [e.src] : []));
    expect(srcs).toHaveLength(4);
    const [first, other, reused, goesOn] = srcs;
    // the hub's first numbering: its boot id's own tag; each one begun since: a tag of its own
    expect(first).toBe(`${bootTag('boot-a')}.1`);
    expect(other).toMatch(/^[A-Za-z0-9_-]{8}\.1$/);
    expect(reused).toMatch(/^[A-Za-z0-9_-]{8}\.1$/);
    expect(new Set([first, other, reused]).size).toBe(3);
    // the resend of s 1 was a duplicate (not applied); s 2 carries the numbering's tag
    expect(goesOn).toBe(`${reused!.split('.')[0]}.2`);
  });

  it("a hub id provisioned again (another record) gives a boot id's first numbering another tag; the same record the same on every node (review diff16)", async () => {
    const firstSrc = async (provisioned: number) => {
      const events: AppEventMessage[] = [];
      const frame = session(new MemoryDirectory(), events, new MemoryShadowStore(), provisioned);
      frame({ t: 1, v: 1, b: 'boot-a' });
      await settle();
      await settle();
      frame({ t: 5, s: 1, d: 'sensor', e: 'leak' });
      await settle();
      return events.find((e) => e.kind === 'event')!.src;
    };
    const [before, sameRecord, provisionedAgain] = [await firstSrc(1234), await firstSrc(1234), await firstSrc(5678)];
    expect(sameRecord).toBe(before);
    expect(provisionedAgain).not.toBe(before);
  });

  it("tags the boot id in 8 URL-safe characters, whatever the boot id's length", () => {
    expect(bootTag('boot-x')).toMatch(/^[A-Za-z0-9_-]{8}$/);
    expect(bootTag('x'.repeat(200))).toMatch(/^[A-Za-z0-9_-]{8}$/);
    expect(bootTag('a')).not.toBe(bootTag('b'));
  });
});
