/**
 * The offline of hubs whose node died (src/actors/offline-sweep.ts) over the memory directory: said
 * once, under the dead session's epoch, for the hubs no later claim took; a sweep whose registry
 * read fails lists them again for the next; a node taken for dead while only stalled says its open
 * sessions online again and lists them, so its later death is said too.
 */
import { describe, expect, it } from 'vitest';
import type { AppEventMessage } from '../../proto/app.js';
import { OfflineSweep } from '../../src/actors/offline-sweep.js';
import { keepNodeAlive, refreshOnce, SharedIdWatch } from '../../src/compose/node-liveness.js';
import { createLogger, type Logger } from '../../src/log/logger.js';
import { MemoryDirectory } from '../../src/ports/directory/directory-memory.js';

function rig() {
  let now = 1_000_000;
  const directory = new MemoryDirectory(3_000, () => now);
  const published: Array<{ event: AppEventMessage; epoch: number }> = [];
  let failReads = 0;
  const held: Array<{ hubId: string; homeId: string; epoch: number }> = [];
  const sweep = (nodeId: string) =>
    new OfflineSweep({
      directory,
      nodeId,
      placements: async (ids) => {
        if (failReads-- > 0) throw new Error('registry away');
        return ids.map((id) => (id === 'gone' ? null : { homeId: `home-of-${id}`, enabled: true, createdAt: 1 }));
      },
      publishEvent: (event, epoch) => published.push({ event, epoch }),
      held: () => held,
      log: createLogger('silent'),
    });
  const pass = (ms: number) => (now += ms);
  /** 'staller' holds h1 and lets its liveness lapse; 'live' refreshes */
  const stalled = async () => {
    await directory.refreshNode('staller');
    const h = await directory.claim('h1', 'staller');
    held.push({ hubId: 'h1', homeId: 'home-of-h1', epoch: h.epoch });
    pass(3_001);
    await directory.refreshNode('live');
    return h;
  };
  return { directory, published, held, sweep, pass, stalled, failNext: () => (failReads = 1) };
}

describe('OfflineSweep', () => {
  it("says an earlier process's leftovers offline once; a failed registry read keeps them for the next refresh (review diff18)", async () => {
    const { directory, published, sweep, failNext } = rig();
    const leftover = { hubId: 'h9', node: 'me', epoch: 7 };
    let asked = 0;
    // the memory directory has no leftovers (it dies with the process): the Redis one's answer, as given
    Object.assign(directory, { takeOwnLeftovers: async () => (asked++ === 0 ? null : [leftover]) });
    const me = sweep('me');
    expect(await me.leftovers()).toBe(0); // not told yet
    failNext();
    await expect(me.leftovers()).rejects.toThrow('registry away');
    expect(published).toEqual([]);
    expect(await me.leftovers()).toBe(1);
    expect(published).toEqual([{ event: { op: 'evt', kind: 'offline', home: 'home-of-h9', hub: 'h9', reason: '1006', ts: expect.any(Number) }, epoch: 7 }]);
    expect(await me.leftovers()).toBe(0);
    expect(asked).toBe(2);
  });

  it('says offline once, under the dead session epoch, for the hubs no later claim took; a failed registry read leaves them for the next sweep', async () => {
    const { directory, published, sweep, pass, failNext } = rig();
    await directory.refreshNode('dead');
    const h1 = await directory.claim('h1', 'dead');
    await directory.claim('h2', 'dead');
    await directory.claim('gone', 'dead');
    await directory.claim('h2', 'live'); // h2 reconnected elsewhere
    pass(3_001);
    await directory.refreshNode('live');
    const live = sweep('live');
    failNext();
    await expect(live.sweep()).rejects.toThrow('registry away');
    expect(published).toEqual([]);
    expect(await live.sweep()).toBe(2);
    expect(published).toEqual([{ event: { op: 'evt', kind: 'offline', home: 'home-of-h1', hub: 'h1', reason: '1006', ts: expect.any(Number) }, epoch: h1.epoch }]);
    expect(await live.sweep()).toBe(0);
    expect(published).toHaveLength(1);
  });

  it('a node only stalled says its open sessions online again and lists them: its later death is said too', async () => {
    const { directory, published, sweep, pass, stalled } = rig();
    const h = await stalled();
    await sweep('live').sweep();
    expect(published.map((p) => p.event.kind)).toEqual(['offline']);
    // it resumes: its refresh hears its sessions were taken
    expect(await directory.refreshNode('staller')).toBe(true);
    expect(await sweep('staller').back()).toBe(1);
    expect(published.at(-1)).toEqual({ event: { op: 'evt', kind: 'online', home: 'home-of-h1', hub: 'h1', node: 'staller', ts: expect.any(Number) }, epoch: h.epoch });
    expect(await directory.holds('h1', 'staller', h.epoch)).toBe(true);
    pass(3_001);
    await directory.refreshNode('live');
    await sweep('live').sweep();
    expect(published.map((p) => p.event.kind)).toEqual(['offline', 'online', 'offline']);
  });

  it("says its hubs online once more at the next refresh after a back: a sweep that took them can say offline after the back's online (a race review, 2026-12-06)", async () => {
    const { directory, published, sweep, stalled } = rig();
    const h = await stalled();
    const staller = sweep('staller');
    // the other node's sweep has taken the hub and reads its home, slowly
    const orphans = await directory.takeOrphans('live');
    expect(orphans.map((o) => o.hubId)).toEqual(['h1']);
    expect(await directory.refreshNode('staller')).toBe(true);
    await staller.back();
    // the slow sweep's offline lands now, after the back's online
    published.push({ event: { op: 'evt', kind: 'offline', home: 'home-of-h1', hub: 'h1', reason: '1006', ts: 0 }, epoch: h.epoch });
    expect(await directory.refreshNode('staller')).toBe(false);
    expect(staller.again()).toBe(1);
    expect(published.map((p) => p.event.kind)).toEqual(['online', 'offline', 'online']);
    expect(staller.again()).toBe(0);
  });

  it('a start whose first refresh fails (Redis lost for a moment) goes on, said in one line: the refresh every ttl/3 tries again', async () => {
    const { directory } = rig();
    const lines: string[] = [];
    const log = createLogger('warn', {}, { write: (s: string) => void lines.push((JSON.parse(s) as { msg: string }).msg) });
    const refresh = directory.refreshNode.bind(directory);
    let fail = 1;
    directory.refreshNode = (node: string) => (fail-- > 0 ? Promise.reject(new Error("Stream isn't writeable")) : refresh(node));
    const stop = await keepNodeAlive({ directory, nodeId: 'starting', placements: async () => [], publishEvent: () => {}, held: () => [], log }, { directoryTtlMs: 3_000 });
    stop();
    expect(lines).toEqual(['directory refresh failed at start; tried again at the next refresh']);
  });

  it("the node's refresh says them online as it comes back and once more at the refresh after (node-liveness wiring)", async () => {
    const { directory, published, sweep, stalled } = rig();
    const log = createLogger('silent');
    await stalled();
    await sweep('live').sweep();
    const staller = sweep('staller');
    await refreshOnce({ directory, nodeId: 'staller', log }, staller);
    await refreshOnce({ directory, nodeId: 'staller', log }, staller);
    await refreshOnce({ directory, nodeId: 'staller', log }, staller);
    expect(published.map((p) => p.event.kind)).toEqual(['offline', 'online', 'online']);
  });
});

describe('SharedIdWatch', () => {
  it('logs once when another process starts refreshing the NODE_ID, once when it stops, never in between', () => {
    const lines: Array<[string, string]> = [];
    const log = { error: (_: unknown, msg: string) => lines.push(['error', msg]), info: (_: unknown, msg: string) => lines.push(['info', msg]) } as unknown as Logger;
    const watch = new SharedIdWatch();
    let shared = false;
    const directory = { nodeIdShared: () => shared };
    watch.check(directory, 'node-a', log);
    shared = true;
    watch.check(directory, 'node-a', log);
    watch.check(directory, 'node-a', log);
    shared = false;
    watch.check(directory, 'node-a', log);
    // a directory without the check (the embedded default) says nothing
    watch.check({}, 'node-a', log);
    expect(lines.map(([level]) => level)).toEqual(['error', 'info']);
    expect(lines[0]![1]).toContain('another live process refreshes this NODE_ID');
  });
});
