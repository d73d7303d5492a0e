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

const writable = MemoryCgroup.writable();

const knockHub = async (node: NodeProc, hubId: string) => {
  const res = await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId, homeId: 'home-s' });
  expect(res.status).toBe(201);
  return upgradeAnswer(`${node.wsUrl}/hub/v1`, hubAuthHeaderMap(hubCredentials(hubId, res.body.secret as string)));
};

/** The value of one Prometheus series in an exposition text; undefined when absent. */
function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

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

    // no limit yet: the node reads what the kernel charges its cgroup, and reads no limit
    const before = await metrics();
    const kernel = cgroup.read();
    expect(metric(before, 'tier_memory_unreclaimable_bytes')).toBeGreaterThan(0.8 * (kernel.anon + kernel.kernel));
    expect(metric(before, 'tier_memory_unreclaimable_bytes')).toBeLessThan(1.2 * (kernel.anon + kernel.kernel));
    expect(metric(before, 'tier_memory_limit_bytes')).toBe(0);

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

  it('refuses hubs and apps busy and reads not ready while the heap stands above TIER_SHED_MEMORY of its limit', async () => {
    // a heap of 64 MiB old space, which a started node fills to about a third: past a line at 15 %
    node = await startNode({ measured: false, nodeFlags: ['--max-old-space-size=64'], env: { TIER_SHED_MEMORY: '0.15' } });
    const text = await (await fetch(`${node.adminUrl}/metrics`)).text();
    const limit = metric(text, 'tier_heap_limit_bytes')!;
    expect(limit).toBeGreaterThanOrEqual(64 * 2 ** 20);
    expect(limit).toBeLessThan(160 * 2 ** 20);
    expect(metric(text, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0.15 * limit);
    await new Promise((r) => setTimeout(r, 300)); // the node's reading is at most 200 ms old

    const refused = await knockHub(node, 'heap-1');
    expect(refused).toMatchObject({ status: 503, body: { code: 'busy', temporary: true, message: expect.stringMatching(/memory limit/) } });
    // apps too: their sockets and subscriptions are memory as well
    const token = (await api(node.httpUrl, 'POST', '/v1/admin/tokens', node.adminToken, { sub: 'heap-user', homes: ['home-s'] })).body.token as string;
    expect(await upgradeAnswer(`${node.wsUrl}/app/v1?token=${token}`, {})).toMatchObject({ status: 503, body: { code: 'busy', message: expect.stringMatching(/memory limit/) } });
    // and the Service is told to send new connections elsewhere
    const readyz = await api(node.adminUrl, 'GET', '/readyz', undefined);
    expect(readyz.status).toBe(503);
    expect(readyz.body).toMatchObject({ reasons: ['memory'] });
    expect(['heap', 'cgroup']).toContain(readyz.body.nearMemoryLimit);
    // where the machine sets no cgroup limit the heap is the one (this machine kind: none)
    if (metric(text, 'tier_memory_limit_bytes') === 0) expect(readyz.body.nearMemoryLimit).toBe('heap');
    expect(metric(await (await fetch(`${node.adminUrl}/metrics`)).text(), 'tier_hub_admission_refusals_total{reason="memory"}')).toBe(1);
  });
});
