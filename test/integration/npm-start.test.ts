import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../../load/wire/hub-client.js';
import { ROOT, startNode, type NodeProc } from '../../load/harness/index.js';
import { api, rulesWarmedUp } from '../helpers/server-process.js';

/**
 * The other suites start the compiled node (test/compiled-node.ts). This one starts it as
 * `npm start` does, from source through tsx, in its main thread and in its rule threads, and
 * checks that the others do run the compiled one.
 */

let node: NodeProc;

beforeAll(async () => {
  node = await startNode({ source: true, measured: false, env: { LOG_LEVEL: 'info' } });
  await rulesWarmedUp(node.adminUrl);
});

afterAll(async () => {
  await node?.stop(Infinity);
});

describe('the node from source (npm start)', () => {
  it('is what npm start runs', () => {
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(scripts.start).toBe('node --import tsx src/main.ts');
  });

  it('runs from the TypeScript source, its rule threads too', async () => {
    const argv = readFileSync(`/proc/${node.pid}/cmdline`, 'utf8').split('\0');
    expect(argv.slice(1, 4)).toEqual(['--import', 'tsx', 'src/main.ts']);
    const body = (await (await fetch(`${node.adminUrl}/readyz`)).json()) as { rules: { completed: number; failed: number; workerErrors: number } };
    expect(body.rules).toMatchObject({ failed: 0, workerErrors: 0 });
    expect(body.rules.completed).toBeGreaterThan(0);
  });

  it('while the suites’ other nodes run the compiled tree (test/compiled-node.ts), unless HUBTIER_NODE_ENTRY is set empty', async (ctx) => {
    if (process.env.HUBTIER_NODE_ENTRY === '') ctx.skip();
    const compiled = await startNode({ measured: false });
    try {
      const argv = readFileSync(`/proc/${compiled.pid}/cmdline`, 'utf8').split('\0');
      expect(argv[1]).toBe(process.env.HUBTIER_NODE_ENTRY);
      expect(argv[1]).toMatch(/\/src\/main\.js$/);
    } finally {
      await compiled.stop(Infinity);
    }
  });

  it('takes a hub and stores its report', async () => {
    const res = await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId: 'from-source', homeId: 'home-src' });
    expect(res.status).toBe(201);
    const hub = new HubClient({ url: node.wsUrl, hubId: 'from-source', secret: res.body.secret, heartbeat: false });
    await hub.connect();
    try {
      await hub.report({ lamp: { on: true } });
      const shadow = await api(node.httpUrl, 'GET', '/v1/hubs/from-source/shadow', node.adminToken);
      expect(shadow.status).toBe(200);
      expect(JSON.stringify(shadow.body)).toContain('"on":true');
    } finally {
      await hub.close();
    }
  });
});
