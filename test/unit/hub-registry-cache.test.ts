import { describe, expect, it } from 'vitest';
import { CachingHubRegistry } from '../../src/ports/hub-registry/hub-registry-cache.js';
import { infoOf, type HubRecord, type HubRegistry } from '../../src/ports/hub-registry/hub-registry.js';
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
  it('serves lookups from memory while fresh, re-reads after the ttl, and serves stale entries while the registry is down', async () => {
    let now = 0;
    const inner = new FlakyRegistry();
    await inner.create(record('h1'));
    const cache = new CachingHubRegistry(inner, 1_000, 60_000, 100, () => now);
    expect((await cache.lookup('h1'))?.homeId).toBe('home');
    expect((await cache.lookup('h1'))?.homeId).toBe('home');
    expect(inner.reads).toBe(1);
    now = 1_500;
    await cache.lookup('h1');
    expect(inner.reads).toBe(2);
    inner.down = true;
    now = 30_000;
    expect((await cache.lookup('h1'))?.hubId).toBe('h1'); // stale but known
    now = 70_000;
    await expect(cache.lookup('h1')).rejects.toThrow('ECONNREFUSED'); // too old to trust
    await expect(cache.lookup('h2')).rejects.toThrow('ECONNREFUSED'); // never seen
  });

  it('while Redis is reported not answering, a stale entry is answered at once (no read waited on), refreshed by one read per hub behind it', async () => {
    let now = 0;
    let answering = true;
    const inner = new FlakyRegistry();
    await inner.create(record('h1'));
    // a hung Redis: reads never answer until it resumes
    let resume: () => void = () => {};
    const hung = new Promise<void>((r) => (resume = r));
    const lookup = inner.lookup.bind(inner);
    let lookups = 0;
    inner.lookup = async (hubId) => {
      lookups++;
      if (!answering) await hung;
      return lookup(hubId);
    };
    const cache = new CachingHubRegistry(inner, 1_000, 60_000, 100, () => now, () => answering);
    await cache.lookup('h1');
    answering = false;
    now = 5_000;
    const answers = await Promise.all([cache.lookup('h1'), cache.lookup('h1'), cache.lookup('h1')]);
    expect(answers.map((a) => a?.homeId)).toEqual(['home', 'home', 'home']);
    expect(lookups).toBe(2); // one refresh in flight, not one per lookup
    // an id never seen, or one too old to trust, still waits for the registry
    now = 70_000;
    let settled = false;
    const old = cache.lookup('h1').finally(() => (settled = true));
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    await inner.update('h1', { homeId: 'home-2' });
    answering = true;
    resume();
    expect((await old)?.homeId).toBe('home-2');
  });

  it('reads the registry on every get (the handshake check) and keeps the record for lookups, without its secrets', async () => {
    let now = 0;
    const inner = new FlakyRegistry();
    await inner.create({ ...record('h5'), secret: 'sealed-current', previousSecret: { secret: 'sealed-previous', until: 10 } });
    const cache = new CachingHubRegistry(inner, 30_000, 60_000, 100, () => now);
    expect((await cache.get('h5'))?.secret).toBe('sealed-current');
    expect((await cache.get('h5'))?.previousSecret).toEqual({ secret: 'sealed-previous', until: 10 });
    expect(inner.reads).toBe(2);
    const info = (await cache.lookup('h5'))!;
    expect(inner.reads).toBe(2); // the get left it
    expect(info).toEqual({ hubId: 'h5', homeId: 'home', model: undefined, enabled: true, createdAt: 1 });
    expect(Object.keys(info)).not.toContain('secret');
    // nothing the cache holds carries a secret
    const held = JSON.stringify([...(cache as unknown as { entries: Map<string, unknown> }).entries]);
    expect(held).toContain('h5');
    expect(held).not.toContain('sealed-');
    // no stale secret while the registry is down: the handshake is refused (it needs Redis for its nonce anyway)
    inner.down = true;
    now = 1_000;
    await expect(cache.get('h5')).rejects.toThrow('ECONNREFUSED');
    expect((await cache.lookup('h5'))?.hubId).toBe('h5');
  });

  it('sees its own writes at once and re-checks unknown ids within a second', async () => {
    let now = 0;
    const inner = new FlakyRegistry();
    const cache = new CachingHubRegistry(inner, 30_000, 60_000, 100, () => now);
    expect(await cache.lookup('h3')).toBeNull();
    await inner.create(record('h3')); // provisioned through another node
    now = 1_001;
    expect((await cache.lookup('h3'))?.hubId).toBe('h3');
    await cache.setEnabled('h3', false);
    expect((await cache.lookup('h3'))?.enabled).toBe(false);
  });

  it('keeps at most maxEntries records', async () => {
    const inner = new FlakyRegistry();
    const cache = new CachingHubRegistry(inner, 30_000, 60_000, 2);
    for (const id of ['a', 'b', 'c']) await inner.create(record(id));
    for (const id of ['a', 'b', 'c']) await cache.lookup(id);
    inner.reads = 0;
    await cache.lookup('c');
    await cache.lookup('a'); // evicted first
    expect(inner.reads).toBe(1);
  });

  it('answers every field a record has and none it lacks, from a get or a lookup alike', async () => {
    const inner = new FlakyRegistry();
    const rotated: HubRecord = { ...record('h6'), secretVersion: 3, firmware: '2.0.1' };
    await inner.create(rotated);
    await inner.create(record('h7'));
    const cache = new CachingHubRegistry(inner, 30_000, 60_000, 100, () => 0);
    await cache.get('h6');
    const viaGet = (await cache.lookup('h6'))!;
    expect(viaGet).toStrictEqual(infoOf(rotated));
    expect(Object.keys(viaGet)).toEqual(['hubId', 'homeId', 'model', 'enabled', 'createdAt', 'secretVersion', 'firmware']);
    const plain = (await cache.lookup('h7'))!;
    expect(Object.keys(plain)).toEqual(['hubId', 'homeId', 'model', 'enabled', 'createdAt']);
    expect((await cache.lookup('h7'))!).toStrictEqual(plain);
    expect(inner.reads).toBe(2);
  });

  it('answers copies equal to the stored record without its secrets, with nothing of the cache on them, that the caller may change', async () => {
    const inner = new FlakyRegistry();
    const full: HubRecord = { ...record('h4'), model: 'zb-hub-2', labels: { floor: '2' }, firmware: '1.4.0' };
    await inner.create(full);
    const cache = new CachingHubRegistry(inner, 30_000, 60_000, 100, () => 0);
    const first = (await cache.lookup('h4'))!;
    first.homeId = 'changed';
    first.labels!.floor = 'changed';
    const hit = (await cache.lookup('h4'))!;
    expect(inner.reads).toBe(1);
    expect(hit).toEqual(infoOf(full));
    expect(Object.getOwnPropertySymbols(hit)).toEqual([]);
    expect(JSON.parse(JSON.stringify(hit))).toEqual(JSON.parse(JSON.stringify(infoOf(full))));
    hit.model = 'changed';
    expect((await cache.lookup('h4'))!.model).toBe('zb-hub-2');
    // a get's copy is the caller's too
    const got = (await cache.get('h4'))!;
    got.labels!.floor = 'changed';
    expect((await cache.lookup('h4'))!.labels).toEqual({ floor: '2' });
  });

  it('keeps no answer read before a write or a notice that came while it was in flight: a moved hub is never served from its old home for the ttl', async () => {
    // the read answers what the store held when it began, and resolves only when let go
    class SlowRegistry extends MemoryHubRegistry implements HubRegistry {
      gate: Promise<void> | null = null;
      override async lookup(hubId: string) {
        const answer = await super.lookup(hubId);
        if (this.gate) await this.gate;
        return answer;
      }
    }
    const inner = new SlowRegistry();
    await inner.create(record('h8'));
    const cache = new CachingHubRegistry(inner, 30_000, 60_000, 100, () => 0);
    const stages: Array<[string, () => Promise<unknown>]> = [
      ['update on this node', () => cache.update('h8', { homeId: 'new-home' })],
      // another node moved it: the store changed, the fleet's notice reaches this node
      ['notice from another node', async () => { await inner.update('h8', { homeId: 'new-home' }); cache.forget('h8'); }],
      ['every entry dropped', async () => { await inner.update('h8', { homeId: 'new-home' }); cache.forgetAll(); }],
    ];
    for (const [what, write] of stages) {
      await inner.update('h8', { homeId: 'home' });
      cache.forget('h8');
      let release!: () => void;
      inner.gate = new Promise((r) => (release = r));
      const inFlight = cache.lookup('h8');
      await write();
      release();
      expect((await inFlight)?.homeId, what).toBe('home'); // its caller asked before the write
      inner.gate = null;
      expect((await cache.lookup('h8'))?.homeId, what).toBe('new-home');
    }
    // a hub provisioned while a lookup of its id was in flight: not unknown for a second after
    cache.forgetAll();
    let release!: () => void;
    inner.gate = new Promise((r) => (release = r));
    const unknown = cache.lookup('h9');
    await cache.create(record('h9'));
    release();
    expect(await unknown).toBeNull();
    inner.gate = null;
    expect((await cache.lookup('h9'))?.homeId).toBe('home');

    // a write or a notice of another hub takes nothing from a read in flight (a rollout's notices, one per hub)
    cache.forgetAll();
    let reads = 0;
    const counted = inner.lookup.bind(inner);
    inner.lookup = (hubId: string) => (reads++, counted(hubId));
    inner.gate = new Promise((r) => (release = r));
    const busy = cache.lookup('h8');
    cache.forget('other-hub');
    await cache.update('h9', { homeId: 'elsewhere' });
    release();
    expect((await busy)?.homeId).toBe('new-home');
    inner.gate = null;
    expect((await cache.lookup('h8'))?.homeId).toBe('new-home');
    expect(reads).toBe(1);
  });
});
