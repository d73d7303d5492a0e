import { describe, expect, it } from 'vitest';
import { CachingHubRegistry } from '../../src/ports/hub-registry/hub-registry-cache.js';
import type { HubRecord, HubRegistry } from '../../src/ports/hub-registry/hub-registry.js';
import { MemoryHubRegistry } from '../../src/ports/hub-registry/hub-registry-memory.js';

/** A registry that counts reads and can be made unreachable. */
class FlakyRegistry extends MemoryHubRegistry implements HubRegistry {
  reads = 0;
  down = false;
  override async get(hubId: string): Promise<HubRecord | null> {
    this.reads++;
    if (this.down) throw new Error('ECONNREFUSED');
    return super.get(hubId);
  }
}

const record = (hubId: string): HubRecord => ({ hubId, homeId: 'home', model: undefined, secret: 's', enabled: true, createdAt: 1 });

describe('CachingHubRegistry', () => {
  it('serves fresh entries from memory, re-reads after the ttl, and serves stale entries while the registry is down', async () => {
    let now = 0;
    const inner = new FlakyRegistry();
    await inner.create(record('h1'));
    const cache = new CachingHubRegistry(inner, 1_000, 60_000, 100, () => now);
    expect((await cache.get('h1'))?.homeId).toBe('home');
    expect((await cache.get('h1'))?.homeId).toBe('home');
    expect(inner.reads).toBe(1);
    now = 1_500;
    await cache.get('h1');
    expect(inner.reads).toBe(2);
    inner.down = true;
    now = 30_000;
    expect((await cache.get('h1'))?.hubId).toBe('h1'); // stale but known
    now = 70_000;
    await expect(cache.get('h1')).rejects.toThrow('ECONNREFUSED'); // too old to trust
    await expect(cache.get('h2')).rejects.toThrow('ECONNREFUSED'); // never seen
  });

  it('sees its own writes at once and re-checks unknown ids within a second', async () => {
    let now = 0;
    const inner = new FlakyRegistry();
    const cache = new CachingHubRegistry(inner, 30_000, 60_000, 100, () => now);
    expect(await cache.get('h3')).toBeNull();
    await inner.create(record('h3')); // provisioned through another node
    now = 1_001;
    expect((await cache.get('h3'))?.hubId).toBe('h3');
    await cache.setEnabled('h3', false);
    expect((await cache.get('h3'))?.enabled).toBe(false);
  });

  it('keeps at most maxEntries records', async () => {
    const inner = new FlakyRegistry();
    const cache = new CachingHubRegistry(inner, 30_000, 60_000, 2);
    for (const id of ['a', 'b', 'c']) await inner.create(record(id));
    for (const id of ['a', 'b', 'c']) await cache.get(id);
    inner.reads = 0;
    await cache.get('c');
    await cache.get('a'); // evicted first
    expect(inner.reads).toBe(1);
  });

  it('answers copies equal to the stored record, with nothing of the cache on them, that the caller may change', async () => {
    const inner = new FlakyRegistry();
    const full: HubRecord = { ...record('h4'), model: 'zb-hub-2', labels: { floor: '2' }, firmware: '1.4.0' };
    await inner.create(full);
    const cache = new CachingHubRegistry(inner, 30_000, 60_000, 100, () => 0);
    const first = (await cache.get('h4'))!;
    first.homeId = 'changed';
    first.labels!.floor = 'changed';
    const hit = (await cache.get('h4'))!;
    expect(inner.reads).toBe(1);
    expect(hit).toEqual(full);
    expect(Object.getOwnPropertySymbols(hit)).toEqual([]);
    expect(JSON.parse(JSON.stringify(hit))).toEqual(full);
    hit.model = 'changed';
    expect((await cache.get('h4'))!.model).toBe('zb-hub-2');
  });
});
