/**
 * A desired change written for a hub of one home (writeDesired, as PUT .../desired and the rules
 * make it): told to the hub when the hub is still in that home; undone and refused when the hub
 * moved (its desired side cleared: the new home never gets the old home's intent) or was deleted
 * (its shadow removed again: an erased hub leaves nothing) while the write was on its way.
 */
import { describe, expect, it } from 'vitest';
import { writeDesired } from '../../src/actors/desired-write.js';
import type { HubRecord } from '../../src/ports/hub-registry/hub-registry.js';
import { MemoryHubRegistry } from '../../src/ports/hub-registry/hub-registry-memory.js';
import { MemoryBus } from '../../src/ports/bus/bus-memory.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { createLogger } from '../../src/log/logger.js';
import { MemoryShadowStore } from '../../src/ports/shadow-store/shadow-store-memory.js';

async function fixture() {
  const registry = new MemoryHubRegistry();
  const shadows = new MemoryShadowStore();
  const bus = new MemoryBus(new TimerWheel(), createLogger('silent'));
  const told: string[] = [];
  bus.subscribe('hub.h1.desired', (msg) => void told.push(msg.subject));
  const record: HubRecord = { hubId: 'h1', homeId: 'home-a', model: undefined, secret: 'sealed', enabled: true, createdAt: 0 };
  await registry.create(record);
  return { registry, shadows, bus, told, deps: { registry, shadows, bus } };
}

describe('writeDesired', () => {
  it('the hub still in the home: stored and told to the hub', async () => {
    const { shadows, told, deps } = await fixture();
    const device = await writeDesired(deps, 'h1', 'home-a', 'lock', { pin: '1234' });
    expect(device.desired).toEqual({ pin: '1234' });
    expect((await shadows.load('h1')).lock?.desired).toEqual({ pin: '1234' });
    await new Promise((r) => setImmediate(r));
    expect(told).toHaveLength(1);
  });

  it('the hub moved while the write was on its way: its keys undone, refused hub_moved, never told to the hub; the rest stays', async () => {
    const { registry, shadows, told, deps } = await fixture();
    // kept by a move with keepDesired, and the new home's own write of another key
    await shadows.setDesired('h1', 'lamp', { on: true });
    await shadows.setDesired('h1', 'lock', { autoLock: true });
    // the move's record change came between the caller's check and this write
    await registry.update('h1', { homeId: 'home-b' });
    await expect(writeDesired(deps, 'h1', 'home-a', 'lock', { pin: '0000' })).rejects.toMatchObject({ code: 'hub_moved' });
    const shadow = await shadows.load('h1');
    expect(shadow.lock?.desired).toEqual({ autoLock: true });
    expect(shadow.lamp?.desired).toEqual({ on: true });
    await new Promise((r) => setImmediate(r));
    expect(told).toEqual([]);
  });

  it('the hub deleted while the write was on its way: its shadow removed again, refused not_found', async () => {
    const { registry, shadows, told, deps } = await fixture();
    await registry.remove('h1');
    await shadows.remove('h1');
    await expect(writeDesired(deps, 'h1', 'home-a', 'lock', { pin: '0000' })).rejects.toMatchObject({ code: 'not_found' });
    expect({ ...(await shadows.load('h1')) }).toEqual({});
    await new Promise((r) => setImmediate(r));
    expect(told).toEqual([]);
  });
});
