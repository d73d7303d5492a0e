/**
 * The harness's memory readings (`collect`: a full collection, then one line of sizes) leave the
 * node running. They asked with SIGUSR2, which drains and stops a node since 2026-12-06, so
 * `npm run bench:memory` lost its node at the first reading (found 2026-12-07).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { collect, startNode, type NodeProc } from '../../load/harness/index.js';

let node: NodeProc | undefined;
afterAll(async () => {
  await node?.stop();
});

describe('a measured node', () => {
  it('answers two readings and stays up', async () => {
    node = await startNode({ measured: true });
    const first = await collect(node);
    const second = await collect(node);
    expect(first.heapUsed).toBeGreaterThan(0);
    expect(second.rss).toBeGreaterThan(0);
    expect(node.child.exitCode).toBeNull();
    expect((await fetch(`${node.adminUrl}/healthz`)).status).toBe(200);
  });
});
