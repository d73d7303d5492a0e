/**
 * A node in a memory cgroup (a pod's limit) refuses hub handshakes `busy` while the memory the
 * kernel cannot reclaim stands above TIER_SHED_MEMORY of the limit, and takes them again once the
 * limit leaves room: a real node process, a real cgroup v1 memory controller (this machine kind's;
 * skipped where none may be written), the node reading the kernel's own files.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryCgroup } from '../../bench/lib/memory-cgroup.js';
import { startNode, type NodeProc } from '../../load/harness/index.js';
import { hubAuthHeaderMap, hubCredentials } from '../../src/auth/hub-signature.js';
import { api } from '../helpers/server-process.js';
import { upgradeAnswer } from '../helpers/upgrade-answer.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { metric } from '../helpers/metric.js';

const writable = MemoryCgroup.writable();

const knockHub = async (node: NodeProc, hubId: string) => {
  const res = await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId, homeId: 'home-s' });
  expect(res.status).toBe(201);
  return upgradeAnswer(`${node.wsUrl}/hub/v1`, hubAuthHeaderMap(hubCredentials(hubId, res.body.secret as string)));
};


describe.skipIf(!writable)('shedding hub handshakes near the memory limit (real node in a real cgroup)', () => {
  let cgroup: MemoryCgroup | undefined;
  let node: NodeProc | undefined;
  afterAll(async () => {
    await node?.kill();
    cgroup?.remove();
  });

  it('refuses busy above TIER_SHED_MEMORY of the limit, counts it, collects its garbage, and admits once the limit is raised', async () => {
    cgroup = MemoryCgroup.create(`hubtier-test-${process.pid}-shed`);
    // shedding at half the limit, so that the node refused stays far from being killed as it grows
    node = await startNode({ measured: false, spawnWith: cgroup.spawnInside, env: { TIER_SHED_MEMORY: '0.5' } });
    const metrics = async () => (await fetch(`${node!.adminUrl}/metrics`)).text();
    const res = await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId: 'shed-1', homeId: 'home-s' });
    expect(res.status).toBe(201);
    const secret = res.body.secret as string;
    const knock = () => upgradeAnswer(`${node!.wsUrl}/hub/v1`, hubAuthHeaderMap(hubCredentials('shed-1', secret)));

    // no limit yet: the node reads what the kernel charges its cgroup, and reads no limit. Its
    // reading is up to 200 ms old and a node just started still grows (its rule threads warming):
    // asked again until the two agree within a fifth, rather than compared once (failed in a CI run)
    const within = async () => {
      const read = metric(await metrics(), 'tier_memory_unreclaimable_bytes') ?? 0;
      const kernel = cgroup!.read();
      return read > 0.8 * (kernel.anon + kernel.kernel) && read < 1.2 * (kernel.anon + kernel.kernel);
    };
    await expect.poll(within).toBe(true);
    expect(metric(await metrics(), 'tier_memory_limit_bytes')).toBe(0);

    // a limit the node's memory stands at 62 % of
    const now = cgroup.read();
    const held = now.anon + now.kernel;
    cgroup.limit(Math.round(held * 1.6));
    await new Promise((r) => setTimeout(r, 300)); // the node's reading is at most 200 ms old
    const refused = await knock();
    expect(refused).toMatchObject({ status: 503, body: { code: 'busy', temporary: true } });
    expect(refused !== 'open' && refused.body.message).toMatch(/memory limit/);
    const text = await metrics();
    expect(metric(text, 'tier_hub_admission_refusals_total{reason="memory"}')).toBe(1);
    // the refusal had the node collect its garbage (V8's, without --expose-gc on its command line)
    await expect.poll(async () => metric(await metrics(), 'tier_memory_collections_total')).toBe(1);
    expect(metric(text, 'tier_memory_limit_bytes')).toBe(Math.floor(Math.round(held * 1.6) / 4096) * 4096);

    cgroup.limit(held * 4);
    await new Promise((r) => setTimeout(r, 300));
    expect(await knock()).toBe('open');
    expect(cgroup.read().oomKills).toBe(0);
  });
});

describe("shedding near the heap's limit, reached first where Node sized it (review \"memlimit\")", () => {
  let node: NodeProc | undefined;
  afterAll(async () => {
    await node?.kill();
  });

  it('refuses hubs and apps busy, and says so in its readiness, while the heap stands above TIER_SHED_MEMORY of its limit', async () => {
    // a heap of 64 MiB old space, which a started node fills to about a third: past a line at 15 %
    node = await startNode({ measured: false, nodeFlags: ['--max-old-space-size=64'], env: { TIER_SHED_MEMORY: '0.15' } });
    const text = await (await fetch(`${node.adminUrl}/metrics`)).text();
    const limit = metric(text, 'tier_heap_limit_bytes')!;
    // what the node counts on: 80 % of it, where V8 gives up on a heap whose collections free little
    expect(limit).toBe(Math.floor(0.8 * 64 * 2 ** 20));
    expect(metric(text, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0.15 * limit);
    await new Promise((r) => setTimeout(r, 300)); // the node's reading is at most 200 ms old

    const refused = await knockHub(node, 'heap-1');
    expect(refused).toMatchObject({ status: 503, body: { code: 'busy', temporary: true, message: expect.stringMatching(/memory limit/) } });
    // apps too: their sockets and subscriptions are memory as well
    const token = (await api(node.httpUrl, 'POST', '/v1/admin/tokens', node.adminToken, { sub: 'heap-user', homes: ['home-s'] })).body.token as string;
    expect(await upgradeAnswer(`${node.wsUrl}/app/v1?token=${token}`, {})).toMatchObject({ status: 503, body: { code: 'busy', message: expect.stringMatching(/memory limit/) } });
    // readiness says it and stays ready: every node of a fleet crosses the line together, and 503s
    // would take them all, the HTTP API with them, out of the Service (review "diff12")
    const readyz = await api(node.adminUrl, 'GET', '/readyz', undefined);
    expect(readyz.status).toBe(200);
    expect(readyz.body).toMatchObject({ reasons: [] });
    expect(['heap', 'cgroup']).toContain(readyz.body.nearMemoryLimit);
    // where the machine sets no cgroup limit the heap is the one (this machine kind: none)
    if (metric(text, 'tier_memory_limit_bytes') === 0) expect(readyz.body.nearMemoryLimit).toBe('heap');
    expect(metric(await (await fetch(`${node.adminUrl}/metrics`)).text(), 'tier_hub_admission_refusals_total{reason="memory"}')).toBe(1);
  });
});

describe("the heap's line at the default TIER_SHED_MEMORY comes before the heap runs out (review \"diff12\")", () => {
  let node: NodeProc | undefined;
  const hubs: HubClient[] = [];
  afterAll(async () => {
    await Promise.allSettled(hubs.map((h) => h.terminate()));
    await node?.kill();
  });

  it('a small heap filled by hubs of large shadows refuses the next hubs busy and lives', { timeout: 120_000 }, async () => {
    // 48 MiB of old generation (a started node holds about 30), frames large enough for a ~110 KB shadow in one report;
    // the line at 85 % of all 48 died about 1 run in 3 (V8 gave up at 82 %, collecting hard): it is 85 % of 80 % now
    const lines: string[] = [];
    node = await startNode({
      measured: false,
      nodeFlags: ['--max-old-space-size=48'],
      env: { TIER_MAX_FRAME_BYTES: '262144', TIER_HUB_RATE_PER_SEC: '1000' },
      onLine: (line) => lines.push(line),
    });
    const value = 'v'.repeat(1_000);
    let refused: { at: number; used: number; limit: number } | null = null;
    // a node that dies says why in its last lines (V8's heap report); the failure carries them
    const said = (err: unknown) => new Error(`${String(err)}\nthe node's last lines:\n${lines.slice(-40).join('\n')}`);
    for (let i = 0; i < 600 && refused === null; i++) try {
      const res = await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId: `big-${i}`, homeId: `home-${i % 50}` });
      expect(res.status).toBe(201);
      const hub = new HubClient({ url: node.wsUrl, hubId: `big-${i}`, secret: res.body.secret as string });
      const welcomed = await hub.connect().then(
        () => true,
        (err: { code?: string; status?: number }) => {
          expect(err).toMatchObject({ code: 'busy', status: 503 });
          return false;
        },
      );
      if (!welcomed) {
        const text = await (await fetch(`${node.adminUrl}/metrics`)).text();
        refused = { at: i, used: metric(text, 'tier_heap_used_bytes')!, limit: metric(text, 'tier_heap_limit_bytes')! };
        expect(metric(text, 'tier_hub_admission_refusals_total{reason="memory"}')).toBeGreaterThanOrEqual(1);
        break;
      }
      hubs.push(hub);
      const report: Record<string, Record<string, string>> = {};
      for (let d = 0; d < 110; d++) report[`d${d}`] = { v: `${i}:${d}:${value}`.slice(0, 1_000) };
      await hub.report(report);
    } catch (err) {
      throw said(err);
    }
    expect(refused, 'no hub was refused for memory').not.toBeNull();
    expect(refused!.limit).toBe(Math.floor(0.8 * 48 * 2 ** 20));
    // alive, and its readiness says why it refuses
    const readyz = await api(node.adminUrl, 'GET', '/readyz', undefined);
    expect(readyz.status).toBe(200);
    expect(['heap', undefined]).toContain(readyz.body.nearMemoryLimit);
  });
});
